//! (manifest: placeholder, being written.)
