//! (objects: placeholder, being written.)
