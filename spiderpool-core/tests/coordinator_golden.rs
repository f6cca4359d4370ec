//! Golden tests of coordinator plans against what upstream's binaries produced
//! (`shared/spec/upstream-observed.md` §1.3–1.5) and, for cases upstream was not run on, against
//! the tables the spec (§4.5) derives.
//!
//! Each case builds the pod and host as they were *before* the coordinator ran (after the main
//! CNI plugin), plans the ADD, applies the plan to those views and prints the result the way
//! iproute2 does. The expected text is copied verbatim from upstream-observed.md, trailing spaces
//! included.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use spiderpool_core::coordinator::CoordinatorError;
use std::net::IpAddr;

use ipnet::IpNet;
use spiderpool_core::coordinator::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn eth(name: &str, index: u32, m: &str, addrs: &[&str]) -> LinkView {
    LinkView::ethernet(name, index, Some(mac(m))).with_addresses(addrs.iter().map(|a| net(a)))
}

fn route(dst: &str, dev: &str) -> Route {
    Route::new(net(dst), dev)
}

fn kernel_route(dst: &str, dev: &str, src: &str) -> Route {
    route(dst, dev)
        .with_proto(Proto::KERNEL)
        .with_scope(Scope::Link)
        .with_src(Some(ip(src)))
}

fn seed_agent() -> AgentCoordinatorConfig {
    // The fake agent's answer of upstream-observed §1.2.
    serde_json::from_str(
        r#"{"mode":"auto","overlayPodCIDR":["10.233.64.0/18"],"serviceCIDR":["10.233.0.0/18"],"hijackCIDR":["169.254.0.0/16"],"tunePodRoutes":true,"hostRuleTable":500,"podRPFilter":0,"podDefaultRouteNIC":""}"#,
    )
    .unwrap()
}

fn seed_nad() -> NadCoordinatorConf {
    // The SMC-rendered coordinator entry plus cniVersion/name (upstream-observed §1.3 step 2).
    serde_json::from_str(
        r#"{"cniVersion": "0.3.1", "name": "macvlan-ens192", "tunePodRoutes": true, "mode": "auto", "type": "coordinator"}"#,
    )
    .unwrap()
}

fn seed_config() -> CoordinatorConfig {
    merge(&seed_nad(), &seed_agent()).unwrap()
}

/// The Calico-like pod of §1.3 after the macvlan ADD of net1, before the coordinator.
fn overlay_pod(eth0_mac: &str, net1_mac: &str) -> PodView {
    let mut pod = PodView::new(vec![
        LinkView::loopback(),
        eth("eth0", 2, eth0_mac, &["10.233.73.210/32"]).with_peer(3),
        eth("net1", 3, net1_mac, &["10.6.212.145/16"]),
    ]);
    // "Pod routes after macvlan, before coordinator", in the order iproute2 printed them.
    pod.routes = vec![
        route("0.0.0.0/0", "net1").via(ip("10.6.0.1")),
        route("0.0.0.0/0", "eth0").via(ip("169.254.1.1")),
        kernel_route("10.6.0.0/16", "net1", "10.6.212.145"),
        route("169.254.1.1/32", "eth0").with_scope(Scope::Link),
    ];
    pod
}

/// The node of §1.1 with the Calico host veth `calitest`.
fn overlay_host() -> HostView {
    let mut host = HostView::new(vec![
        LinkView::loopback(),
        eth("ens192", 2, "da:5b:0e:4e:d4:59", &["10.6.212.132/16"]),
        LinkView::ethernet("calitest", 3, Some(mac("ee:ee:ee:ee:ee:ee"))).with_peer(2),
    ]);
    host.routes = vec![
        route("0.0.0.0/0", "ens192").via(ip("10.6.0.1")),
        kernel_route("10.6.0.0/16", "ens192", "10.6.212.132"),
        route("10.233.73.210/32", "calitest").with_scope(Scope::Link),
    ];
    host.route_src
        .insert(ip("10.233.73.210"), ip("10.6.212.132"));
    host.route_src
        .insert(ip("10.6.212.145"), ip("10.6.212.132"));
    host
}

const RULES_FRESH_V4: &str =
    "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n";
const HOST_RULES_V4: &str = "0:\tfrom all lookup local\n1000:\tfrom all lookup 500\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n";
const HOST_MAIN_SEED: &str = "default via 10.6.0.1 dev ens192 \n10.6.0.0/16 dev ens192 proto kernel scope link src 10.6.212.132 \n10.233.73.210 dev calitest scope link \n";

fn v4_route(view_routes: &[Route], table: u32) -> String {
    render_ip_route(view_routes, table, Family::V4)
}

