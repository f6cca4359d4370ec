//! Property tests: random CNI results survive printing and parsing in every supported version,
//! keeping exactly what that version can hold.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use spiderpool_core::cni::{Dns, Interface, IpConfig, Result100, Route, SpecVersion};

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        // Not IPv4-mapped: those are read back as IPv4, as Go prints them.
        any::<u128>()
            .prop_filter("not v4-mapped", |a| (a >> 32) != 0xffff)
            .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), p).unwrap())),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, p)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), p).unwrap())),
    ]
}

/// Text including characters Go escapes (`<`, `>`, `&`, U+2028) and ones that need JSON escapes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        5 => "[a-z0-9:/._-]{1,20}",
        1 => "[a-z<>&\"\\\\\u{2028}\u{e9}\t]{1,8}",
    ]
}

fn interface() -> impl Strategy<Value = Interface> {
    (
        "[a-z0-9]{1,15}",
        text(),
        prop_oneof![Just(0u32), any::<u32>()],
        text(),
        text(),
        text(),
    )
        .prop_map(|(name, mac, mtu, sandbox, socket_path, pci_id)| Interface {
            name,
            mac,
            mtu,
            sandbox,
            socket_path,
            pci_id,
        })
}

fn ip_config() -> impl Strategy<Value = IpConfig> {
    (
        proptest::option::of(0usize..4),
        net(),
        proptest::option::of(ip()),
    )
        .prop_map(|(interface, address, gateway)| IpConfig {
            interface,
            address,
            gateway,
        })
}

fn small() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), any::<u32>()]
}

fn route() -> impl Strategy<Value = Route> {
    (
        net(),
        proptest::option::of(ip()),
        small(),
        small(),
        small(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(dst, gw, mtu, advmss, priority, table, scope)| Route {
            dst,
            gw,
            mtu,
            advmss,
            priority,
            table,
            scope,
        })
}

fn dns() -> impl Strategy<Value = Dns> {
    (
        proptest::collection::vec("[0-9a-f.:]{1,15}", 0..3),
        text(),
        proptest::collection::vec("[a-z.]{1,12}", 0..3),
        proptest::collection::vec("[a-z0-9:]{1,8}", 0..3),
    )
        .prop_map(|(nameservers, domain, search, options)| Dns {
            nameservers,
            domain,
            search,
            options,
        })
}

fn result() -> impl Strategy<Value = Result100> {
    (
        proptest::collection::vec(interface(), 0..3),
        proptest::collection::vec(ip_config(), 0..4),
        proptest::collection::vec(route(), 0..4),
        dns(),
    )
        .prop_map(|(interfaces, ips, routes, dns)| Result100 {
            interfaces,
            ips,
            routes,
            dns,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Print in v, parse: the version is v and the result is what v holds.
    #[test]
    fn round_trip_in_every_supported_version(r in result()) {
        for v in SpecVersion::SUPPORTED {
            for text in [r.to_json_pretty(v).unwrap(), r.to_json(v).unwrap()] {
                let back = Result100::parse(text.as_bytes(), None).unwrap();
                prop_assert_eq!(back.version, v);
                prop_assert_eq!(&back.result, &r.as_held_by(v), "version {} text {}", v, text);
            }
            // to_value / from_value agree with the text path.
            let back = Result100::from_value(r.to_value(v).unwrap(), None).unwrap();
            prop_assert_eq!(back.result, r.as_held_by(v));
        }
    }

    /// Re-printing a printed result in the same version is byte-identical (what the coordinator
    /// relies on to pass prevResult through).
    #[test]
    fn reprint_is_byte_identical(r in result()) {
        for v in SpecVersion::SUPPORTED {
            let once = r.to_json_pretty(v).unwrap();
            let twice = Result100::parse(once.as_bytes(), None).unwrap().to_json_pretty().unwrap();
            prop_assert_eq!(once, twice);
        }
    }

    /// Converting through any chain of versions loses exactly what the narrowest one drops.
    #[test]
    fn chains_of_conversions(r in result(), a in 0usize..5, b in 0usize..5) {
        let (va, vb) = (SpecVersion::SUPPORTED[a], SpecVersion::SUPPORTED[b]);
        let first = Result100::parse(r.to_json(va).unwrap().as_bytes(), None).unwrap();
        let second = Result100::parse(first.result.to_json(vb).unwrap().as_bytes(), None).unwrap();
        let last = Result100::parse(second.result.to_json(SpecVersion::V1_1_0).unwrap().as_bytes(), None).unwrap();
        prop_assert_eq!(last.result, r.as_held_by(va.min(vb)));
    }

    /// The strict view survives its own version untouched and has no 1.1.0-only field below it.
    #[test]
    fn strict_restriction(r in result()) {
        for v in SpecVersion::SUPPORTED {
            let strict = r.restricted_to(v);
            let back = Result100::parse(strict.to_json(v).unwrap().as_bytes(), None).unwrap();
            prop_assert_eq!(&back.result, &strict);
            if v < SpecVersion::V1_1_0 {
                prop_assert!(strict.routes.iter().all(|rt| !rt.has_v1_1_fields()));
                prop_assert!(strict.interfaces.iter().all(|i| i.mtu == 0 && i.pci_id.is_empty() && i.socket_path.is_empty()));
            }
        }
    }

    /// 0.x layouts always carry `dns` and an `ips[].version` matching the address; 1.x never
    /// carries `version` and omits an empty `dns`.
    #[test]
    fn layout_invariants(r in result()) {
        for v in SpecVersion::SUPPORTED {
            let value = r.to_value(v).unwrap();
            let obj = value.as_object().unwrap();
            let ips = obj.get("ips").and_then(|i| i.as_array()).cloned().unwrap_or_default();
            if v < SpecVersion::V1_0_0 {
                prop_assert!(obj.contains_key("dns"));
                for (ip, cfg) in ips.iter().zip(&r.ips) {
                    prop_assert_eq!(ip["version"].as_str().unwrap(), cfg.version_label());
                }
            } else {
                prop_assert_eq!(obj.contains_key("dns"), !r.dns.is_empty());
                prop_assert!(ips.iter().all(|ip| ip.get("version").is_none()));
            }
        }
    }
}
