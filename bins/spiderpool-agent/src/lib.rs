//! The spiderpool-agent as a library: the embedded local store and the agent's services.
//!
//! | module | concept |
//! |---|---|
//! | [`localstore`] | the durable, crash-safe [`spiderpool_core::ipam::IpamStore`] on local disk |
//!
//! The binary (`spiderpool-agent`) wires these to the UNIX-socket HTTP API.

pub mod localstore;
