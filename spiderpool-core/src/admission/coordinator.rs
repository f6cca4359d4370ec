//! Admission of SpiderCoordinator objects (spec §1.6), and the coordinator spec validation
//! shared with `SpiderMultusConfig.spec.coordinator`.

use super::{FieldError, Operation, Reason};
use crate::ip::{parse_ip, parse_ip_or_cidr};
use crate::meta::validation::dns1123_subdomain_problems;
use crate::objects::keys::SPIDER_FINALIZER;
use crate::objects::{CoordinatorSpec, PodCidrType, SpiderCoordinator};

/// Accepted `mode` values: the CRD enum plus `disable`, the only spelling upstream's plugin
/// understands (spec §10.1). Both mean "coordinator off" here.
const MODES: &[&str] = &["auto", "underlay", "overlay", "disabled", "disable"];
/// Accepted non-negative `podRPFilter` values.
const RP_FILTERS: &[&str] = &["0", "1", "2"];

/// Mutating webhook: fill the defaults; unless terminating, and only when `podCIDRType` is
/// set (upstream stops there with a swallowed error, leaving it to the validator), complete
/// bare `hijackCIDR` addresses, normalise `policyRoutes` destinations and add the finalizer.
pub(super) fn mutate(obj: &mut SpiderCoordinator) {
    let s = &mut obj.spec;
    s.mode.get_or_insert_with(|| "auto".to_owned());
    s.tune_pod_routes.get_or_insert(true);
    s.host_rule_table.get_or_insert(500);
    s.pod_rp_filter.get_or_insert(0);
    s.tx_queue_len.get_or_insert(0);
    s.veth_link_address.get_or_insert_with(String::new);
    s.veth_mtu.get_or_insert(1500);

    if obj.metadata.is_terminating() || s.pod_cidr_type.is_none() {
        return;
    }
    // Upstream stops at the first entry it cannot parse (again leaving it to the validator),
    // so later entries stay as written and no finalizer is added.
    for cidr in s.hijack_cidr.iter_mut().flatten() {
        if cidr.contains('/') {
            continue;
        }
        match parse_ip(cidr) {
            Ok(ip) => {
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                *cidr = format!("{cidr}/{bits}");
            }
            Err(_) => return,
        }
    }
    for route in s.policy_routes.iter_mut().flatten() {
        match parse_ip_or_cidr(&route.dst) {
            Ok(net) => route.dst = net.to_string(),
            Err(_) => return,
        }
    }
    obj.metadata.add_finalizer(SPIDER_FINALIZER);
}

/// Validating webhook (create and update; delete is always allowed).
pub(super) fn validate(op: Operation, obj: &SpiderCoordinator) -> Vec<FieldError> {
    if op == Operation::Delete {
        return Vec::new();
    }
    let mut errs = Vec::new();
    match obj.metadata.name.as_deref() {
        None | Some("") => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            for p in dns1123_subdomain_problems(name) {
                errs.push(FieldError::invalid("metadata.name", p));
            }
        }
    }
    errs.extend(validate_spec(&obj.spec, "spec", true));
    errs
}

