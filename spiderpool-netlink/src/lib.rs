//! Applies `spiderpool-core` coordinator plans to the kernel over netlink.
//!
//! # Start here
//!
//! The workspace's `examples/apply-plan/main.rs` is the tour (root; it says so and exits 0
//! without):
//!
//! ```sh
//! cargo build -p spiderpool-examples --example apply-plan
//! sudo target/debug/examples/apply-plan
//! ```
//!
//! It builds a pod in fresh anonymous namespaces ([`NetNs::create_anonymous`]), reads the pod
//! and the node into the planner's views ([`read_with`], [`read_host_with`]), plans the
//! coordinator's ADD with `spiderpool_core::coordinator::plan_add`, applies it all or nothing
//! ([`apply_plan`]), reads it back with [`verify`] ("no drift"), then changes a route by hand
//! and prints the drift line. To see a plan without root or a kernel, run
//! `cargo run -p spiderpool-examples --example plan-routes`.
//!
//! # Layers
//!
//! A small synchronous layer (no async runtime): requests go through the [`RouteNetlink`]
//! trait, implemented by the real [`NetlinkSocket`] and by the recording fake
//! `fake::RecordingNetlink` (behind the `test-util` feature: enable it in your
//! `[dev-dependencies]`), so everything above the socket is unit-tested without root.
//!
//! | module | like | what |
//! |---|---|---|
//! | [`socket`] | | `NETLINK_ROUTE` socket: request/ack, multipart dumps with `NLM_F_DUMP_INTR` retry |
//! | [`msg`] | | the transport trait and the `netlink-packet-*` re-exports (the only public npr types) |
//! | [`netns`] | `ip netns exec` | [`NetNs`]: open, run a closure inside on a short-lived thread, sockets bound inside |
//! | [`link`] | `ip link` | veth, macvlan, up/down, MTU, MAC, txqueuelen, netns, rename, delete |
//! | [`addr`] | `ip addr` | add/delete/dump, IPv6 without DAD |
//! | [`route`] | `ip route` | add (exclusive or replace), delete, dump any table (incl. > 255) |
//! | [`rule`] | `ip rule` | add exclusively (exists = done), delete by full match, dump |
//! | [`neigh`] | `ip neigh` | add/replace permanent entries, delete, dump |
//! | [`sysctl`] | `sysctl` | `/proc/sys` read, compare, write (inside the netns) |
//! | [`mark`] | `nft` | the reply-via-veth connection marking |
//! | [`packet`] | | ARP / neighbour discovery frames, built and parsed (no I/O) |
//! | [`probe`] | `arping`, `ndisc6` | gratuitous ARP / unsolicited NA, IP conflict and gateway probes |
//! | [`apply()`], [`apply_plan()`], [`read()`], [`verify()`], [`teardown()`] | | plans: all-or-nothing apply (one netns, or an ADD's pod then node), read back, drift, best-effort DEL |
//!
//! ```no_run
//! use spiderpool_netlink::{NetNs, link};
//!
//! let pod = NetNs::open("/var/run/netns/pod")?;
//! let mut nl = pod.route_socket()?;
//! let eth0 = link::require(&mut nl, "eth0")?;
//! link::set_up(&mut nl, eth0.index, true)?;
//! # Ok::<(), spiderpool_netlink::Error>(())
//! ```

pub mod addr;
mod apply;
mod error;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod link;
pub mod mark;
pub mod msg;
pub mod neigh;
pub mod netns;
pub mod packet;
pub mod probe;
mod read;
pub mod route;
pub mod rule;
pub mod socket;
pub mod sysctl;
mod verify;

pub use apply::{
    Applied, ApplyReport, PlanReport, Target, apply, apply_plan, apply_undoable, teardown, undo,
};
pub use error::{Error, PlanError, Result};
pub use link::LinkNames;
pub use msg::RouteNetlink;
pub use netns::NetNs;
pub use read::{ReadOptions, read, read_host, read_host_with, read_with};
pub use socket::NetlinkSocket;
pub use verify::{Drift, DriftKind, sysctl_keys, verify};

#[cfg(test)]
mod tests;
