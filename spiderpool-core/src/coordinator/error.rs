//! The errors of [`crate::coordinator`]: settings that cannot be used and pods the plan
//! cannot be made for.

use thiserror::Error;

/// Why a coordinator setting was refused or a plan could not be made.
///
/// (Named so as not to clash with `spiderpool-netlink`'s `PlanError`, the failure to apply one.)
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// A coordinator setting (NAD key or SpiderCoordinator field) has a value that cannot be used.
    #[error("coordinator config: {key}: {value:?}: {reason}")]
    Config {
        /// The upstream key, e.g. `podMACPrefix`.
        key: String,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// `mode` is not one of `auto`, `underlay`, `overlay`, `disable` (or `disabled`).
    #[error(
        "coordinator config: mode: unknown mode {mode:?} (expected auto, underlay, overlay or disable)"
    )]
    UnknownMode {
        /// The mode as given.
        mode: String,
    },
    /// The interface named by `CNI_IFNAME` is not in the pod.
    #[error("interface {ifname:?} does not exist in the pod")]
    InterfaceMissing {
        /// The interface name.
        ifname: String,
    },
    /// The interface has no address the coordinator can route (link-local and multicast do not count).
    #[error(
        "no usable IP addresses on {ifname:?} (link-local and multicast addresses do not count)"
    )]
    NoUsableIp {
        /// The interface name.
        ifname: String,
    },
    /// Underlay mode on a later NIC, but the first NIC did not create `veth0`.
    #[error(
        "underlay mode: the pod has no veth0, so the coordinator did not run for the first interface {first:?}; enable the coordinator plugin for {first:?} too (configuring {ifname:?})"
    )]
    Veth0Missing {
        /// The interface being configured.
        ifname: String,
        /// The first NIC name (`podDefaultCniNic`).
        first: String,
    },
    /// Overlay mode asked to configure the first NIC, which belongs to the default CNI.
    #[error(
        "overlay mode cannot configure the first interface {ifname:?}: it belongs to the default CNI (use underlay or auto)"
    )]
    OverlayOnFirstNic {
        /// The interface being configured.
        ifname: String,
    },
    /// Overlay mode on a pod whose first NIC was configured in underlay mode (it has `veth0`).
    #[error(
        "overlay mode: the pod has veth0, so a previous interface was configured in underlay mode; use underlay or auto for {ifname:?}"
    )]
    OverlayAfterUnderlay {
        /// The interface being configured.
        ifname: String,
    },
    /// The configured default-route NIC is not an interface of the pod.
    #[error("podDefaultRouteNIC: interface {nic:?} does not exist in the pod")]
    DefaultRouteNicMissing {
        /// The configured NIC name.
        nic: String,
    },
    /// Information the plan needs about a link is missing from the pod or host view.
    #[error("{netns} link {link:?}: {reason}")]
    LinkInfoMissing {
        /// `pod` or `host`.
        netns: String,
        /// The link name (or a description of how it was looked up).
        link: String,
        /// What is missing.
        reason: String,
    },
    /// No rule priority is left below the existing rules (they start at 1).
    #[error("no free {family} rule priority below the existing pod rules")]
    RulePriorityExhausted {
        /// `IPv4` or `IPv6`.
        family: String,
    },
    /// The SpiderCoordinator is not `Synced`, so the cluster CIDRs are unknown.
    #[error("spidercoordinator {name} is not ready (phase {phase:?}){reason}")]
    NotReady {
        /// The SpiderCoordinator's name.
        name: String,
        /// Its `status.phase`.
        phase: String,
        /// `: <status.reason>` when it has one, else empty.
        reason: String,
    },
}
