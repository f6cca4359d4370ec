//! (multus: placeholder, being written.)
