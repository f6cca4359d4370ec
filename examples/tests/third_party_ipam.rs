//! The `third-party-ipam` example behaves as an IPAM plugin binary: ADD prints the result in
//! the configuration's version, a repeated ADD the same addresses, CHECK and DEL work, DEL
//! frees the address for the next pod, VERSION lists the versions, and bad input gets a CNI
//! error reply with the right code.

mod support;

use std::path::Path;

use serde_json::{Value, json};

fn conf(version: &str, dir: &Path) -> Vec<u8> {
    let conf = json!({
        "cniVersion": version, "name": "demo", "type": "macvlan", "master": "eth0",
        "ipam": {"type": "third-party-ipam", "dataDir": dir, "pools": [
            {"name": "v4", "subnet": "10.6.0.0/16", "ips": ["10.6.168.101-10.6.168.102"],
             "gateway": "10.6.0.1"},
            {"name": "v6", "subnet": "fd00:6::/64", "ips": ["fd00:6::101-fd00:6::110"]}]}
    });
    conf.to_string().into_bytes()
}

/// Runs the plugin for `command` on pod `default/<pod>` (container `c-<pod>`); returns the
/// exit code and stdout parsed as JSON (`Null` when empty).
fn plugin(command: &str, pod: &str, stdin: &[u8]) -> (i32, Value) {
    let cid = format!("c-{pod}");
    let args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}"
    );
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", cid.as_str()),
        ("CNI_NETNS", "/var/run/netns/unused"),
        ("CNI_IFNAME", "net1"),
        ("CNI_PATH", "/opt/cni/bin"),
        ("CNI_ARGS", args.as_str()),
    ];
    let out = support::run("third-party-ipam", &[], &env, stdin);
    let (stdout, stderr) = support::texts(&out);
    let json = match stdout.trim() {
        "" => Value::Null,
        text => serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{command}: stdout is not JSON ({e}):\n{stdout}\n{stderr}")),
    };
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn third_party_ipam_add_check_del_version_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = conf("1.0.0", dir.path());

    let (code, add) = plugin("ADD", "pod-a", &v1);
    assert_eq!(code, 0, "{add:#}");
    assert_eq!(
        add,
        json!({"cniVersion": "1.0.0",
               "ips": [{"address": "10.6.168.101/16", "gateway": "10.6.0.1"},
                       {"address": "fd00:6::101/64"}],
               "routes": [{"dst": "0.0.0.0/0", "gw": "10.6.0.1"}]})
    );
    // A repeated ADD (the runtime retried) returns the same addresses.
    assert_eq!(plugin("ADD", "pod-a", &v1), (0, add));
    assert_eq!(plugin("CHECK", "pod-a", &v1), (0, Value::Null));
    let (code, err) = plugin("CHECK", "pod-z", &v1);
    assert_eq!((code, &err["code"]), (1, &json!(999)), "{err:#}");

    // The result follows the configuration's version: 0.3.1 has "version" per address.
    let (code, add) = plugin("ADD", "pod-b", &conf("0.3.1", dir.path()));
    assert_eq!(code, 0, "{add:#}");
    assert_eq!(add["cniVersion"], "0.3.1");
    assert_eq!(
        add["ips"][0],
        json!({"version": "4", "address": "10.6.168.102/16", "gateway": "10.6.0.1"})
    );

    // The v4 pool is full: an error reply with the configuration's version.
    let (code, err) = plugin("ADD", "pod-c", &v1);
    assert_eq!((code, &err["cniVersion"]), (1, &json!("1.0.0")), "{err:#}");
    assert!(err["msg"].as_str().unwrap().contains("v4"), "{err:#}");
    // DEL frees pod-a's address (twice is fine), and pod-c gets it.
    assert_eq!(plugin("DEL", "pod-a", &v1), (0, Value::Null));
    assert_eq!(plugin("DEL", "pod-a", &v1), (0, Value::Null));
    let (code, add) = plugin("ADD", "pod-c", &v1);
    assert_eq!(
        (code, &add["ips"][0]["address"]),
        (0, &json!("10.6.168.101/16")),
        "{add:#}"
    );

    let (code, version) = plugin("VERSION", "pod-a", b"");
    assert_eq!(code, 0);
    assert_eq!(version["cniVersion"], "1.1.0");
    assert!(
        (version["supportedVersions"].as_array().unwrap()).contains(&json!("0.3.1")),
        "{version}"
    );

    // Bad input: a configuration without pools (6), an unknown version (1), no command (4).
    let no_pools =
        br#"{"cniVersion":"1.0.0","name":"demo","type":"x","ipam":{"type":"third-party-ipam"}}"#;
    let (code, err) = plugin("ADD", "pod-d", no_pools);
    assert_eq!((code, &err["code"]), (1, &json!(6)), "{err:#}");
    let (code, err) = plugin("ADD", "pod-d", &conf("9.9.9", dir.path()));
    assert_eq!((code, &err["code"]), (1, &json!(1)), "{err:#}");
    let out = support::run("third-party-ipam", &[], &[], &v1);
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (out.status.code(), &err["code"]),
        (Some(1), &json!(4)),
        "{err:#}"
    );
}