/// Upstream `ValidateCoordinatorSpec`. `path` is the spec's field path (`spec` or
/// `spec.coordinator`); `require_optional` makes `podCIDRType` and `podRPFilter` mandatory
/// (SpiderCoordinator) instead of optional (SpiderMultusConfig). Every problem is reported,
/// not only the first as upstream does.
pub(super) fn validate_spec(
    spec: &CoordinatorSpec,
    path: &str,
    require_optional: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let at = |field: &str| format!("{path}.{field}");

    // Upstream leaves `mode` to the CRD enum; we check it here so offline validation sees it.
    if let Some(mode) = spec.mode.as_deref().filter(|m| !MODES.contains(m)) {
        errs.push(FieldError::not_supported(at("mode"), mode, MODES));
    }

    match spec.pod_cidr_type.as_deref() {
        None if require_optional => errs.push(FieldError::not_supported(
            at("podCIDRType"),
            "",
            PodCidrType::SUPPORTED,
        )),
        Some(t) if PodCidrType::parse(t).is_err() => errs.push(FieldError::not_supported(
            at("podCIDRType"),
            t,
            PodCidrType::SUPPORTED,
        )),
        _ => {}
    }

    for (i, cidr) in spec.hijack_cidr.iter().flatten().enumerate() {
        if let Err(e) = parse_ip_or_cidr(cidr) {
            errs.push(FieldError::invalid(
                format!("{}[{i}]", at("hijackCIDR")),
                e.to_string(),
            ));
        }
    }

    for (i, route) in spec.policy_routes.iter().flatten().enumerate() {
        let base = format!("{}[{i}]", at("policyRoutes"));
        let dst = parse_ip_or_cidr(&route.dst);
        if let Err(e) = &dst {
            errs.push(FieldError::invalid(format!("{base}.dst"), e.to_string()));
        }
        let gw = parse_ip(&route.gw);
        if gw.is_err() {
            errs.push(FieldError::invalid(
                format!("{base}.gw"),
                "gw is an invalid IP address",
            ));
        }
        if let (Ok(dst), Ok(gw)) = (dst, gw)
            && dst.addr().is_ipv4() != gw.is_ipv4()
        {
            errs.push(FieldError::invalid(
                base,
                "dst and gw must use the same IP family",
            ));
        }
    }

    if let Some(prefix) = spec.pod_mac_prefix.as_deref().filter(|p| !p.is_empty())
        && let Some(msg) = mac_prefix_problem(prefix)
    {
        errs.push(FieldError::invalid(at("podMACPrefix"), msg));
    }

    if let Some(n) = spec.tx_queue_len.filter(|n| *n < 0) {
        errs.push(FieldError::invalid(
            at("txQueueLen"),
            format!("txQueueLen can't be less than 0 (got {n})"),
        ));
    }

    match spec.pod_rp_filter {
        None if require_optional => errs.push(FieldError::new(
            at("podRPFilter"),
            Reason::NotSupported,
            format!("null: supported values: {}", quoted(RP_FILTERS)),
        )),
        // Negative means "leave the pod's rp_filter alone".
        Some(v) if v > 2 => errs.push(FieldError::new(
            at("podRPFilter"),
            Reason::NotSupported,
            format!("{v}: supported values: {}", quoted(RP_FILTERS)),
        )),
        _ => {}
    }

    if let Some(addr) = spec.veth_link_address.as_deref().filter(|a| !a.is_empty())
        && parse_ip(addr).is_err()
    {
        errs.push(FieldError::invalid(
            at("vethLinkAddress"),
            format!("vethLinkAddress is an invalid IP address: {addr:?}"),
        ));
    }

    if let Some(mtu) = spec.veth_mtu.filter(|m| *m <= 0) {
        errs.push(FieldError::invalid(
            at("vethMTU"),
            format!("vethMTU must be greater than 0 (got {mtu})"),
        ));
    }
    errs
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Upstream's `podMACPrefix` rule: two `:`-separated groups of two hex digits, and the first
/// byte must be unicast (lowest bit 0). Unlike Go's `ParseInt`, a sign (`+1`) is not a digit.
fn mac_prefix_problem(prefix: &str) -> Option<&'static str> {
    let groups: Vec<&str> = prefix.split(':').collect();
    let [first, second] = groups.as_slice() else {
        return Some("not a valid MAC prefix");
    };
    let hex_byte = |g: &str| {
        (g.len() == 2 && g.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u8::from_str_radix(g, 16).ok())
            .flatten()
    };
    match (hex_byte(first), hex_byte(second)) {
        (Some(b), Some(_)) if b & 1 == 1 => {
            Some("not a unicast MAC: the lowest bit of the first byte must be 0")
        }
        (Some(_), Some(_)) => None,
        _ => Some("not a valid MAC prefix"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ObjectMeta;
    use crate::objects::Route;

    fn coord(spec: serde_json::Value) -> SpiderCoordinator {
        SpiderCoordinator::new("default", serde_json::from_value(spec).unwrap())
    }

    fn admit(mut c: SpiderCoordinator) -> (SpiderCoordinator, Vec<FieldError>) {
        mutate(&mut c);
        let errs = validate(Operation::Create, &c);
        (c, errs)
    }

    #[track_caller]
    fn assert_one(errs: &[FieldError], path: &str, reason: Reason, msg: &str) {
        assert!(
            errs.iter()
                .any(|e| e.path == path && e.reason == reason && e.message.contains(msg)),
            "expected {path}: {reason}: ..{msg}.. in {errs:?}"
        );
    }

    #[test]
    fn admission_coordinator_defaults_and_finalizer() {
        let (c, errs) = admit(coord(serde_json::json!({"podCIDRType": "calico"})));
        assert!(errs.is_empty(), "{errs:?}");
        let s = &c.spec;
        assert_eq!(s.mode.as_deref(), Some("auto"));
        assert_eq!(s.tune_pod_routes, Some(true));
        assert_eq!(s.host_rule_table, Some(500));
        assert_eq!(s.pod_rp_filter, Some(0));
        assert_eq!(s.tx_queue_len, Some(0));
        assert_eq!(s.veth_link_address.as_deref(), Some(""));
        assert_eq!(s.veth_mtu, Some(1500));
        assert!(c.metadata.has_finalizer(SPIDER_FINALIZER));
    }

    #[test]
    fn admission_coordinator_pod_cidr_type_required() {
        let (c, errs) = admit(coord(serde_json::json!({"hijackCIDR": ["10.0.0.1"]})));
        assert_one(
            &errs,
            "spec.podCIDRType",
            Reason::NotSupported,
            r#""": supported values: "auto", "cluster", "calico", "cilium", "none""#,
        );
        // Upstream's mutation stops before normalising and adding the finalizer.
        assert_eq!(c.spec.hijack_cidr.as_deref().unwrap(), ["10.0.0.1"]);
        assert!(!c.metadata.has_finalizer(SPIDER_FINALIZER));
        let (_, errs) = admit(coord(serde_json::json!({"podCIDRType": "flannel"})));
        assert_one(
            &errs,
            "spec.podCIDRType",
            Reason::NotSupported,
            "\"flannel\"",
        );
    }

    #[test]
    fn admission_coordinator_pod_cidr_type_optional_in_smc() {
        let spec: CoordinatorSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(validate_spec(&spec, "spec.coordinator", false).is_empty());
        let errs = validate_spec(&spec, "spec", true);
        assert_one(&errs, "spec.podCIDRType", Reason::NotSupported, "supported");
        assert_one(
            &errs,
            "spec.podRPFilter",
            Reason::NotSupported,
            r#"null: supported values: "0", "1", "2""#,
        );
    }

    #[test]
    fn admission_coordinator_hijack_cidr() {
        let (c, errs) = admit(coord(serde_json::json!({
            "podCIDRType": "cluster",
            "hijackCIDR": ["169.254.0.0/16", "10.96.0.10", "fd00::10", "10.0.0.1/24"]
        })));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            c.spec.hijack_cidr.unwrap(),
            [
                "169.254.0.0/16",
                "10.96.0.10/32",
                "fd00::10/128",
                "10.0.0.1/24"
            ]
        );
        let (c, errs) = admit(coord(serde_json::json!({
            "podCIDRType": "cluster", "hijackCIDR": ["10.0.0.0/33", "nope"]
        })));
        assert_one(&errs, "spec.hijackCIDR[0]", Reason::Invalid, "10.0.0.0/33");
        assert_one(&errs, "spec.hijackCIDR[1]", Reason::Invalid, "nope");
        assert!(!c.metadata.has_finalizer(SPIDER_FINALIZER));
    }

    #[test]
    fn admission_coordinator_policy_routes() {
        let (c, errs) = admit(coord(serde_json::json!({
            "podCIDRType": "cluster",
            "policyRoutes": [{"dst": "10.10.0.5", "gw": "172.18.0.1"},
                             {"dst": "FD00::/64", "gw": "fd00::1"}]
        })));
        assert!(errs.is_empty(), "{errs:?}");
        let routes = c.spec.policy_routes.unwrap();
        assert_eq!(routes[0], Route::new("10.10.0.5/32", "172.18.0.1"));
        assert_eq!(routes[1].dst, "fd00::/64");

        let (_, errs) = admit(coord(serde_json::json!({
            "podCIDRType": "cluster",
            "policyRoutes": [{"dst": "10.10.0.0/16", "gw": "fd00::1"},
                             {"dst": "x", "gw": "1.1.1.1"},
                             {"dst": "10.0.0.0/8", "gw": "y"}]
        })));
        assert_one(
            &errs,
            "spec.policyRoutes[0]",
            Reason::Invalid,
            "dst and gw must use the same IP family",
        );
        assert_one(&errs, "spec.policyRoutes[1].dst", Reason::Invalid, "\"x\"");
        assert_one(
            &errs,
            "spec.policyRoutes[2].gw",
            Reason::Invalid,
            "gw is an invalid IP address",
        );
    }

    #[test]
    fn admission_coordinator_mac_prefix() {
        for ok in ["", "0a:1b", "FE:ff", "00:00"] {
            let (_, errs) = admit(coord(
                serde_json::json!({"podCIDRType": "none", "podMACPrefix": ok}),
            ));
            assert!(errs.is_empty(), "{ok}: {errs:?}");
        }
        for bad in ["0a", "0a:1b:2c", "0g:00", "a:00", "+1:00", "0a:1"] {
            let (_, errs) = admit(coord(
                serde_json::json!({"podCIDRType": "none", "podMACPrefix": bad}),
            ));
            assert_one(
                &errs,
                "spec.podMACPrefix",
                Reason::Invalid,
                "not a valid MAC prefix",
            );
        }
        let (_, errs) = admit(coord(
            serde_json::json!({"podCIDRType": "none", "podMACPrefix": "0b:00"}),
        ));
        assert_one(
            &errs,
            "spec.podMACPrefix",
            Reason::Invalid,
            "not a unicast MAC: the lowest bit of the first byte must be 0",
        );
    }

    #[test]
    fn admission_coordinator_numbers_and_addresses() {
        let (_, errs) = admit(coord(serde_json::json!({
            "podCIDRType": "auto", "txQueueLen": -1, "podRPFilter": 3,
            "vethLinkAddress": "169.254.0.300", "vethMTU": 0
        })));
        assert_one(
            &errs,
            "spec.txQueueLen",
            Reason::Invalid,
            "txQueueLen can't be less than 0",
        );
        assert_one(
            &errs,
            "spec.podRPFilter",
            Reason::NotSupported,
            r#"3: supported values: "0", "1", "2""#,
        );
        assert_one(
            &errs,
            "spec.vethLinkAddress",
            Reason::Invalid,
            "vethLinkAddress is an invalid IP address",
        );
        assert_one(
            &errs,
            "spec.vethMTU",
            Reason::Invalid,
            "vethMTU must be greater than 0",
        );
        assert_eq!(errs.len(), 4, "{errs:?}");

        let (_, errs) = admit(coord(serde_json::json!({
            "podCIDRType": "auto", "txQueueLen": 1000, "podRPFilter": -1,
            "vethLinkAddress": "fd00::1", "vethMTU": 9000
        })));
        assert!(errs.is_empty(), "{errs:?}");
        let (_, errs) = admit(coord(serde_json::json!({
            "podCIDRType": "auto", "podRPFilter": 2, "vethLinkAddress": "169.254.100.1"
        })));
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn admission_coordinator_mode_both_spellings() {
        for mode in ["auto", "underlay", "overlay", "disabled", "disable"] {
            let (_, errs) = admit(coord(
                serde_json::json!({"podCIDRType": "cluster", "mode": mode}),
            ));
            assert!(errs.is_empty(), "{mode}: {errs:?}");
        }
        let (_, errs) = admit(coord(
            serde_json::json!({"podCIDRType": "cluster", "mode": "off"}),
        ));
        assert_one(&errs, "spec.mode", Reason::NotSupported, "\"off\"");
    }

    #[test]
    fn admission_coordinator_name_and_delete() {
        let mut c = coord(serde_json::json!({}));
        c.metadata = ObjectMeta::default();
        let (c, errs) = admit(c);
        assert_one(&errs, "metadata.name", Reason::Required, "name");
        assert!(validate(Operation::Delete, &c).is_empty());
    }

    #[test]
    fn admission_coordinator_terminating_only_defaults() {
        let mut c = coord(serde_json::json!({"podCIDRType": "cluster", "hijackCIDR": ["1.1.1.1"]}));
        c.metadata.deletion_timestamp = Some("2025-01-01T00:00:00Z".to_owned());
        mutate(&mut c);
        assert_eq!(c.spec.veth_mtu, Some(1500));
        assert_eq!(c.spec.hijack_cidr.as_deref().unwrap(), ["1.1.1.1"]);
        assert!(!c.metadata.has_finalizer(SPIDER_FINALIZER));
    }
}
