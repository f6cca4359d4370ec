//! IP-conflict and gateway-reachability detection (spec §3.13) and the announcement that
//! follows a successful ADD (spec §3.1 step 6), inside the pod's netns.
//!
//! The agent asks for detection per address (`enableIPConflictDetection`,
//! `enableGatewayDetection`). Only this NIC's flagged addresses are probed. Per family,
//! conflicts are probed first and gateways second; IPv4 and IPv6 run on two threads at once.
//! The probes (`spiderpool_netlink::probe`) set the NIC up themselves; the main plugin
//! (macvlan...) has created it but not configured it yet, so the IPv4 gateway probe asks from
//! `0.0.0.0`, which hosts answer.

use std::net::IpAddr;
use std::time::Duration;

use spiderpool_core::agentapi::IpamAddResponse;
use spiderpool_core::cni::{CniError, ERR_INTERNAL, ERR_INVALID_NETNS};
use spiderpool_core::coordinator::MacAddr;
use spiderpool_netlink::{NetNs, probe};

/// Time given to one conflict probe: 3 tries of 100 ms, upstream's read deadline per try
/// (upstream caps the whole probe at 1 s).
pub const CONFLICT_TIMEOUT: Duration = Duration::from_millis(300);
/// Time given to one gateway probe: 3 tries of 100 ms, within upstream's 500 ms cap.
pub const GATEWAY_TIMEOUT: Duration = Duration::from_millis(300);

/// One address of this NIC the agent asked to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The pod's address.
    pub ip: IpAddr,
    /// Probe for a conflict.
    pub conflict: bool,
    /// The gateway to probe, when gateway detection is asked and the address has one.
    pub gateway: Option<IpAddr>,
}

/// Why detection failed the ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Another host answered for the pod's address.
    Conflict {
        /// `CNI_IFNAME`.
        ifname: String,
        /// The address.
        ip: IpAddr,
        /// Who answered.
        mac: MacAddr,
    },
    /// The gateway did not answer.
    Unreachable {
        /// The gateway.
        gateway: IpAddr,
    },
    /// `CNI_NETNS` could not be opened.
    NetNs(String),
    /// A probe could not run (no such interface, no `CAP_NET_RAW`...): no verdict.
    Probe(String),
}

impl Failure {
    /// The CNI error: upstream's messages for the verdicts (code 999, as upstream's plugin
    /// returns them as plain errors); 8 for a netns that cannot be opened.
    pub fn to_cni(&self) -> CniError {
        match self {
            Failure::Conflict { ifname, ip, mac } => CniError::new(
                ERR_INTERNAL,
                format!(
                    "ip conflict: pod's interface {ifname} with an conflicting ip {ip}, {ip} is located at {mac}"
                ),
            ),
            Failure::Unreachable { gateway } => {
                CniError::new(ERR_INTERNAL, format!("gateway {gateway} is unreachable"))
            }
            Failure::NetNs(msg) => CniError::new(ERR_INVALID_NETNS, msg.clone()),
            Failure::Probe(msg) => CniError::new(ERR_INTERNAL, msg.clone()),
        }
    }
}

/// The addresses of `ifname` in the agent's answer that carry a detection flag. Addresses the
/// result would refuse are skipped here: `build_result` has already failed on them.
pub fn targets(resp: &IpamAddResponse, ifname: &str) -> Vec<Target> {
    resp.ips
        .iter()
        .filter(|ip| ip.nic == ifname)
        .filter_map(|ip| {
            let addr = ip.address.parse::<ipnet::IpNet>().ok()?.addr();
            let gateway = if ip.enable_gateway_detection {
                ip.gateway.parse::<IpAddr>().ok()
            } else {
                None
            };
            let t = Target {
                ip: addr,
                conflict: ip.enable_ip_conflict_detection,
                gateway,
            };
            (t.conflict || t.gateway.is_some()).then_some(t)
        })
        .collect()
}

/// The probes, behind a trait so the order and verdicts are testable without a netns.
pub trait Prober: Sync {
    /// `Some(mac)` when another host answers for `ip`.
    fn conflict(&self, ip: IpAddr) -> Result<Option<MacAddr>, String>;
    /// Whether `gateway` answers.
    fn gateway(&self, gateway: IpAddr) -> Result<bool, String>;
}

