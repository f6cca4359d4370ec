//! Applies `spiderpool-core` plans to the kernel over netlink.
//!
//! Not yet implemented: the coordinator issue builds the synchronous netlink layer here.