/// upstream-observed §1.3: Calico eth0 + macvlan net1, `mode: auto`.
#[test]
fn overlay_seed_matches_upstream() {
    let cfg = seed_config();
    let pod = overlay_pod("a2:40:ec:4f:ba:93", "6a:1b:e7:ac:f8:a0");
    let host = overlay_host();
    let plan = plan_add(
        &cfg,
        &AddRequest::new("cid-overlay-0001", "net1"),
        &pod,
        &host,
    )
    .unwrap();
    assert_eq!(
        plan.resolution,
        Some(ModeResolution {
            mode: ResolvedMode::Overlay,
            first_invoke: true,
            current_table: 101
        })
    );
    assert_eq!(plan.host_veth, "calitest");
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let (p, h) = plan.apply(&pod, &host);

    assert_eq!(
        render_ip_rule(&p.rules, Family::V4),
        "0:\tfrom all lookup local\n\
         32764:\tfrom 10.233.73.210 lookup 100\n\
         32765:\tfrom 10.6.212.145 lookup 101\n\
         32766:\tfrom all lookup main\n\
         32767:\tfrom all lookup default\n"
    );
    assert_eq!(
        v4_route(&p.routes, TABLE_MAIN),
        "default via 169.254.1.1 dev eth0 \n\
         10.6.0.0/16 dev net1 proto kernel scope link src 10.6.212.145 \n\
         10.6.212.132 dev eth0 scope link src 10.233.73.210 \n\
         10.233.0.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         169.254.0.0/16 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         169.254.1.1 dev eth0 scope link \n"
    );
    assert_eq!(
        v4_route(&p.routes, 100),
        "default via 169.254.1.1 dev eth0 \n"
    );
    assert_eq!(
        v4_route(&p.routes, 101),
        "default via 10.6.0.1 dev net1 \n\
         10.6.0.0/16 dev net1 scope link src 10.6.212.145 \n\
         10.6.212.132 dev eth0 scope link src 10.233.73.210 \n"
    );
    assert_eq!(v4_route(&p.routes, 102), "");
    assert_eq!(
        render_ip_neigh(&p.neighbours, None),
        "10.6.212.132 dev eth0 lladdr ee:ee:ee:ee:ee:ee PERMANENT \n"
    );
    assert_eq!(
        p.sysctls
            .get("net.ipv4.conf.all.rp_filter")
            .map(String::as_str),
        Some("0")
    );
    assert!(p.marks.is_empty(), "no mangle rules in overlay mode");

    assert_eq!(render_ip_rule(&h.rules, Family::V4), HOST_RULES_V4);
    assert_eq!(v4_route(&h.routes, TABLE_MAIN), HOST_MAIN_SEED);
    assert_eq!(
        v4_route(&h.routes, 500),
        "10.6.212.145 dev calitest scope link \n"
    );
    assert_eq!(
        render_ip_neigh(&h.neighbours, None),
        "10.6.212.145 dev calitest lladdr a2:40:ec:4f:ba:93 PERMANENT \n"
    );

    // The plan as commands.
    assert_eq!(
        render_plan(&plan),
        "# mode Overlay, first NIC configured by the coordinator: true, policy table 101\n\
         # in the pod netns\n\
         ip link set dev net1 up\n\
         sysctl -w net.ipv4.conf.all.rp_filter=0\n\
         ip neigh replace 10.6.212.132 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent\n\
         ip route add 10.6.212.132 dev eth0 scope link src 10.233.73.210 table 101\n\
         ip route add 10.6.212.132 dev eth0 scope link src 10.233.73.210\n\
         ip route add 10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210\n\
         ip route add 10.233.0.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210\n\
         ip route add 169.254.0.0/16 via 10.6.212.132 dev eth0 src 10.233.73.210\n\
         ip rule add from 10.6.212.145 lookup 101 pref 32765\n\
         ip rule add from 10.233.73.210 lookup 100 pref 32764\n\
         ip route add default via 169.254.1.1 dev eth0 table 100\n\
         ip route add default via 10.6.0.1 dev net1 table 101\n\
         ip route del default via 10.6.0.1 dev net1\n\
         ip route add 10.6.0.0/16 dev net1 scope link src 10.6.212.145 table 101\n\
         # in the host netns\n\
         ip neigh flush to 10.6.212.145 nud all\n\
         ip neigh replace 10.6.212.145 lladdr a2:40:ec:4f:ba:93 dev calitest nud permanent\n\
         ip rule add from all lookup 500 pref 1000\n\
         ip route flush table 500 exact 10.6.212.145/32\n\
         ip route add 10.6.212.145 dev calitest scope link table 500\n"
    );

    // Re-running the ADD on the result plans nothing new for routes and rules (idempotent).
    let again = plan_add(&cfg, &AddRequest::new("cid-overlay-0001", "net1"), &p, &h).unwrap();
    assert_eq!(again.pod.added_rules().count(), 0);
    assert_eq!(again.pod.added_routes().count(), 0);
}