/// spiderpool-netlink's ARP / NDP probes on one NIC of a netns.
pub struct NetnsProber<'a> {
    netns: &'a NetNs,
    ifname: &'a str,
}

impl<'a> NetnsProber<'a> {
    /// Probes on `ifname` inside `netns`.
    pub fn new(netns: &'a NetNs, ifname: &'a str) -> Self {
        NetnsProber { netns, ifname }
    }
}

impl Prober for NetnsProber<'_> {
    fn conflict(&self, ip: IpAddr) -> Result<Option<MacAddr>, String> {
        probe::probe_ip_conflict(self.netns, self.ifname, ip, CONFLICT_TIMEOUT).map_err(|e| {
            format!(
                "IP conflict detection of {ip} on {} failed: {e}",
                self.ifname
            )
        })
    }

    fn gateway(&self, gateway: IpAddr) -> Result<bool, String> {
        probe::probe_gateway(self.netns, self.ifname, gateway, GATEWAY_TIMEOUT).map_err(|e| {
            format!(
                "gateway detection of {gateway} on {} failed: {e}",
                self.ifname
            )
        })
    }
}

/// Opens `netns_path` and probes `targets` on `ifname` there.
pub fn detect_in(netns_path: &str, ifname: &str, targets: &[Target]) -> Result<(), Failure> {
    let netns = NetNs::open(netns_path)
        .map_err(|e| Failure::NetNs(format!("failed to open netns {netns_path:?}: {e}")))?;
    detect(&NetnsProber::new(&netns, ifname), ifname, targets)
}

/// Probes `targets`: IPv4 and IPv6 concurrently; within a family every conflict first, then
/// every gateway. The first failure wins, IPv4's before IPv6's.
pub fn detect(prober: &dyn Prober, ifname: &str, targets: &[Target]) -> Result<(), Failure> {
    let (v4, v6): (Vec<&Target>, Vec<&Target>) = targets.iter().partition(|t| t.ip.is_ipv4());
    let (r4, r6) = if v4.is_empty() || v6.is_empty() {
        // One family: no thread needed.
        (family(prober, ifname, &v4), family(prober, ifname, &v6))
    } else {
        std::thread::scope(|s| {
            let h6 = s.spawn(|| family(prober, ifname, &v6));
            let r4 = family(prober, ifname, &v4);
            let r6 = h6
                .join()
                .unwrap_or_else(|_| Err(Failure::Probe("IPv6 detection panicked".into())));
            (r4, r6)
        })
    };
    r4.and(r6)
}

fn family(prober: &dyn Prober, ifname: &str, targets: &[&Target]) -> Result<(), Failure> {
    for t in targets.iter().filter(|t| t.conflict) {
        match prober.conflict(t.ip).map_err(Failure::Probe)? {
            Some(mac) => {
                return Err(Failure::Conflict {
                    ifname: ifname.to_owned(),
                    ip: t.ip,
                    mac,
                });
            }
            None => log::debug!("no conflict for {}", t.ip),
        }
    }
    for (ip, gateway) in targets.iter().filter_map(|t| Some((t.ip, t.gateway?))) {
        if !prober.gateway(gateway).map_err(Failure::Probe)? {
            return Err(Failure::Unreachable { gateway });
        }
        log::debug!("gateway {gateway} of {ip} answers");
    }
    Ok(())
}

