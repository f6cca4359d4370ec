//! The kernel side of each command: read the pod and the node, plan, apply or verify.
//!
//! The plugin runs in the node's netns (the runtime starts it there); the pod's netns is
//! entered only on short-lived threads by `spiderpool-netlink`, so this process never changes
//! namespace itself. One such thread opens the pod's netlink socket and the sysctl files a
//! plan may touch ([`NetNs::handles`]); everything after that runs on the main thread.

use std::net::IpAddr;
use std::os::fd::AsFd;

use spiderpool_core::cni::{CniError, ERR_INTERNAL, ERR_INVALID_NETNS, Result100};
use spiderpool_core::coordinator::{
    AddRequest, CoordinatorConfig, DelPlan, DelRequest, HostView, LinkView, Plan, PodView,
    plan_add, plan_del_from_prev, render_del_plan, render_plan,
};
use spiderpool_netlink::mark::NftMarker;
use spiderpool_netlink::probe::PacketAnnouncer;
use spiderpool_netlink::sysctl::ProcSys;
use spiderpool_netlink::{
    NetNs, NetlinkSocket, ReadOptions, Target, apply_plan, read, read_host_with, read_with,
    sysctl_keys, teardown, verify,
};

/// Sysctls a plan may write; read before planning so CHECK can compare them, and opened inside
/// the pod up front so reading and writing them starts no thread.
const POD_SYSCTLS: [&str; 2] = [
    "net.ipv4.conf.all.rp_filter",
    "net.ipv6.conf.all.disable_ipv6",
];

fn kernel(what: &str, e: spiderpool_netlink::Error) -> CniError {
    CniError::new(ERR_INTERNAL, format!("{what}: {e}"))
}

/// A planner refusal (no such NIC, no usable address, mode conflicts...): code 999, as upstream
/// reports them, with the core's message.
fn refused(e: spiderpool_core::coordinator::CoordinatorError) -> CniError {
    CniError::new(ERR_INTERNAL, format!("coordinator: {e}"))
}

/// Opens the pod's netns (`CNI_NETNS`); code 8 if it cannot be opened.
pub fn open_pod(path: &str) -> Result<NetNs, CniError> {
    NetNs::open(path).map_err(|e| {
        CniError::new(
            ERR_INVALID_NETNS,
            format!("cannot open the pod netns {path}: {e}"),
        )
    })
}

/// Every usable address of the pod (all links but `lo`): the host looks up its route to each.
fn pod_ips(pod: &PodView) -> Vec<IpAddr> {
    pod.links
        .iter()
        .filter(|l| l.name != "lo")
        .flat_map(LinkView::usable_ips)
        .collect()
}

struct Views {
    pod: PodView,
    host: HostView,
}

fn read_views(
    pnl: &mut NetlinkSocket,
    psys: &mut ProcSys<'_>,
    hnl: &mut NetlinkSocket,
    hsys: &mut ProcSys<'_>,
) -> Result<Views, CniError> {
    // The planner never looks at neighbours: leave those dumps out.
    let pod = read_with(pnl, psys, &POD_SYSCTLS, ReadOptions::PLANNING)
        .map_err(|e| kernel("reading the pod netns", e))?;
    let host = read_host_with(hnl, hsys, &[], &pod_ips(&pod), ReadOptions::PLANNING)
        .map_err(|e| kernel("reading the node netns", e))?;
    Ok(Views { pod, host })
}

/// What ADD reads before it plans: the pod's and node's handles and views. Reading changes
/// nothing, so it can happen while the agent is still answering.
pub struct AddInput<'a> {
    host_ns: NetNs,
    pnl: NetlinkSocket,
    psys: ProcSys<'a>,
    hnl: NetlinkSocket,
    hsys: ProcSys<'static>,
    views: Views,
}

/// Opens the handles ADD needs (one thread into the pod) and reads the pod and the node.
pub fn read_add(pod_ns: &NetNs) -> Result<AddInput<'_>, CniError> {
    let host_ns = NetNs::current().map_err(|e| kernel("opening the node netns", e))?;
    let (mut pnl, mut psys) = pod_ns
        .handles(&POD_SYSCTLS)
        .map_err(|e| kernel("netlink socket in the pod netns", e))?;
    let mut hnl =
        NetlinkSocket::new().map_err(|e| kernel("netlink socket in the node netns", e))?;
    let mut hsys = ProcSys::here();
    let views = read_views(&mut pnl, &mut psys, &mut hnl, &mut hsys)?;
    Ok(AddInput {
        host_ns,
        pnl,
        psys,
        hnl,
        hsys,
        views,
    })
}