/// upstream-observed §1.4: the agent answers `podDefaultRouteNIC: net1` (pod annotation).
#[test]
fn overlay_default_route_nic_net1_matches_upstream() {
    let mut agent = seed_agent();
    agent.pod_default_route_nic = Some("net1".into());
    let cfg = merge(&seed_nad(), &agent).unwrap();
    let pod = overlay_pod("c2:f7:ee:99:e6:ed", "46:a2:fb:18:46:95");
    let host = overlay_host();
    let plan = plan_add(
        &cfg,
        &AddRequest::new("cid-overlay-0002", "net1"),
        &pod,
        &host,
    )
    .unwrap();
    let (p, h) = plan.apply(&pod, &host);
    let expected_101 = "default via 169.254.1.1 dev eth0 \n\
         10.6.212.132 dev eth0 scope link src 10.233.73.210 \n\
         10.233.0.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         169.254.0.0/16 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         169.254.1.1 dev eth0 scope link \n";
    assert_eq!(
        render_ip_rule(&p.rules, Family::V4),
        "0:\tfrom all lookup local\n\
         32765:\tfrom 10.233.73.210 lookup 101\n\
         32766:\tfrom all lookup main\n\
         32767:\tfrom all lookup default\n"
    );
    assert_eq!(
        v4_route(&p.routes, TABLE_MAIN),
        "default via 10.6.0.1 dev net1 \n\
         10.6.0.0/16 dev net1 proto kernel scope link src 10.6.212.145 \n\
         10.6.212.132 dev eth0 scope link src 10.233.73.210 \n\
         10.233.0.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         169.254.0.0/16 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         169.254.1.1 dev eth0 scope link \n"
    );
    assert_eq!(v4_route(&p.routes, 100), "");
    assert_eq!(v4_route(&p.routes, 101), expected_101);
    assert_eq!(v4_route(&p.routes, 102), "");
    assert_eq!(
        render_ip_neigh(&p.neighbours, None),
        "10.6.212.132 dev eth0 lladdr ee:ee:ee:ee:ee:ee PERMANENT \n"
    );
    assert_eq!(render_ip_rule(&h.rules, Family::V4), HOST_RULES_V4);
    assert_eq!(v4_route(&h.routes, TABLE_MAIN), HOST_MAIN_SEED);
    assert_eq!(
        v4_route(&h.routes, 500),
        "10.6.212.145 dev calitest scope link \n"
    );
    assert_eq!(
        render_ip_neigh(&h.neighbours, None),
        "10.6.212.145 dev calitest lladdr c2:f7:ee:99:e6:ed PERMANENT \n"
    );

    // The same through the annotation of an offline request, with no agent value.
    let cfg = seed_config();
    let mut req = AddRequest::new("cid-overlay-0002", "net1");
    req.default_route_nic_annotation = Some("net1".into());
    let plan2 = plan_add(&cfg, &req, &pod, &host).unwrap();
    assert_eq!(plan2.pod, plan.pod);
    // A NAD value beats the annotation: the NAD's eth0 is the default NIC, so plain tuning.
    let mut nad = seed_nad();
    nad.pod_default_route_nic = Some("eth0".into());
    let cfg = merge(&nad, &agent).unwrap();
    let plan3 = plan_add(&cfg, &req, &pod, &host).unwrap();
    let (p3, _) = plan3.apply(&pod, &host);
    assert_eq!(
        v4_route(&p3.routes, 100),
        "default via 169.254.1.1 dev eth0 \n"
    );
}

fn underlay_pod() -> PodView {
    let mut pod = PodView::new(vec![
        LinkView::loopback(),
        eth("eth0", 2, "ba:95:44:53:f2:c0", &["10.6.212.145/16"]),
    ]);
    pod.routes = vec![
        route("0.0.0.0/0", "eth0").via(ip("10.6.0.1")),
        kernel_route("10.6.0.0/16", "eth0", "10.6.212.145"),
    ];
    pod
}

fn underlay_host() -> HostView {
    let mut host = HostView::new(vec![
        LinkView::loopback(),
        eth("ens192", 2, "da:5b:0e:4e:d4:59", &["10.6.212.132/16"]),
    ]);
    host.routes = vec![
        route("0.0.0.0/0", "ens192").via(ip("10.6.0.1")),
        kernel_route("10.6.0.0/16", "ens192", "10.6.212.132"),
    ];
    host.route_src
        .insert(ip("10.6.212.145"), ip("10.6.212.132"));
    host
}

fn underlay_request() -> AddRequest {
    let mut req = AddRequest::new("0123456789abcdef-underlay", "eth0");
    // The MACs upstream's random generator picked in that run.
    req.veth_macs = Some(VethMacs {
        pod: mac("4e:c8:fc:cf:19:73"),
        host: mac("0e:f5:91:07:3e:31"),
    });
    req
}

const UNDERLAY_MAIN: &str = "default via 10.6.0.1 dev eth0 \n\
     10.6.0.0/16 dev eth0 proto kernel scope link src 10.6.212.145 \n\
     10.6.212.132 dev veth0 scope link src 10.6.212.145 \n\
     10.233.0.0/18 via 10.6.212.132 dev veth0 src 10.6.212.145 \n\
     10.233.64.0/18 via 10.6.212.132 dev veth0 src 10.6.212.145 \n\
     169.254.0.0/16 via 10.6.212.132 dev veth0 src 10.6.212.145 \n";

