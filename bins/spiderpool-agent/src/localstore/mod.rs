//! The embedded local store (being written).
