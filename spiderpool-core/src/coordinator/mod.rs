//! The coordinator's policy-routing plan, as data.
//!
//! The coordinator is the chained CNI plugin that, after the main plugin configured a NIC, tunes
//! the pod's routing so cluster traffic leaves by `eth0`, underlay traffic by `net1`, replies by
//! the NIC they came in on, and the node reaches the pod's underlay address through the pod's
//! veth. This module is its pure half (spec §4):
//!
//! | step | items |
//! |---|---|
//! | settings | [`NadCoordinatorConf`] (NAD keys) + [`AgentCoordinatorConfig`] (agent answer) → [`merge`] → [`CoordinatorConfig`] |
//! | inputs | [`PodView`], [`HostView`] (links, addresses, routes, rules as read), [`AddRequest`], [`DelRequest`] |
//! | mode | [`resolve_mode`] → [`ModeResolution`] (mode, first invoke, policy table) |
//! | ADD | [`plan_add`] → [`Plan`]: ordered [`Step`]s for the pod and the host |
//! | DEL | [`plan_del`], or [`plan_del_from_prev`] with the ADD's `prevResult` (netns or NIC gone) → [`DelPlan`] |
//! | effect | [`Plan::apply`]: the views after the plan, without a kernel |
//! | output | [`render_plan`] (`ip` commands), [`render_ip_rule`], [`render_ip_route`], [`render_ip_neigh`] (iproute2's text) |
//!
//! ```
//! use spiderpool_core::coordinator::*;
//!
//! let agent: AgentCoordinatorConfig = serde_json::from_str(
//!     r#"{"mode":"auto","overlayPodCIDR":["10.233.64.0/18"],"serviceCIDR":["10.233.0.0/18"],
//!         "hijackCIDR":["169.254.0.0/16"],"tunePodRoutes":true,"hostRuleTable":500}"#,
//! )?;
//! let cfg = merge(&NadCoordinatorConf::default(), &agent)?;
//! let views: serde_json::Value = serde_json::json!({
//!   "pod": {"links": [
//!     {"name": "lo", "index": 1, "up": true, "addresses": ["127.0.0.1/8"]},
//!     {"name": "eth0", "index": 2, "mac": "a2:40:ec:4f:ba:93", "up": true, "broadcast": true,
//!      "multicast": true, "addresses": ["10.233.73.210/32"], "peerIndex": 3},
//!     {"name": "net1", "index": 3, "mac": "6a:1b:e7:ac:f8:a0", "up": true, "broadcast": true,
//!      "multicast": true, "addresses": ["10.6.212.145/16"]}],
//!    "routes": [
//!     {"dst": "0.0.0.0/0", "gw": "10.6.0.1", "dev": "net1"},
//!     {"dst": "0.0.0.0/0", "gw": "169.254.1.1", "dev": "eth0"},
//!     {"dst": "10.6.0.0/16", "dev": "net1", "proto": "kernel", "scope": "link", "src": "10.6.212.145"},
//!     {"dst": "169.254.1.1/32", "dev": "eth0", "scope": "link"}]},
//!   "host": {"links": [
//!     {"name": "ens192", "index": 2, "mac": "da:5b:0e:4e:d4:59", "addresses": ["10.6.212.132/16"]},
//!     {"name": "calitest", "index": 3, "mac": "ee:ee:ee:ee:ee:ee", "peerIndex": 2}],
//!    "routeSrc": {"10.233.73.210": "10.6.212.132", "10.6.212.145": "10.6.212.132"}}
//! });
//! let pod: PodView = serde_json::from_value(views["pod"].clone())?;
//! let host: HostView = serde_json::from_value(views["host"].clone())?;
//! let plan = plan_add(&cfg, &AddRequest::new("cid-overlay-0001", "net1"), &pod, &host)?;
//! let (pod_after, _host_after) = plan.apply(&pod, &host);
//! assert_eq!(
//!     render_ip_rule(&pod_after.rules, Family::V4),
//!     "0:\tfrom all lookup local\n32764:\tfrom 10.233.73.210 lookup 100\n\
//!      32765:\tfrom 10.6.212.145 lookup 101\n32766:\tfrom all lookup main\n\
//!      32767:\tfrom all lookup default\n"
//! );
//! assert!(render_plan(&plan).contains("ip rule add from 10.6.212.145 lookup 101 pref 32765"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Deliberate differences from upstream are listed in `docs/coordinator.md`.

mod agent;
mod config;
mod entries;
mod error;
mod mode;
mod plan;
mod planner;
mod render;
mod state;
mod teardown;
mod view;

pub use config::{
    AgentCoordinatorConfig, CoordinatorConfig, DEFAULT_HOST_RULE_TABLE, DEFAULT_VETH_MTU,
    DefaultRouteNic, MacPrefix, Mode, NadCoordinatorConf, PolicyRoute, RouteSpec, merge,
};
pub use entries::{
    Families, Family, MacAddr, NeighState, Neighbour, NextHop, Proto, Route, Rule, Scope,
    TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN, host_net, is_usable,
};
pub use error::CoordinatorError;
pub use mode::{
    ModeResolution, POD_VETH, RULE_PRIORITY_1000, ResolvedMode, TABLE_FIRST_NIC, resolve_mode,
    up_link_count,
};
pub use plan::{DelPlan, NetnsPlan, Plan, ReplyViaVethMark, RouteOrigin, Step, VethPair};
pub use planner::{host_iface_excluded, host_ips, plan_add};
pub use render::{
    render_commands, render_del_plan, render_ip_neigh, render_ip_route, render_ip_rule,
    render_plan, route_line, step_commands,
};
pub use teardown::{plan_del, plan_del_from_prev};
pub use view::{AddRequest, DelRequest, HostView, LinkView, PodView, VethMacs, host_veth_name};
