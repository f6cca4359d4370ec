//! Mode resolution (spec §4.2) and the policy table numbers (§4.3).

use crate::coordinator::CoordinatorError;
use serde::{Deserialize, Serialize};

use super::config::Mode;
use super::view::PodView;

/// The pod-side name of the underlay veth.
pub const POD_VETH: &str = "veth0";
/// The table holding the eth0 default route copy (overlay) or the reply-via-veth default (underlay).
pub const TABLE_FIRST_NIC: u32 = 100;
/// Priority of the underlay `fwmark 0x1 lookup 100` rule and of the host `from all lookup HT` rule.
pub const RULE_PRIORITY_1000: u32 = 1000;

/// The mode a NIC is configured in, once `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResolvedMode {
    /// Every NIC is underlay; `veth0` connects the pod to the host.
    Underlay,
    /// The first NIC belongs to an overlay CNI.
    Overlay,
}

/// The outcome of mode resolution for one ADD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeResolution {
    /// The resolved mode.
    pub mode: ResolvedMode,
    /// Whether this is the first NIC the coordinator configures in the pod (upstream
    /// `firstInvoke`): it creates the veth (underlay), writes pod neighbours and routes to `main`.
    pub first_invoke: bool,
    /// The policy table for this NIC (upstream `currentRuleTable`).
    pub current_table: u32,
}

/// Upstream's "UP links": links that are UP with BROADCAST and MULTICAST; `cur` counts as UP
/// because the plugin sets it up before counting.
pub fn up_link_count(pod: &PodView, cur: &str) -> u32 {
    let n = pod
        .links
        .iter()
        .filter(|l| {
            let mut l = (*l).clone();
            if l.name == cur {
                l.up = true;
            }
            l.counts_as_up()
        })
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Resolves `mode` for interface `cur` (first NIC name `first`); `Ok(None)` for `disable`.
pub fn resolve_mode(
    mode: Mode,
    cur: &str,
    first: &str,
    pod: &PodView,
) -> Result<Option<ModeResolution>, CoordinatorError> {
    let veth_exists = pod.link(POD_VETH).is_some();
    let mode = match mode {
        Mode::Disable => return Ok(None),
        Mode::Auto if cur == first || veth_exists => ResolvedMode::Underlay,
        Mode::Auto => ResolvedMode::Overlay,
        Mode::Underlay => ResolvedMode::Underlay,
        Mode::Overlay => ResolvedMode::Overlay,
    };
    let up = up_link_count(pod, cur);
    let resolution = match mode {
        ResolvedMode::Underlay => {
            let first_invoke = cur == first;
            if !first_invoke && !veth_exists {
                return Err(CoordinatorError::Veth0Missing {
                    ifname: cur.into(),
                    first: first.into(),
                });
            }
            ModeResolution {
                mode,
                first_invoke,
                // The first NIC's table only ever holds host routes; nothing points to it.
                current_table: if first_invoke {
                    101
                } else {
                    up.saturating_add(98)
                },
            }
        }
        ResolvedMode::Overlay => {
            if cur == first {
                return Err(CoordinatorError::OverlayOnFirstNic { ifname: cur.into() });
            }
            if veth_exists {
                return Err(CoordinatorError::OverlayAfterUnderlay { ifname: cur.into() });
            }
            let first_invoke = up == 2;
            ModeResolution {
                mode,
                first_invoke,
                current_table: if first_invoke {
                    101
                } else {
                    up.saturating_add(99)
                },
            }
        }
    };
    Ok(Some(resolution))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::view::LinkView;

    fn pod(names: &[&str]) -> PodView {
        let mut links = vec![LinkView::loopback()];
        for (i, n) in names.iter().enumerate() {
            links.push(LinkView::ethernet(*n, i as u32 + 2, None));
        }
        PodView::new(links)
    }

    fn r(mode: ResolvedMode, first_invoke: bool, current_table: u32) -> Option<ModeResolution> {
        Some(ModeResolution {
            mode,
            first_invoke,
            current_table,
        })
    }

    #[test]
    fn auto_mode() {
        use ResolvedMode::*;
        let p = pod(&["eth0"]);
        assert_eq!(
            resolve_mode(Mode::Auto, "eth0", "eth0", &p),
            Ok(r(Underlay, true, 101))
        );
        let p = pod(&["eth0", "net1"]);
        assert_eq!(
            resolve_mode(Mode::Auto, "net1", "eth0", &p),
            Ok(r(Overlay, true, 101))
        );
        let p = pod(&["eth0", "net1", "net2"]);
        assert_eq!(
            resolve_mode(Mode::Auto, "net2", "eth0", &p),
            Ok(r(Overlay, false, 102))
        );
        let p = pod(&["eth0", "veth0", "net1"]);
        assert_eq!(
            resolve_mode(Mode::Auto, "net1", "eth0", &p),
            Ok(r(Underlay, false, 101))
        );
        let p = pod(&["eth0", "veth0", "net1", "net2"]);
        assert_eq!(
            resolve_mode(Mode::Auto, "net2", "eth0", &p),
            Ok(r(Underlay, false, 102))
        );
        assert_eq!(resolve_mode(Mode::Disable, "net2", "eth0", &p), Ok(None));
    }

    #[test]
    fn cur_counts_as_up_even_if_the_view_says_down() {
        let mut p = pod(&["eth0", "net1"]);
        p.links[2].up = false;
        assert_eq!(up_link_count(&p, "net1"), 2);
        assert_eq!(up_link_count(&p, "eth0"), 1);
    }

    #[test]
    fn errors() {
        let p = pod(&["eth0", "net1"]);
        assert_eq!(
            resolve_mode(Mode::Underlay, "net1", "eth0", &p),
            Err(CoordinatorError::Veth0Missing {
                ifname: "net1".into(),
                first: "eth0".into()
            })
        );
        assert_eq!(
            resolve_mode(Mode::Overlay, "eth0", "eth0", &p),
            Err(CoordinatorError::OverlayOnFirstNic {
                ifname: "eth0".into()
            })
        );
        let p = pod(&["eth0", "veth0", "net1"]);
        assert_eq!(
            resolve_mode(Mode::Overlay, "net1", "eth0", &p),
            Err(CoordinatorError::OverlayAfterUnderlay {
                ifname: "net1".into()
            })
        );
    }
}