/// upstream-observed §1.5: the pod's eth0 is the macvlan itself.
#[test]
fn underlay_first_nic_matches_upstream() {
    let cfg = seed_config();
    let (pod, host) = (underlay_pod(), underlay_host());
    let plan = plan_add(&cfg, &underlay_request(), &pod, &host).unwrap();
    assert_eq!(
        plan.resolution,
        Some(ModeResolution {
            mode: ResolvedMode::Underlay,
            first_invoke: true,
            current_table: 101
        })
    );
    assert_eq!(plan.host_veth, "veth0123456789a");
    let (p, h) = plan.apply(&pod, &host);
    assert_eq!(
        render_ip_rule(&p.rules, Family::V4),
        "0:\tfrom all lookup local\n\
         1000:\tfrom all fwmark 0x1 lookup 100\n\
         32766:\tfrom all lookup main\n\
         32767:\tfrom all lookup default\n"
    );
    assert_eq!(v4_route(&p.routes, TABLE_MAIN), UNDERLAY_MAIN);
    assert_eq!(
        v4_route(&p.routes, 100),
        "default via 10.6.212.132 dev veth0 src 10.6.212.145 \n"
    );
    assert_eq!(
        v4_route(&p.routes, 101),
        "10.6.212.132 dev veth0 scope link src 10.6.212.145 \n"
    );
    assert_eq!(v4_route(&p.routes, 102), "");
    assert_eq!(
        render_ip_neigh(&p.neighbours, None),
        "10.6.212.132 dev veth0 lladdr 0e:f5:91:07:3e:31 PERMANENT \n"
    );
    let veth0 = p.link("veth0").unwrap();
    assert_eq!(veth0.mac, Some(mac("4e:c8:fc:cf:19:73")));
    assert_eq!(veth0.mtu, Some(1500));
    assert!(veth0.up);
    assert_eq!(
        p.marks,
        vec![ReplyViaVethMark {
            iface: "veth0".into(),
            mark: 1,
            table: 100,
            families: vec![Family::V4]
        }]
    );
    // The mangle rules as upstream-observed's `iptables -t mangle -S` lists them.
    let cmds = render_commands(&plan.pod);
    for rule in [
        "-A PREROUTING -i veth0 -m conntrack --ctstate NEW -j MARK --set-xmark 0x1/0xffffffff",
        "-A PREROUTING -m mark --mark 0x1 -j CONNMARK --save-mark",
        "-A OUTPUT -j CONNMARK --restore-mark",
    ] {
        assert!(
            cmds.contains(&format!("iptables -t mangle {rule}")),
            "{rule}"
        );
    }
    assert!(cmds.contains(
        &"ip link add veth0 mtu 1500 address 4e:c8:fc:cf:19:73 type veth peer name veth0123456789a mtu 1500 address 0e:f5:91:07:3e:31 netns 1".to_string()
    ));

    assert_eq!(render_ip_rule(&h.rules, Family::V4), HOST_RULES_V4);
    assert_eq!(
        v4_route(&h.routes, TABLE_MAIN),
        "default via 10.6.0.1 dev ens192 \n10.6.0.0/16 dev ens192 proto kernel scope link src 10.6.212.132 \n"
    );
    assert_eq!(
        v4_route(&h.routes, 500),
        "10.6.212.145 dev veth0123456789a scope link \n"
    );
    assert_eq!(
        render_ip_neigh(&h.neighbours, None),
        "10.6.212.145 dev veth0123456789a lladdr 4e:c8:fc:cf:19:73 PERMANENT \n"
    );
    let hv = h.link("veth0123456789a").unwrap();
    assert_eq!(hv.mac, Some(mac("0e:f5:91:07:3e:31")));
    assert!(hv.up);
    assert_eq!(hv.peer_index, Some(veth0.index));

    // upstream-observed §1.5 "Underlay DEL": the host veth goes and takes the table-500 route and
    // the neighbour with it; the node rule `1000: from all lookup 500` stays.
    let del = plan_del(
        &cfg,
        &DelRequest {
            container_id: "0123456789abcdef-underlay".into(),
            ifname: "eth0".into(),
        },
        Some(&p),
        &h,
    );
    let after = del.apply(&h);
    assert!(after.link("veth0123456789a").is_none());
    assert_eq!(render_ip_rule(&after.rules, Family::V4), HOST_RULES_V4);
    assert_eq!(v4_route(&after.routes, 500), "");
    assert_eq!(render_ip_neigh(&after.neighbours, None), "");
    // Also when the pod netns is already gone.
    let del = plan_del(
        &cfg,
        &DelRequest {
            container_id: "0123456789abcdef-underlay".into(),
            ifname: "eth0".into(),
        },
        None,
        &h,
    );
    assert_eq!(
        render_del_plan(&del),
        "# in the host netns\nip link del veth0123456789a\n"
    );
}

/// Underlay, second NIC (spec §4.5; upstream was not run on this case): net1 joins a pod whose
/// eth0 was configured as in §1.5.
#[test]
fn underlay_second_nic() {
    let cfg = seed_config();
    let (pod0, host0) = (underlay_pod(), underlay_host());
    let first = plan_add(&cfg, &underlay_request(), &pod0, &host0).unwrap();
    let (mut pod, mut host) = first.apply(&pod0, &host0);
    // The macvlan plugin adds net1 and its routes (new routes print first among equal prefixes).
    pod.links
        .push(eth("net1", 4, "6e:00:00:00:02:01", &["172.200.0.201/24"]));
    pod.routes
        .insert(0, route("0.0.0.0/0", "net1").via(ip("172.200.0.1")));
    pod.routes
        .push(kernel_route("172.200.0.0/24", "net1", "172.200.0.201"));
    host.route_src
        .insert(ip("172.200.0.201"), ip("10.6.212.132"));

    let mut req = AddRequest::new("0123456789abcdef-underlay", "net1");
    req.veth_macs = underlay_request().veth_macs;
    let plan = plan_add(&cfg, &req, &pod, &host).unwrap();
    assert_eq!(
        plan.resolution,
        Some(ModeResolution {
            mode: ResolvedMode::Underlay,
            first_invoke: false,
            current_table: 101
        })
    );
    let (p, h) = plan.apply(&pod, &host);
    assert_eq!(
        render_ip_rule(&p.rules, Family::V4),
        "0:\tfrom all lookup local\n\
         999:\tfrom 172.200.0.201 lookup 101\n\
         1000:\tfrom all fwmark 0x1 lookup 100\n\
         32766:\tfrom all lookup main\n\
         32767:\tfrom all lookup default\n"
    );
    assert_eq!(
        v4_route(&p.routes, TABLE_MAIN),
        format!(
            "{UNDERLAY_MAIN}172.200.0.0/24 dev net1 proto kernel scope link src 172.200.0.201 \n"
        )
    );
    assert_eq!(
        v4_route(&p.routes, 100),
        "default via 10.6.212.132 dev veth0 src 10.6.212.145 \n"
    );
    // [DOC≠CODE] upstream's code (not its docs) puts host and hijack routes in the table too.
    assert_eq!(
        v4_route(&p.routes, 101),
        "default via 172.200.0.1 dev net1 \n\
         10.6.212.132 dev veth0 scope link src 10.6.212.145 \n\
         10.233.0.0/18 via 10.6.212.132 dev veth0 src 10.6.212.145 \n\
         10.233.64.0/18 via 10.6.212.132 dev veth0 src 10.6.212.145 \n\
         169.254.0.0/16 via 10.6.212.132 dev veth0 src 10.6.212.145 \n\
         172.200.0.0/24 dev net1 scope link src 172.200.0.201 \n"
    );
    // No new pod neighbours after the first NIC.
    assert_eq!(p.neighbours, pod.neighbours);
    assert_eq!(
        v4_route(&h.routes, 500),
        "10.6.212.145 dev veth0123456789a scope link \n\
         172.200.0.201 dev veth0123456789a scope link \n"
    );
    assert_eq!(
        render_ip_neigh(&h.neighbours, None),
        "10.6.212.145 dev veth0123456789a lladdr 4e:c8:fc:cf:19:73 PERMANENT \n\
         172.200.0.201 dev veth0123456789a lladdr 4e:c8:fc:cf:19:73 PERMANENT \n"
    );

    // DEL of net1 removes only net1's host entries; the veth stays for eth0.
    let del = plan_del(
        &cfg,
        &DelRequest {
            container_id: "0123456789abcdef-underlay".into(),
            ifname: "net1".into(),
        },
        Some(&p),
        &h,
    );
    let after = del.apply(&h);
    assert_eq!(after, host);
}

