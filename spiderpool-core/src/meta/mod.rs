//! (meta: placeholder, being written.)
