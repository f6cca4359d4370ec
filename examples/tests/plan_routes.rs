//! The `plan-routes` example: the coordinator's plan for the quick start's pod, printed as
//! `ip` commands and as the tables it leaves, without root.

mod support;

#[test]
fn plan_routes_prints_the_commands_and_the_tables() {
    let out = support::run("plan-routes", &[], &[], b"");
    let (stdout, stderr) = support::texts(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (commands, tables) = stdout.split_once("## after the plan").expect("both parts");
    for line in [
        "# mode Overlay, first NIC configured by the coordinator: true, policy table 101",
        "ip rule add from 10.6.212.145 lookup 101 pref 32765",
        "ip rule add from 10.233.73.210 lookup 100 pref 32764",
        "ip route add default via 10.6.0.1 dev net1 table 101",
        "ip route del default via 10.6.0.1 dev net1",
        "ip route add 10.6.212.145 dev calia1b2c3d4e5f scope link table 500",
    ] {
        assert!(
            commands.lines().any(|l| l == line),
            "missing {line:?} in:\n{commands}"
        );
    }
    for block in [
        "# pod: ip rule\n0:\tfrom all lookup local\n32764:\tfrom 10.233.73.210 lookup 100\n\
         32765:\tfrom 10.6.212.145 lookup 101\n32766:\tfrom all lookup main\n",
        "# pod: ip route show table 100\ndefault via 169.254.1.1 dev eth0 \n",
        "# node: ip rule\n0:\tfrom all lookup local\n1000:\tfrom all lookup 500\n",
        "# node: ip route show table 500\n10.6.212.145 dev calia1b2c3d4e5f scope link \n",
    ] {
        assert!(tables.contains(block), "missing {block:?} in:\n{tables}");
    }
    // Underlay traffic no longer leaves by the main table's net1 default route.
    let main = tables
        .split("# pod: ip route\n")
        .nth(1)
        .and_then(|t| t.split("# pod: ip route show table").next())
        .expect("the pod's main table");
    assert!(!main.contains("via 10.6.0.1"), "{main}");
}