/// Overlay, a third NIC (net2 → table 102; spec §4.5): NIC 1's rules and tables stay as they were.
#[test]
fn overlay_second_additional_nic() {
    let cfg = seed_config();
    let pod0 = overlay_pod("a2:40:ec:4f:ba:93", "6a:1b:e7:ac:f8:a0");
    let host0 = overlay_host();
    let first = plan_add(&cfg, &AddRequest::new("cid", "net1"), &pod0, &host0).unwrap();
    let (mut pod, mut host) = first.apply(&pod0, &host0);
    pod.links
        .push(eth("net2", 4, "6e:00:00:00:07:0a", &["10.7.212.10/16"]));
    pod.routes
        .insert(0, route("0.0.0.0/0", "net2").via(ip("10.7.0.1")));
    pod.routes
        .push(kernel_route("10.7.0.0/16", "net2", "10.7.212.10"));
    host.route_src.insert(ip("10.7.212.10"), ip("10.6.212.132"));

    let plan = plan_add(&cfg, &AddRequest::new("cid", "net2"), &pod, &host).unwrap();
    assert_eq!(
        plan.resolution,
        Some(ModeResolution {
            mode: ResolvedMode::Overlay,
            first_invoke: false,
            current_table: 102
        })
    );
    let (p, h) = plan.apply(&pod, &host);
    assert_eq!(
        render_ip_rule(&p.rules, Family::V4),
        "0:\tfrom all lookup local\n\
         32763:\tfrom 10.7.212.10 lookup 102\n\
         32764:\tfrom 10.233.73.210 lookup 100\n\
         32765:\tfrom 10.6.212.145 lookup 101\n\
         32766:\tfrom all lookup main\n\
         32767:\tfrom all lookup default\n"
    );
    assert_eq!(
        v4_route(&p.routes, 102),
        "default via 10.7.0.1 dev net2 \n\
         10.6.212.132 dev eth0 scope link src 10.233.73.210 \n\
         10.7.0.0/16 dev net2 scope link src 10.7.212.10 \n\
         10.233.0.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         169.254.0.0/16 via 10.6.212.132 dev eth0 src 10.233.73.210 \n"
    );
    // net2's default left main; its connected route stays; everything else is as after net1.
    assert_eq!(
        v4_route(&p.routes, TABLE_MAIN),
        "default via 169.254.1.1 dev eth0 \n\
         10.6.0.0/16 dev net1 proto kernel scope link src 10.6.212.145 \n\
         10.6.212.132 dev eth0 scope link src 10.233.73.210 \n\
         10.7.0.0/16 dev net2 proto kernel scope link src 10.7.212.10 \n\
         10.233.0.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         169.254.0.0/16 via 10.6.212.132 dev eth0 src 10.233.73.210 \n\
         169.254.1.1 dev eth0 scope link \n"
    );
    for t in [100, 101] {
        assert_eq!(
            v4_route(&p.routes, t),
            v4_route(&pod.routes, t),
            "table {t}"
        );
    }
    assert_eq!(
        v4_route(&h.routes, 500),
        "10.6.212.145 dev calitest scope link \n10.7.212.10 dev calitest scope link \n"
    );
    assert_eq!(p.neighbours, pod.neighbours, "no new pod neighbours");
}

