
pub mod addr;
mod error;
pub mod fake;
pub mod link;
pub mod msg;
pub mod neigh;
pub mod netns;
pub mod route;
pub mod rule;
pub mod socket;
pub mod sysctl;

pub use error::{Error, Result};
pub use msg::RouteNetlink;
pub use netns::NetNs;
pub use socket::NetlinkSocket;

#[cfg(test)]
mod tests;