/// ADD: plans from what [`read_add`] read and applies it with [`apply_plan`] (the pod plan,
/// then the node plan; if the node plan fails the pod plan is undone too, so nothing is left
/// half-applied).
pub fn add(
    cfg: &CoordinatorConfig,
    req: &AddRequest,
    pod_ns: &NetNs,
    input: AddInput<'_>,
) -> Result<Plan, CniError> {
    let AddInput {
        host_ns,
        mut pnl,
        mut psys,
        mut hnl,
        mut hsys,
        views: Views { pod, host },
    } = input;
    let plan = plan_add(cfg, req, &pod, &host).map_err(refused)?;
    log::debug!("plan for {}:\n{}", req.ifname, render_plan(&plan));
    for w in &plan.warnings {
        log::warn!("{w}");
    }

    let mut marker = NftMarker::in_netns(pod_ns);
    // Sends the gratuitous ARP / unsolicited NA a podMACPrefix change calls for; only plans
    // with a MAC change have an announce step.
    let mut announcer = PacketAnnouncer::in_netns(pod_ns);
    let mut pod_target = Target::new(&mut pnl, &mut psys)
        .with_peer_netns(host_ns.as_fd())
        .with_marker(&mut marker)
        .with_announcer(&mut announcer);
    let mut node_target = Target::new(&mut hnl, &mut hsys);
    // Every failure is code 999; the message says which netns failed and what was rolled back.
    let report = apply_plan(&plan, &mut pod_target, &mut node_target)
        .map_err(|e| CniError::new(ERR_INTERNAL, e.to_string()))?;
    for note in &report.pod.notes {
        log::info!("{note}");
    }
    for (netns, r) in [("pod", &report.pod), ("node", &report.node)] {
        log::debug!(
            "{netns} plan: {} changed, {} already in place",
            r.changed,
            r.already
        );
    }
    Ok(plan)
}

/// CHECK: plans again from the live state and lists what the live namespaces lack. A plan
/// computed after ADD is (by the planner's design) already satisfied, so any drift means
/// something changed the pod's or node's routing since.
pub fn check(cfg: &CoordinatorConfig, req: &AddRequest, netns: &str) -> Result<(), CniError> {
    let pod_ns = open_pod(netns)?;
    let (mut pnl, mut psys) = pod_ns
        .handles(&POD_SYSCTLS)
        .map_err(|e| kernel("netlink socket in the pod netns", e))?;
    let mut hnl =
        NetlinkSocket::new().map_err(|e| kernel("netlink socket in the node netns", e))?;
    let mut hsys = ProcSys::here();
    let Views { pod, host } = read_views(&mut pnl, &mut psys, &mut hnl, &mut hsys)?;
    let plan = plan_add(cfg, req, &pod, &host).map_err(refused)?;
    let live_pod = read(&mut pnl, &mut psys, &sysctl_keys(&plan.pod))
        .map_err(|e| kernel("reading the pod netns", e))?;
    let live_host = read(&mut hnl, &mut hsys, &sysctl_keys(&plan.host))
        .map_err(|e| kernel("reading the node netns", e))?;
    let mut drift: Vec<String> = verify(&plan.pod, &live_pod)
        .iter()
        .map(|d| format!("pod {d}"))
        .collect();
    drift.extend(
        verify(&plan.host, &live_host)
            .iter()
            .map(|d| format!("node {d}")),
    );
    if drift.is_empty() {
        return Ok(());
    }
    log::error!("drift for {}:\n{}", req.ifname, drift.join("\n"));
    Err(CniError::new(
        ERR_INTERNAL,
        format!(
            "coordinator: {} differs from what ADD set up: {}",
            req.ifname,
            drift.join("; ")
        ),
    ))
}

/// DEL: host-side teardown planned by [`plan_del_from_prev`]: with the pod netns gone (or
/// `CNI_NETNS` empty) or the NIC gone, the NIC's addresses come from `prevResult` when the
/// runtime passes one, and with the netns gone the underlay host veth is deleted whatever NIC
/// this is.
pub fn del(
    cfg: &CoordinatorConfig,
    req: &DelRequest,
    netns: Option<&str>,
    prev: Option<&Result100>,
) -> Result<DelPlan, CniError> {
    let pod_ns = match netns.filter(|p| !p.is_empty()) {
        None => None,
        Some(path) => match NetNs::open(path) {
            Ok(ns) => Some(ns),
            Err(e) if e.is_not_found() => {
                log::info!("pod netns {path} is gone; node-side teardown only");
                None
            }
            Err(e) => {
                return Err(CniError::new(
                    ERR_INVALID_NETNS,
                    format!("cannot open the pod netns {path}: {e}"),
                ));
            }
        },
    };
    let pod = match &pod_ns {
        Some(ns) => {
            let (mut pnl, mut psys) = ns
                .handles(&[])
                .map_err(|e| kernel("netlink socket in the pod netns", e))?;
            Some(
                read_with(&mut pnl, &mut psys, &[], ReadOptions::PLANNING)
                    .map_err(|e| kernel("reading the pod netns", e))?,
            )
        }
        None => None,
    };
    let mut hnl =
        NetlinkSocket::new().map_err(|e| kernel("netlink socket in the node netns", e))?;
    let mut hsys = ProcSys::here();
    let host = read_host_with(&mut hnl, &mut hsys, &[], &[], ReadOptions::PLANNING)
        .map_err(|e| kernel("reading the node netns", e))?;

    let plan = plan_del_from_prev(cfg, req, pod.as_ref(), &host, prev);
    log::debug!("DEL plan for {}:\n{}", req.ifname, render_del_plan(&plan));
    let mut target = Target::new(&mut hnl, &mut hsys);
    teardown(&plan, &mut target).map_err(|e| kernel("node-side teardown", e))?;
    Ok(plan)
}