/// Dual stack overlay (ours; upstream was not run on it). Calico gives eth0 a v4 /32 and a v6
/// /128 with a link-local v6 gateway; macvlan gives net1 both families. The kernel merges the two
/// v6 default routes (same metric, both with gateways) into one multipath route.
#[test]
fn overlay_dual_stack() {
    let mut agent = seed_agent();
    agent.overlay_pod_cidr = Some(vec!["10.233.64.0/18".into(), "fd00:10:233::/64".into()]);
    agent.service_cidr = Some(vec!["10.233.0.0/18".into(), "fd00:10:96::/112".into()]);
    let cfg = merge(&seed_nad(), &agent).unwrap();

    let mut pod = PodView::new(vec![
        LinkView::loopback(),
        eth(
            "eth0",
            2,
            "a2:40:ec:4f:ba:93",
            &[
                "10.233.73.210/32",
                "fd00:10:233::5/128",
                "fe80::a040:ecff:fe4f:ba93/64",
            ],
        )
        .with_peer(3),
        eth(
            "net1",
            3,
            "6a:1b:e7:ac:f8:a0",
            &[
                "10.6.212.145/16",
                "fd00:10:6::145/64",
                "fe80::681b:e7ff:feac:f8a0/64",
            ],
        ),
    ]);
    let calico_gw6 = ip("fe80::ecee:eeff:feee:eeee");
    let mut k6 = route("fd00:10:6::/64", "net1").with_proto(Proto::KERNEL);
    k6.metric = Some(256);
    let mut fe80_eth0 = route("fe80::/64", "eth0").with_proto(Proto::KERNEL);
    fe80_eth0.metric = Some(256);
    let mut fe80_net1 = route("fe80::/64", "net1").with_proto(Proto::KERNEL);
    fe80_net1.metric = Some(256);
    let mut multipath = Route::new(net("::/0"), "");
    multipath.metric = Some(1024);
    multipath.nexthops = vec![
        NextHop {
            gw: Some(ip("fd00:10:6::1")),
            dev: "net1".into(),
        },
        NextHop {
            gw: Some(calico_gw6),
            dev: "eth0".into(),
        },
    ];
    pod.routes = overlay_pod("a2:40:ec:4f:ba:93", "6a:1b:e7:ac:f8:a0").routes;
    pod.routes.extend([k6, fe80_eth0, fe80_net1, multipath]);

    let mut host = overlay_host();
    host.links[1]
        .addresses
        .extend([net("fd00:10:6::132/64"), net("fe80::d85b:eff:fe4e:d459/64")]);
    host.route_src
        .insert(ip("fd00:10:233::5"), ip("fd00:10:6::132"));
    host.route_src
        .insert(ip("fd00:10:6::145"), ip("fd00:10:6::132"));

    let plan = plan_add(&cfg, &AddRequest::new("cid-dual", "net1"), &pod, &host).unwrap();
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let (p, h) = plan.apply(&pod, &host);

    // IPv4 is exactly the seed case.
    let seed = plan_add(
        &seed_config(),
        &AddRequest::new("cid-dual", "net1"),
        &overlay_pod("a2:40:ec:4f:ba:93", "6a:1b:e7:ac:f8:a0"),
        &overlay_host(),
    )
    .unwrap()
    .apply(
        &overlay_pod("a2:40:ec:4f:ba:93", "6a:1b:e7:ac:f8:a0"),
        &overlay_host(),
    );
    for t in [TABLE_MAIN, 100, 101] {
        assert_eq!(v4_route(&p.routes, t), v4_route(&seed.0.routes, t));
    }
    assert_eq!(
        render_ip_rule(&p.rules, Family::V4),
        render_ip_rule(&seed.0.rules, Family::V4)
    );

    let v6 = |t| render_ip_route(&p.routes, t, Family::V6);
    assert_eq!(
        render_ip_rule(&p.rules, Family::V6),
        "0:\tfrom all lookup local\n\
         32764:\tfrom fd00:10:233::5 lookup 100\n\
         32765:\tfrom fd00:10:6::145 lookup 101\n\
         32766:\tfrom all lookup main\n"
    );
    // v6 routes carry no src; link-local addresses are neither pod nor host IPs.
    assert_eq!(
        v6(TABLE_MAIN),
        "fd00:10:6::132 dev eth0 metric 1024 pref medium\n\
         fd00:10:6::/64 dev net1 proto kernel metric 256 pref medium\n\
         fd00:10:96::/112 via fd00:10:6::132 dev eth0 metric 1024 pref medium\n\
         fd00:10:233::/64 via fd00:10:6::132 dev eth0 metric 1024 pref medium\n\
         fe80::/64 dev eth0 proto kernel metric 256 pref medium\n\
         fe80::/64 dev net1 proto kernel metric 256 pref medium\n\
         default via fe80::ecee:eeff:feee:eeee dev eth0 metric 1024 pref medium\n"
    );
    assert_eq!(
        v6(100),
        "default via fe80::ecee:eeff:feee:eeee dev eth0 metric 1024 pref medium\n"
    );
    assert_eq!(
        v6(101),
        "fd00:10:6::132 dev eth0 metric 1024 pref medium\n\
         fd00:10:6::/64 dev net1 metric 1024 pref medium\n\
         default via fd00:10:6::1 dev net1 metric 1024 pref medium\n"
    );
    assert_eq!(
        render_ip_neigh(&p.neighbours, None),
        "10.6.212.132 dev eth0 lladdr ee:ee:ee:ee:ee:ee PERMANENT \n\
         fd00:10:6::132 dev eth0 lladdr ee:ee:ee:ee:ee:ee PERMANENT \n"
    );
    assert_eq!(
        p.sysctls
            .get("net.ipv6.conf.all.disable_ipv6")
            .map(String::as_str),
        Some("0")
    );

    assert_eq!(
        render_ip_rule(&h.rules, Family::V6),
        "0:\tfrom all lookup local\n1000:\tfrom all lookup 500\n32766:\tfrom all lookup main\n"
    );
    assert_eq!(
        render_ip_route(&h.routes, 500, Family::V6),
        "fd00:10:6::145 dev calitest metric 1024 pref medium\n"
    );
    assert_eq!(
        v4_route(&h.routes, 500),
        "10.6.212.145 dev calitest scope link \n"
    );
    assert_eq!(
        render_ip_neigh(&h.neighbours, None),
        "10.6.212.145 dev calitest lladdr a2:40:ec:4f:ba:93 PERMANENT \n\
         fd00:10:6::145 dev calitest lladdr a2:40:ec:4f:ba:93 PERMANENT \n"
    );
    let cmds = render_commands(&plan.pod);
    assert!(cmds.contains(&"ip -6 rule add from fd00:10:6::145 lookup 101 pref 32765".to_string()));
    assert!(cmds.contains(
        &"ip -6 route del default metric 1024 nexthop via fd00:10:6::1 dev net1 nexthop via fe80::ecee:eeff:feee:eeee dev eth0".to_string()
    ));
}

