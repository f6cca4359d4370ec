//! `spiderpoolctl verify` on real namespaces: an underlay pod is planned from its live views,
//! the plan is applied, the binary finds no drift (from the topology and from the plan JSON),
//! then a route deleted with `ip` is reported. Needs root: ignored by a plain
//! `cargo test`, run by `scripts/test.sh` (where a missing need fails it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::process::{Command, Output};

use spiderpool_core::coordinator::{AddRequest, CoordinatorConfig, Mode, plan_add};
use spiderpool_netlink::link::{self, VethOptions};
use spiderpool_netlink::mark::NftMarker;
use spiderpool_netlink::sysctl::ProcSys;
use spiderpool_netlink::{NetNs, Target, apply, read, read_host};
use spiderpool_test_kit::gate::{self, Need};

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spiderpoolctl"))
        .args(args)
        .output()
        .expect("spiderpoolctl runs")
}

/// A path another process can open the netns by: our open handle, through `/proc`.
fn path_of(ns: &NetNs) -> String {
    format!("/proc/{}/fd/{}", std::process::id(), ns.as_fd().as_raw_fd())
}

fn ip(ns: &NetNs, script: &str) {
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let out = ns
            .run(move || Ok(Command::new("ip").args(&args).output().expect("run ip")))
            .unwrap();
        assert!(
            out.status.success(),
            "ip {line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
#[ignore = "needs root"]
fn verify_finds_no_drift_after_apply_then_reports_a_deleted_route() {
    // nft: the underlay plan marks veth0.
    if !gate::ready(&[Need::Root, Need::Program("ip"), Need::Program("nft")]) {
        return;
    }
    let host = NetNs::create_anonymous().unwrap();
    let pod = NetNs::create_anonymous().unwrap();
    let router = NetNs::create_anonymous().unwrap();
    let mut hnl = host.route_socket().unwrap();
    let peer = VethOptions {
        peer_netns: Some(router.as_fd()),
        ..Default::default()
    };
    link::create_veth(&mut hnl, "ens192", "eth0", &peer).unwrap();
    ip(
        &host,
        "link set lo up
         addr add 10.6.212.132/16 dev ens192
         link set ens192 up
         link add mv0 link ens192 type macvlan mode bridge",
    );
    let mv0 = link::require(&mut hnl, "mv0").unwrap();
    link::set_netns(&mut hnl, mv0.index, pod.as_fd()).unwrap();
    ip(
        &pod,
        "link set lo up
         link set mv0 name eth0
         addr add 10.6.212.145/16 dev eth0
         link set eth0 up
         route add default via 10.6.0.1 dev eth0",
    );

    // The topology file: the live views before the coordinator runs.
    let mut pnl = pod.route_socket().unwrap();
    let mut psys = ProcSys::in_netns(&pod);
    let mut hsys = ProcSys::in_netns(&host);
    let pod_view = read(&mut pnl, &mut psys, &[]).unwrap();
    let host_view =
        read_host(&mut hnl, &mut hsys, &[], &["10.6.212.145".parse().unwrap()]).unwrap();
    let container = "0123456789abcdef-underlay";
    let topology = serde_json::json!({
        "containerID": container,
        "ifname": "eth0",
        "nad": {"mode": "underlay"},
        "pod": pod_view,
        "host": host_view,
    });
    let dir = tempfile::tempdir().unwrap();
    let topo_file = dir.path().join("topology.json");
    std::fs::write(&topo_file, topology.to_string()).unwrap();

    // Apply what the coordinator would (the same planner, default settings but the mode).
    let cfg = CoordinatorConfig {
        mode: Mode::Underlay,
        ..CoordinatorConfig::default()
    };
    let plan = plan_add(
        &cfg,
        &AddRequest::new(container, "eth0"),
        &pod_view,
        &host_view,
    )
    .unwrap();
    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, serde_json::to_string(&plan).unwrap()).unwrap();
    let mut marker = NftMarker::in_netns(&pod);
    apply(
        &plan.pod,
        &mut Target::new(&mut pnl, &mut psys)
            .with_peer_netns(host.as_fd())
            .with_marker(&mut marker),
    )
    .unwrap();
    apply(&plan.host, &mut Target::new(&mut hnl, &mut hsys)).unwrap();

    let (pod_path, host_path) = (path_of(&pod), path_of(&host));
    let run = |file: &Path, host: bool| {
        let mut args = vec!["verify", "--netns", &pod_path, "-f", file.to_str().unwrap()];
        if host {
            args.extend(["--host-netns", host_path.as_str()]);
        }
        ctl(&args)
    };
    for file in [&topo_file, &plan_file] {
        let out = run(file, true);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "");
    }
    let out = run(&topo_file, false);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("node steps not checked"));

    // Someone deletes the reply route of table 100 and the node's route to the pod.
    ip(&pod, "route del default table 100");
    ip(&host, "route del 10.6.212.145 table 500");
    let out = run(&topo_file, true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("pod: step ")
            && lines[0].contains(": missing: ip route add default via 10.6.212.132 dev veth0")
            && lines[0].contains("table 100"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("node: step ")
            && lines[1].contains("10.6.212.145")
            && lines[1].contains("table 500"),
        "{stdout}"
    );

    // Bad input: exit 2.
    let out = ctl(&[
        "verify",
        "--netns",
        "/nonexistent/netns",
        "-f",
        topo_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent/netns"),
        "{}",
        text(&out.stderr)
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"pod\": 1}").unwrap();
    let out = ctl(&["verify", "--netns", &pod_path, "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