/// Gratuitous ARP / unsolicited NA for this NIC's addresses from its MAC (spec §3.1 step 6).
/// The address is not configured yet (the main plugin does that after IPAM), but the MAC is
/// final, so neighbours holding a stale entry for the address (a previous pod's MAC) update
/// it. Failures are only logged, as upstream.
pub fn announce(netns_path: &str, ifname: &str, addrs: &[IpAddr]) {
    if addrs.is_empty() {
        return;
    }
    let sent = NetNs::open(netns_path).and_then(|ns| probe::announce(&ns, ifname, addrs));
    match sent {
        Ok(()) => log::debug!("announced {addrs:?} on {ifname}"),
        Err(e) => log::warn!("announcing {addrs:?} on {ifname} failed (ignored): {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers from tables and records the calls.
    #[derive(Default)]
    struct Fake {
        owners: Vec<(IpAddr, MacAddr)>,
        gateways: Vec<IpAddr>,
        broken: bool,
        calls: Mutex<Vec<String>>,
    }

    impl Prober for Fake {
        fn conflict(&self, ip: IpAddr) -> Result<Option<MacAddr>, String> {
            self.calls.lock().unwrap().push(format!("conflict {ip}"));
            if self.broken {
                return Err("link net1 not found".into());
            }
            Ok(self.owners.iter().find(|(o, _)| *o == ip).map(|(_, m)| *m))
        }
        fn gateway(&self, gateway: IpAddr) -> Result<bool, String> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("gateway {gateway}"));
            Ok(self.gateways.contains(&gateway))
        }
    }

    fn resp(json: &str) -> IpamAddResponse {
        serde_json::from_str(json).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const DUAL: &str = r#"{"ips":[
        {"version":4,"address":"10.6.212.100/16","gateway":"10.6.0.1","nic":"net1",
         "enableIPConflictDetection":true,"enableGatewayDetection":true},
        {"version":6,"address":"fd00:6::100/64","gateway":"fd00:6::1","nic":"net1",
         "enableIPConflictDetection":true,"enableGatewayDetection":true},
        {"version":4,"address":"10.7.0.5/24","gateway":"10.7.0.1","nic":"net2",
         "enableIPConflictDetection":true,"enableGatewayDetection":true}]}"#;

    #[test]
    fn only_this_nics_flagged_addresses() {
        let t = targets(&resp(DUAL), "net1");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].ip, ip("10.6.212.100"));
        assert_eq!(t[0].gateway, Some(ip("10.6.0.1")));
        let none = resp(
            r#"{"ips":[{"version":4,"address":"10.6.212.100/16","gateway":"10.6.0.1","nic":"net1"}]}"#,
        );
        assert!(targets(&none, "net1").is_empty());
        // Gateway detection without a gateway: nothing to probe.
        let no_gw = resp(
            r#"{"ips":[{"version":4,"address":"10.6.212.100/16","nic":"net1","enableGatewayDetection":true}]}"#,
        );
        assert!(targets(&no_gw, "net1").is_empty());
    }

    #[test]
    fn conflict_first_then_gateway_and_upstream_messages() {
        let t = targets(&resp(DUAL), "net1");
        let fake = Fake {
            gateways: vec![ip("10.6.0.1"), ip("fd00:6::1")],
            ..Fake::default()
        };
        detect(&fake, "net1", &t).unwrap();
        let calls = fake.calls.lock().unwrap().clone();
        let pos = |s: &str| calls.iter().position(|c| c == s).unwrap();
        assert!(pos("conflict 10.6.212.100") < pos("gateway 10.6.0.1"));
        assert!(pos("conflict fd00:6::100") < pos("gateway fd00:6::1"));

        let mac = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
        let fake = Fake {
            owners: vec![(ip("10.6.212.100"), mac)],
            gateways: vec![ip("10.6.0.1"), ip("fd00:6::1")],
            ..Fake::default()
        };
        let e = detect(&fake, "net1", &t).unwrap_err().to_cni();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                999,
                "ip conflict: pod's interface net1 with an conflicting ip 10.6.212.100, 10.6.212.100 is located at 02:00:00:00:00:0a"
            )
        );
        // A conflict stops that family before its gateway probe.
        assert!(
            !fake
                .calls
                .lock()
                .unwrap()
                .contains(&"gateway 10.6.0.1".to_owned())
        );

        let fake = Fake {
            gateways: vec![ip("10.6.0.1")],
            ..Fake::default()
        };
        let e = detect(&fake, "net1", &t).unwrap_err().to_cni();
        assert_eq!(e.msg, "gateway fd00:6::1 is unreachable");

        let fake = Fake {
            broken: true,
            ..Fake::default()
        };
        let e = detect(&fake, "net1", &t).unwrap_err().to_cni();
        assert_eq!((e.code, e.msg.as_str()), (999, "link net1 not found"));
    }

    #[test]
    fn a_missing_netns_is_code_8() {
        let t = targets(&resp(DUAL), "net1");
        let e = detect_in("/nonexistent/netns", "net1", &t)
            .unwrap_err()
            .to_cni();
        assert_eq!(e.code, 8, "{e:?}");
        assert!(e.msg.contains("/nonexistent/netns"), "{}", e.msg);
    }
}
