//! Runnable examples for the Spiderpool SDK; see `examples/quickstart`.
