//! CNI spec types (placeholder, being written).
