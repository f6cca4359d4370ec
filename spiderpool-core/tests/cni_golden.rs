//! Golden tests of CNI result printing against JSON printed by Go's `libcni`.
//!
//! The fixtures under `tests/fixtures/cni/` were printed by the result types of
//! containernetworking/cni@3f51e88 (`types.PrintResult` / `version.ParsePrevResult`), except the
//! `*-upstream.json` files, which are stdout captured from upstream binaries (see
//! `../shared/spec/upstream-observed.md`); `macvlan-add-0.3.1.json` is both.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use spiderpool_core::cni::{
    CniError, Command, NetConf, Result100, SpecVersion, VersionedResult, negotiate,
};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cni")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(name: &str) -> VersionedResult {
    Result100::parse(fixture(name).as_bytes(), None).unwrap()
}

const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Every Go-printed fixture and the version it is in.
fn go_printed() -> Vec<(String, SpecVersion)> {
    let mut out = Vec::new();
    for v in VERSIONS {
        let version = v.parse().unwrap();
        out.push((format!("macvlan-add-{v}.json"), version));
        out.push((format!("full-as-{v}.json"), version));
    }
    for v in ["0.3.0", "1.0.0", "1.1.0"] {
        out.push((format!("full-0.4.0-as-{v}.json"), v.parse().unwrap()));
    }
    out.push(("spiderpool-ipam-add-0.3.1.json".into(), SpecVersion::V0_3_1));
    out
}

#[test]
fn same_version_reprint_is_byte_identical() {
    for (name, version) in go_printed() {
        let parsed = parse(&name);
        assert_eq!(parsed.version, version, "{name}");
        assert_eq!(
            parsed.to_json_pretty().unwrap(),
            fixture(&name),
            "{name} re-printed"
        );
    }
}

#[test]
fn down_conversions_match_go() {
    for source in ["macvlan-add-1.1.0.json", "full-as-1.1.0.json"] {
        let parsed = parse(source);
        let stem = source.trim_end_matches("1.1.0.json");
        for v in VERSIONS {
            let printed = parsed.result.to_json_pretty(v.parse().unwrap()).unwrap();
            assert_eq!(
                printed,
                fixture(&format!("{stem}{v}.json")),
                "{source} as {v}"
            );
        }
    }
}

#[test]
fn up_conversions_match_go() {
    let parsed = parse("full-as-0.4.0.json");
    for v in ["0.3.0", "1.0.0", "1.1.0"] {
        let printed = parsed.result.to_json_pretty(v.parse().unwrap()).unwrap();
        assert_eq!(
            printed,
            fixture(&format!("full-0.4.0-as-{v}.json")),
            "0.4.0 as {v}"
        );
    }
}

#[test]
fn one_one_to_zero_four_and_back_loses_only_interface_extras() {
    let full = parse("full-as-1.1.0.json").result;
    let down = full.to_json_pretty(SpecVersion::V0_4_0).unwrap();
    let back = Result100::parse(down.as_bytes(), None).unwrap();
    assert_eq!(back.version, SpecVersion::V0_4_0);
    assert_eq!(back.result, full.as_held_by(SpecVersion::V0_4_0));
    assert_ne!(back.result, full);
    // What is lost: interface mtu / socketPath / pciID. Route 1.1 fields survive, as in Go.
    assert!(
        back.result
            .interfaces
            .iter()
            .all(|i| i.mtu == 0 && i.pci_id.is_empty())
    );
    assert!(back.result.routes[0].has_v1_1_fields());
    assert_eq!(back.result.routes, full.routes);
    // And 1.1 -> 1.0 -> 1.1 loses nothing.
    let via10 = Result100::parse(
        full.to_json_pretty(SpecVersion::V1_0_0).unwrap().as_bytes(),
        None,
    )
    .unwrap();
    assert_eq!(via10.result, full);
}

#[test]
fn strict_restriction_drops_fields_newer_than_the_version() {
    let full = parse("full-as-1.1.0.json").result;
    let strict = full.restricted_to(SpecVersion::V1_0_0);
    let text = strict.to_json_pretty(SpecVersion::V1_0_0).unwrap();
    for key in [
        "\"mtu\"",
        "\"advmss\"",
        "\"priority\"",
        "\"table\"",
        "\"scope\"",
        "\"pciID\"",
        "\"socketPath\"",
    ] {
        assert!(!text.contains(key), "{key} in {text}");
    }
    assert!(text.contains("\"gw\": \"10.6.0.1\""));
}

#[test]
fn coordinator_prints_prev_result_unchanged() {
    // Observed upstream: the coordinator's stdout is byte-identical to macvlan's.
    let conf = NetConf::parse(fixture("coordinator-stdin-0.3.1.json").as_bytes()).unwrap();
    let version = conf
        .negotiate(Command::Add, &SpecVersion::SUPPORTED)
        .unwrap();
    let prev = conf.prev_result().unwrap().unwrap();
    assert_eq!(
        prev.result.to_json_pretty(version).unwrap(),
        fixture("macvlan-add-0.3.1.json")
    );
    // The same chain at every version: macvlan's output as prevResult, re-printed unchanged.
    for v in VERSIONS {
        let macvlan = fixture(&format!("macvlan-add-{v}.json"));
        let stdin = format!(
            r#"{{"cniVersion":"{v}","name":"macvlan-ens192","type":"coordinator","mode":"auto","prevResult":{macvlan}}}"#
        );
        let conf = NetConf::parse(stdin.as_bytes()).unwrap();
        let version = conf
            .negotiate(Command::Add, &SpecVersion::SUPPORTED)
            .unwrap();
        let prev = conf.prev_result().unwrap().unwrap();
        assert_eq!(prev.result.to_json_pretty(version).unwrap(), macvlan, "{v}");
    }
}

#[test]
fn upstream_ipam_result_without_ip_version_is_read_and_printed_conformant() {
    // Upstream's spiderpool plugin labels a 1.0-layout result "0.3.1", so its ips carry no
    // "version". We read it, and print what 0.3.1 requires.
    let upstream = parse("spiderpool-ipam-add-0.3.1-upstream.json");
    assert_eq!(upstream.version, SpecVersion::V0_3_1);
    assert_eq!(
        upstream.to_json_pretty().unwrap(),
        fixture("spiderpool-ipam-add-0.3.1.json")
    );
}

#[test]
fn upstream_error_reply_round_trips() {
    let text = fixture("error-999-upstream.json");
    let e = CniError::from_json(text.as_bytes()).unwrap();
    assert_eq!(e.code, 999);
    assert_eq!(e.to_json_pretty(), text);
}

#[test]
fn every_supported_version_negotiates_for_add_and_del() {
    for v in VERSIONS {
        for cmd in [Command::Add, Command::Del] {
            assert_eq!(
                negotiate(v, cmd, &SpecVersion::SUPPORTED).unwrap().as_str(),
                v
            );
        }
    }
}