/// Knobs: MAC prefix, txqueuelen, vethLinkAddress/MTU, rp_filter -1, policy routes, tuning off.
#[test]
fn knobs() {
    let nad: NadCoordinatorConf = serde_json::from_str(
        r#"{"podMACPrefix":"0a:1b","txQueueLen":3000,"vethLinkAddress":"169.254.200.1","vethMTU":9000,
            "podRPFilter":-1,"policyRoutes":[{"dst":"10.10.0.0/16","gw":"10.6.0.254"},{"dst":"fd00::/8","gw":"fd00::1"}]}"#,
    )
    .unwrap();
    let cfg = merge(&nad, &seed_agent()).unwrap();
    let (pod, host) = (underlay_pod(), underlay_host());
    let plan = plan_add(&cfg, &underlay_request(), &pod, &host).unwrap();
    let cmds = render_commands(&plan.pod);
    for c in [
        "ip link set dev eth0 address 0a:1b:0a:06:d4:91",
        "arping -U -c 1 -I eth0 10.6.212.145",
        "ip link set dev eth0 txqueuelen 3000",
        "ip addr add 169.254.200.1/32 dev veth0",
        // Underlay first NIC: policy routes in main, via the configured NIC; v6 one skipped.
        "ip route add 10.10.0.0/16 via 10.6.0.254 dev eth0",
    ] {
        assert!(cmds.contains(&c.to_string()), "missing {c:?} in {cmds:#?}");
    }
    assert!(cmds.iter().any(|c| c.contains("mtu 9000")));
    assert!(
        !cmds.iter().any(|c| c.contains("rp_filter")),
        "-1 leaves it alone"
    );
    assert!(!cmds.iter().any(|c| c.contains("fd00::/8")));
    let (p, _) = plan.apply(&pod, &host);
    assert_eq!(p.link("eth0").unwrap().tx_queue_len, Some(3000));
    // The host neighbour still points at veth0's MAC, not eth0's new one.
    assert!(plan.host.steps.contains(&Step::AddNeighbour {
        ip: ip("10.6.212.145"),
        dev: "veth0123456789a".into(),
        lladdr: mac("4e:c8:fc:cf:19:73")
    }));

    // tunePodRoutes=false: no rules, nothing moved; host and hijack routes still planned.
    let mut agent = seed_agent();
    agent.tune_pod_routes = Some(false);
    let mut nad = seed_nad();
    nad.tune_pod_routes = None;
    nad.policy_routes = Some(vec![RouteSpec {
        dst: "10.10.0.0/16".into(),
        gw: "10.6.0.254".into(),
    }]);
    let cfg = merge(&nad, &agent).unwrap();
    let pod = overlay_pod("a2:40:ec:4f:ba:93", "6a:1b:e7:ac:f8:a0");
    let plan = plan_add(&cfg, &AddRequest::new("c", "net1"), &pod, &overlay_host()).unwrap();
    let (p, _) = plan.apply(&pod, &overlay_host());
    assert_eq!(render_ip_rule(&p.rules, Family::V4), RULES_FRESH_V4);
    assert!(
        v4_route(&p.routes, TABLE_MAIN)
            .starts_with("default via 10.6.0.1 dev net1 \ndefault via 169.254.1.1 dev eth0 \n")
    );
    // Overlay: policy routes go to the NIC's table, via net1.
    assert_eq!(
        v4_route(&p.routes, 101),
        "10.6.212.132 dev eth0 scope link src 10.233.73.210 \n10.10.0.0/16 via 10.6.0.254 dev net1 \n"
    );
}

