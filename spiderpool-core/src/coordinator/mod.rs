//! (coordinator: placeholder, being written.)