#[test]
fn disabled_mode_plans_nothing() {
    for mode in ["disable", "disabled"] {
        let nad: NadCoordinatorConf =
            serde_json::from_str(&format!(r#"{{"mode":"{mode}"}}"#)).unwrap();
        let cfg = merge(&nad, &seed_agent()).unwrap();
        // Even an interface that does not exist is fine: nothing is looked at.
        let plan = plan_add(
            &cfg,
            &AddRequest::new("c", "nope"),
            &underlay_pod(),
            &underlay_host(),
        )
        .unwrap();
        assert_eq!(plan, Plan::default());
        assert_eq!(
            render_plan(&plan),
            "# coordinator disabled: nothing to do\n"
        );
        let del = plan_del(
            &cfg,
            &DelRequest {
                container_id: "c".into(),
                ifname: "nope".into(),
            },
            None,
            &underlay_host(),
        );
        assert!(del.host.is_empty());
    }
}

#[test]
fn bad_input_gives_precise_errors() {
    let cfg = seed_config();
    let pod = overlay_pod("a2:40:ec:4f:ba:93", "6a:1b:e7:ac:f8:a0");
    let host = overlay_host();
    let add = |cfg: &CoordinatorConfig, ifname: &str, pod: &PodView, host: &HostView| {
        plan_add(cfg, &AddRequest::new("cid", ifname), pod, host)
    };

    assert_eq!(
        add(&cfg, "net9", &pod, &host),
        Err(CoordinatorError::InterfaceMissing {
            ifname: "net9".into()
        })
    );

    let mut only_ll = pod.clone();
    only_ll.links[2].addresses = vec![net("fe80::1/64"), net("169.254.3.3/16")];
    assert_eq!(
        add(&cfg, "net1", &only_ll, &host),
        Err(CoordinatorError::NoUsableIp {
            ifname: "net1".into()
        })
    );

    let mut overlay = cfg.clone();
    overlay.mode = Mode::Overlay;
    let e = add(&overlay, "eth0", &pod, &host).unwrap_err();
    assert_eq!(
        e,
        CoordinatorError::OverlayOnFirstNic {
            ifname: "eth0".into()
        }
    );
    assert!(e.to_string().contains("belongs to the default CNI"));

    let mut with_veth = pod.clone();
    with_veth
        .links
        .push(eth("veth0", 9, "02:00:00:00:00:09", &[]));
    assert_eq!(
        add(&overlay, "net1", &with_veth, &host),
        Err(CoordinatorError::OverlayAfterUnderlay {
            ifname: "net1".into()
        })
    );

    let mut underlay = cfg.clone();
    underlay.mode = Mode::Underlay;
    let e = add(&underlay, "net1", &pod, &host).unwrap_err();
    assert_eq!(
        e,
        CoordinatorError::Veth0Missing {
            ifname: "net1".into(),
            first: "eth0".into()
        }
    );
    assert!(e.to_string().contains("enable the coordinator plugin"));

    let mut want = cfg.clone();
    want.pod_default_route_nic = DefaultRouteNic::Coordinator("net7".into());
    let e = add(&want, "net1", &pod, &host).unwrap_err();
    assert_eq!(
        e,
        CoordinatorError::DefaultRouteNicMissing { nic: "net7".into() }
    );
    assert_eq!(
        e.to_string(),
        "podDefaultRouteNIC: interface \"net7\" does not exist in the pod"
    );

    // Overlay needs the host side of eth0.
    let mut no_peer = pod.clone();
    no_peer.links[1].peer_index = None;
    assert!(matches!(
        add(&cfg, "net1", &no_peer, &host),
        Err(CoordinatorError::LinkInfoMissing { .. })
    ));
    let mut no_cali = host.clone();
    no_cali.links.retain(|l| l.name != "calitest");
    let e = add(&cfg, "net1", &pod, &no_cali).unwrap_err();
    assert!(e.to_string().contains("index 3"), "{e}");

    // Underlay later NIC needs the host veth.
    let mut upod = underlay_pod();
    upod.links.push(eth("veth0", 3, "4e:c8:fc:cf:19:73", &[]));
    upod.links
        .push(eth("net1", 4, "6e:00:00:00:00:04", &["172.200.0.201/24"]));
    let e = plan_add(
        &cfg,
        &AddRequest::new("0123456789abcdef-underlay", "net1"),
        &upod,
        &underlay_host(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("veth0123456789a"), "{e}");

    // Bad CIDRs are refused at merge time, before any planning.
    let mut agent = seed_agent();
    agent.hijack_cidr = Some(vec!["169.254.0.0/40".into()]);
    assert!(matches!(
        merge(&seed_nad(), &agent),
        Err(CoordinatorError::Config { key, .. }) if key == "hijackCIDR"
    ));
}

/// A v4-only pod skips v6 hijack CIDRs with a warning instead of failing.
#[test]
fn hijack_cidr_without_gateway_is_a_warning() {
    let mut agent = seed_agent();
    agent.hijack_cidr = Some(vec!["169.254.0.0/16".into(), "fd00:99::/64".into()]);
    let cfg = merge(&seed_nad(), &agent).unwrap();
    let pod = overlay_pod("a2:40:ec:4f:ba:93", "6a:1b:e7:ac:f8:a0");
    let plan = plan_add(&cfg, &AddRequest::new("c", "net1"), &pod, &overlay_host()).unwrap();
    assert_eq!(plan.warnings.len(), 1);
    assert!(plan.warnings[0].contains("fd00:99::/64"));
}

/// Plans and views round-trip through JSON (the CLI and the adapter exchange them as data).
#[test]
fn plans_round_trip_through_json() {
    let cfg = seed_config();
    let pod = underlay_pod();
    let host = underlay_host();
    let plan = plan_add(&cfg, &underlay_request(), &pod, &host).unwrap();
    let text = serde_json::to_string_pretty(&plan).unwrap();
    let back: Plan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, plan);
    let (p, h) = plan.apply(&pod, &host);
    let back: PodView = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    let back: HostView = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
    assert_eq!(back, h);
}
