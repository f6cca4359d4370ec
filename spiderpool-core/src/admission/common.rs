//! Checks shared by the SpiderIPPool, SpiderSubnet and SpiderReservedIP webhooks: name,
//! `ipVersion`, `subnet`, range lists, gateway and routes, and the defaulting steps the
//! three mutating webhooks have in common.
//!
//! Messages keep upstream's wording (users grep for it); where upstream only reports the
//! value through the apiserver's `Invalid value: "x"` prefix, the value is quoted at the
//! start of the message instead, as [`FieldError::not_supported`] does.

use crate::ip::IpError;
use std::net::IpAddr;

use super::{FieldError, Switches};
use crate::ip::{Cidr, IpFamily, IpRange, IpRangeSet, cidr_label_value_str, merge_ip_ranges};
use crate::ip::{ip_to_u128, parse_ip_in};
use crate::meta::ObjectMeta;
use crate::meta::validation::dns1123_subdomain_problems;
use crate::objects::Route;
use crate::objects::keys::SPIDER_FINALIZER;

/// `spec.ipVersion`.
pub(super) const IP_VERSION: &str = "spec.ipVersion";
/// `spec.subnet`.
pub(super) const SUBNET: &str = "spec.subnet";
/// `spec.ips`.
pub(super) const IPS: &str = "spec.ips";
/// `spec.excludeIPs`.
pub(super) const EXCLUDE_IPS: &str = "spec.excludeIPs";
/// `spec.gateway`.
pub(super) const GATEWAY: &str = "spec.gateway";

/// What the apiserver checks before any webhook runs: a present, DNS-1123 subdomain name.
/// The offline CLI has no apiserver, so admission does it.
pub(super) fn check_name(meta: &ObjectMeta) -> Vec<FieldError> {
    match meta.name.as_deref() {
        None | Some("") => vec![FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )],
        Some(name) => dns1123_subdomain_problems(name)
            .into_iter()
            .map(|m| FieldError::invalid("metadata.name", format!("{name:?}: {m}")))
            .collect(),
    }
}

/// Upstream `validate*IPVersion`: set, 4 or 6, and the family enabled. `unset_message` is the
/// kind's "is not generated correctly, ..." text.
pub(super) fn check_version(
    version: Option<i64>,
    switches: &Switches,
    unset_message: &str,
) -> Result<IpFamily, FieldError> {
    let Some(v) = version else {
        return Err(FieldError::invalid(IP_VERSION, unset_message));
    };
    let Some(family) = IpFamily::from_version(v) else {
        return Err(FieldError::not_supported(
            IP_VERSION,
            &v.to_string(),
            &["4", "6"],
        ));
    };
    let enabled = match family {
        IpFamily::V4 => switches.enable_ipv4,
        IpFamily::V6 => switches.enable_ipv6,
    };
    if !enabled {
        return Err(FieldError::forbidden(
            IP_VERSION,
            format!("{family} is disabled"),
        ));
    }
    Ok(family)
}

/// The reason part of an `ip` error, without the input (the caller quotes it itself).
fn reason(e: &IpError) -> String {
    match e {
        IpError::InvalidIp { reason, .. }
        | IpError::InvalidRange { reason, .. }
        | IpError::InvalidCidr { reason, .. } => reason.clone(),
        IpError::FamilyMismatch { expected, .. } => format!("not of family {expected}"),
        IpError::InvalidListEntry { source, .. } => reason(source),
        other => other.to_string(),
    }
}

/// `spec.subnet` of a pool or subnet: a CIDR of `family` written canonically (upstream
/// `IsCIDR` then `IsFormatCIDR`).
pub(super) fn check_cidr(family: IpFamily, subnet: &str) -> Result<Cidr, FieldError> {
    let cidr = Cidr::parse_in(family, subnet).map_err(|e| {
        FieldError::invalid(
            SUBNET,
            format!(
                "invalid CIDR format in IPv{} '{subnet}': {}",
                family.version(),
                reason(&e)
            ),
        )
    })?;
    // Before the canonical form: rewriting `::ffff:0:0/96` as asked would not help.
    if cidr.aliases_ipv4() {
        return Err(FieldError::invalid(SUBNET, aliases_ipv4_message(subnet)));
    }
    // The canonical-form error text is upstream's "unformatted subnet X, please change it to Y".
    Cidr::parse_canonical(subnet).map_err(|e| FieldError::invalid(SUBNET, e.to_string()))?;
    Ok(cidr)
}

/// Why an IPv6 network or range holding IPv4-mapped addresses is refused (upstream accepts
/// it; see `docs/compatibility.md`).
pub(super) fn aliases_ipv4_message(value: &str) -> String {
    format!(
        "{value:?}: holds IPv4-mapped IPv6 addresses (::ffff:0:0/96), which are IPv4 addresses \
         to the kernel and would alias the addresses of IPv4 pools; use IPv4 addresses instead"
    )
}

/// `spec.subnet` must be given: the CRD schema marks it required.
pub(super) fn check_subnet_present(subnet: &str) -> Option<FieldError> {
    subnet
        .is_empty()
        .then(|| FieldError::required(SUBNET, "Required value"))
}

/// The family of a `spec.subnet` text, when it is a CIDR (the mutating webhooks' rule).
pub(super) fn cidr_family(subnet: &str) -> Option<IpFamily> {
    Cidr::parse(subnet).ok().map(|c| c.family())
}

/// The family of a stored pool or subnet: its `ipVersion`, else that of its CIDR.
pub(super) fn stored_family(version: Option<i64>, subnet: &str) -> Option<IpFamily> {
    version
        .and_then(IpFamily::from_version)
        .or_else(|| cidr_family(subnet))
}

/// A range list parsed entry by entry, indexed as the user wrote it.
pub(super) struct Entries {
    /// Each entry's range, `None` for a bad entry.
    pub ranges: Vec<Option<IpRange>>,
    /// One error per bad entry, on `field[i]`.
    pub errors: Vec<FieldError>,
}

impl Entries {
    /// Every range, when no entry is bad.
    pub fn all(&self) -> Option<Vec<IpRange>> {
        self.ranges.iter().copied().collect()
    }
}

/// Parses each entry of a range list (`spec.ips`, `spec.excludeIPs`) as a range of `family`
/// with both ends inside `cidr`. Every bad entry is reported on `field[i]`. `owner` is the
/// kind word of upstream's "not pertains to the 'spec.subnet' S of IPPool" message.
///
/// A reversed range (`10.0.0.9-10.0.0.1`) is refused here ([QUIRK] upstream's pool check swaps
/// it and admits the pool; see `docs/compatibility.md`).
pub(super) fn parse_entries(
    family: IpFamily,
    cidr: &Cidr,
    subnet: &str,
    field: &str,
    entries: &[String],
    owner: &str,
) -> Entries {
    let mut out = Entries {
        ranges: Vec::with_capacity(entries.len()),
        errors: Vec::new(),
    };
    for (i, e) in entries.iter().enumerate() {
        let checked = parse_range_entry(family, field, i, e).and_then(|r| {
            if cidr.contains_range(&r) {
                Ok(r)
            } else {
                Err(FieldError::invalid(
                    format!("{field}[{i}]"),
                    format!("{e:?}: not pertains to the 'spec.subnet' {subnet} of {owner}"),
                ))
            }
        });
        match checked {
            Ok(r) => out.ranges.push(Some(r)),
            Err(err) => {
                out.ranges.push(None);
                out.errors.push(err);
            }
        }
    }
    out
}

/// One entry of a range list as a range of `family`, reported on `field[index]`.
pub(super) fn parse_range_entry(
    family: IpFamily,
    field: &str,
    index: usize,
    entry: &str,
) -> Result<IpRange, FieldError> {
    IpRange::parse_in(family, entry).map_err(|e| {
        FieldError::invalid(
            format!("{field}[{index}]"),
            format!(
                "invalid IP range format in IPv{} '{entry}': {}",
                family.version(),
                reason(&e)
            ),
        )
    })
}

/// Upstream `NewCIDR` refuses `ips` entries that overlap each other (normally impossible
/// after the mutating webhook merged them; reachable when the merge was skipped). Sorting
/// by start keeps this `O(n log n)` whatever the sizes of the ranges.
pub(super) fn check_disjoint(
    field: &str,
    entries: &[String],
    ranges: &[IpRange],
) -> Result<(), FieldError> {
    let mut order: Vec<(u128, u128, usize)> = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| (ip_to_u128(r.start()), ip_to_u128(r.end()), i))
        .collect();
    order.sort_unstable();
    // Until the first overlap the ranges seen are disjoint, so comparing with the previous
    // one (in start order) is enough.
    for pair in order.windows(2) {
        let [(_, prev_end, a), (start, _, b)] = *pair else {
            continue;
        };
        if start <= prev_end {
            // Report on the later entry of the list, naming the earlier one.
            let (first, second) = (a.min(b), a.max(b));
            let text = |i: usize| entries.get(i).map_or("", String::as_str);
            return Err(FieldError::invalid(
                format!("{field}[{second}]"),
                format!(
                    "range {} overlaps with {} ({field}[{first}])",
                    text(second),
                    text(first)
                ),
            ));
        }
    }
    Ok(())
}

/// The union of the entries of a stored object's range list that parse; bad entries of
/// objects already admitted are skipped rather than blocking other objects.
pub(super) fn lenient_set(family: IpFamily, entries: Option<&[String]>) -> IpRangeSet {
    let ranges = entries
        .unwrap_or_default()
        .iter()
        .filter_map(|e| IpRange::parse_in(family, e).ok());
    IpRangeSet::from_ranges(family, ranges).unwrap_or_else(|_| IpRangeSet::new(family))
}

/// `ips − excludeIPs` of a stored object, leniently (see [`lenient_set`]).
pub(super) fn lenient_effective(
    family: IpFamily,
    ips: Option<&[String]>,
    exclude: Option<&[String]>,
) -> IpRangeSet {
    lenient_set(family, ips).difference(&lenient_set(family, exclude))
}

/// The union of already-parsed ranges of one family.
pub(super) fn set_of(family: IpFamily, ranges: &[IpRange]) -> IpRangeSet {
    IpRangeSet::from_ranges(family, ranges.iter().copied())
        .unwrap_or_else(|_| IpRangeSet::new(family))
}

/// Go's `%v` of a string slice: `[a b c]`, as in upstream's range-list messages.
pub(super) fn go_list(set: &IpRangeSet) -> String {
    format!("[{}]", set.to_strings().join(" "))
}

/// An address of `family` (gateway, route gateway), reported on `field`.
fn parse_addr(family: IpFamily, field: &str, s: &str) -> Result<IpAddr, FieldError> {
    parse_ip_in(family, s).map_err(|e| {
        FieldError::invalid(
            field,
            format!(
                "invalid IP format in IPv{} '{s}': {}",
                family.version(),
                reason(&e)
            ),
        )
    })
}

/// Upstream `ValidateContainsIP`: `s` is an address of `family` inside `cidr`.
fn check_addr_in(
    family: IpFamily,
    cidr: &Cidr,
    subnet: &str,
    field: &str,
    s: &str,
    owner: &str,
) -> Result<IpAddr, FieldError> {
    let ip = parse_addr(family, field, s)?;
    if !cidr.contains_ip(ip) {
        return Err(FieldError::invalid(
            field,
            format!("{s:?}: not pertains to the 'spec.subnet' {subnet} of {owner}"),
        ));
    }
    Ok(ip)
}

/// The parts of a pool or subnet spec the gateway and route checks read.
pub(super) struct SpecView<'a> {
    /// The family from `ipVersion`.
    pub family: IpFamily,
    /// The parsed `subnet`.
    pub cidr: &'a Cidr,
    /// `subnet` as written (for messages).
    pub subnet: &'a str,
    /// `ips` as written, and parsed (`None` for a bad entry).
    pub ips: (&'a [String], &'a [Option<IpRange>]),
    /// Parsed `excludeIPs` (`None` for a bad entry).
    pub exclude: &'a [Option<IpRange>],
    /// `gateway`.
    pub gateway: Option<&'a str>,
    /// `routes`.
    pub routes: Option<&'a [Route]>,
    /// Kind word for messages: `IPPool` or `Subnet`.
    pub owner: &'a str,
}

/// Upstream `validate*Gateway`: inside the subnet; if it is also in an `excludeIPs` range it is
/// fine, otherwise it must not be in an `ips` range (it would be handed to a pod).
pub(super) fn check_gateway(v: &SpecView<'_>) -> Result<(), FieldError> {
    let Some(gw) = v.gateway else {
        return Ok(());
    };
    let ip = check_addr_in(v.family, v.cidr, v.subnet, GATEWAY, gw, v.owner)?;
    if v.exclude.iter().flatten().any(|r| r.contains(ip)) {
        return Ok(());
    }
    let (raw, parsed) = v.ips;
    if let Some(i) = parsed
        .iter()
        .position(|r| r.is_some_and(|r| r.contains(ip)))
    {
        let entry = raw.get(i).map_or("", String::as_str);
        return Err(FieldError::invalid(
            format!("{IPS}[{i}]"),
            format!(
                "{entry:?}: conflicts with 'spec.gateway' {gw}, add the gateway IP address to 'spec.excludeIPs' or remove it from 'spec.ips'"
            ),
        ));
    }
    Ok(())
}

/// Upstream `validate*Routes`, on the parsed destination: a default route is refused (the
/// gateway makes it), destinations must be distinct, be CIDRs of the family, and gateways
/// must be inside the subnet. Every bad route is reported.
///
/// Two spellings of one network (`10.7.0.0/16`, `10.7.0.1/16`) count as duplicates here,
/// and any `/0` is the default route (upstream compares the text).
pub(super) fn check_routes(v: &SpecView<'_>) -> Vec<FieldError> {
    let mut seen: Vec<Cidr> = Vec::new();
    let mut errs = Vec::new();
    for (i, r) in v.routes.unwrap_or_default().iter().enumerate() {
        match check_route_dst(v, i, r, &seen) {
            Ok(net) => seen.push(net),
            Err(e) => errs.push(e),
        }
        let gw_field = format!("spec.routes[{i}].gw");
        if let Err(e) = check_addr_in(v.family, v.cidr, v.subnet, &gw_field, &r.gw, v.owner) {
            errs.push(e);
        }
    }
    errs
}

/// The destination of route `i`: a CIDR of the family, not the default route, not a
/// duplicate of one in `seen`. Returns its network.
fn check_route_dst(
    v: &SpecView<'_>,
    i: usize,
    r: &Route,
    seen: &[Cidr],
) -> Result<Cidr, FieldError> {
    let dst_field = format!("spec.routes[{i}].dst");
    let dst = Cidr::parse_in(v.family, &r.dst).map_err(|e| {
        FieldError::invalid(
            &dst_field,
            format!(
                "invalid CIDR format in IPv{} '{}': {}",
                v.family.version(),
                r.dst,
                reason(&e)
            ),
        )
    })?;
    if dst.prefix_len() == 0 {
        return Err(FieldError::invalid(
            &dst_field,
            format!(
                "{:?}: please specify 'spec.gateway' to configure the default route",
                r.dst
            ),
        ));
    }
    let net = dst.trunc();
    if seen.contains(&net) {
        return Err(FieldError::invalid(
            &dst_field,
            format!("{:?}: duplicate route with the same dst", r.dst),
        ));
    }
    Ok(net)
}

/// Forbidden error of an UPDATE to an object being deleted.
pub(super) fn terminating(message: &str) -> FieldError {
    FieldError::forbidden("metadata.deletionTimestamp", message)
}

/// Forbidden error of a DELETE refused because IPs are still allocated.
pub(super) fn delete_in_use(what: &str, count: i64) -> FieldError {
    FieldError::forbidden(
        "status.allocatedIPCount",
        format!("cannot delete an {what} with allocated IPs({count})"),
    )
}

/// Forbidden error of a changed immutable field.
pub(super) fn not_changeable(field: &str) -> FieldError {
    FieldError::forbidden(field, "is not changeable")
}

/// AlreadyExists error as the apiserver words it.
pub(super) fn already_exists(plural: &str, name: &str) -> FieldError {
    FieldError::already_exists(
        "metadata.name",
        format!("{plural}.spiderpool.spidernet.io {name:?} already exists"),
    )
}

/// Mutating steps shared by pools and subnets: finalizer, `ipVersion` from `subnet`, the CIDR
/// label under `label_key`. Returns the family when the rest of the defaulting can go on
/// (the CIDR parses and agrees with `ipVersion`); otherwise the validator reports the problem.
pub(super) fn default_cidr_object(
    meta: &mut ObjectMeta,
    ip_version: &mut Option<i64>,
    subnet: &str,
    label_key: &str,
) -> Option<IpFamily> {
    meta.add_finalizer(SPIDER_FINALIZER);
    let family = cidr_family(subnet)?;
    let version = *ip_version.get_or_insert(i64::from(family.version()));
    if IpFamily::from_version(version) != Some(family) {
        return None;
    }
    meta.set_label(label_key, cidr_label_value_str(subnet));
    Some(family)
}

/// Replaces a list of more than one range with its merged, sorted form; a list with a bad
/// entry is left as written for the validator to report.
pub(super) fn merge_in_place(family: IpFamily, list: &mut Option<Vec<String>>) {
    if let Some(entries) = list.as_mut()
        && entries.len() > 1
        && let Ok(merged) = merge_ip_ranges(family, entries)
    {
        *entries = merged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Reason;

    fn ranges(entries: &[&str]) -> (Vec<String>, Vec<IpRange>) {
        let raw: Vec<String> = entries.iter().map(|s| (*s).to_owned()).collect();
        let parsed = raw.iter().map(|s| IpRange::parse(s).unwrap()).collect();
        (raw, parsed)
    }

    #[test]
    fn admission_disjoint_entries() {
        let (raw, parsed) = ranges(&["10.0.0.6-10.0.0.9", "10.0.0.1-10.0.0.5"]);
        assert!(check_disjoint(IPS, &raw, &parsed).is_ok());
        let (raw, parsed) = ranges(&["10.0.0.1-10.0.0.9", "10.0.0.20", "10.0.0.3"]);
        let e = check_disjoint(IPS, &raw, &parsed).unwrap_err();
        assert_eq!(e.path, "spec.ips[2]");
        assert_eq!(
            e.message,
            "range 10.0.0.3 overlaps with 10.0.0.1-10.0.0.9 (spec.ips[0])"
        );
    }

    #[test]
    fn admission_routes_compare_networks() {
        let cidr = Cidr::parse("10.6.0.0/16").unwrap();
        let routes = [
            Route::new("10.7.0.0/16", "10.6.0.1"),
            Route::new("10.7.0.1/16", "10.6.0.1"),
        ];
        let view = SpecView {
            family: IpFamily::V4,
            cidr: &cidr,
            subnet: "10.6.0.0/16",
            ips: (&[], &[]),
            exclude: &[],
            gateway: None,
            routes: Some(&routes),
            owner: "IPPool",
        };
        let e = check_routes(&view);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path, "spec.routes[1].dst");
        assert!(e[0].message.contains("duplicate route with the same dst"));
        let default = [Route::new("10.0.0.0/0", "10.6.0.1")];
        let e = check_routes(&SpecView {
            routes: Some(&default),
            ..view
        });
        assert!(e[0].message.contains("to configure the default route"));
    }

    #[test]
    fn admission_name_rules() {
        assert!(check_name(&ObjectMeta::named("10-6-v4")).is_empty());
        let e = check_name(&ObjectMeta::default());
        assert_eq!(e[0].reason, Reason::Required);
        assert_eq!(
            check_name(&ObjectMeta::named("a/b"))[0].reason,
            Reason::Invalid
        );
    }

    #[test]
    fn admission_defaulting_stops_on_a_version_mismatch() {
        let mut meta = ObjectMeta::named("p");
        let mut version = Some(6);
        assert_eq!(
            default_cidr_object(&mut meta, &mut version, "10.6.0.0/16", "l"),
            None
        );
        assert_eq!(meta.label("l"), None);
        assert!(meta.has_finalizer(SPIDER_FINALIZER));
        let mut version = None;
        assert_eq!(
            default_cidr_object(&mut meta, &mut version, "10.6.0.0/16", "l"),
            Some(IpFamily::V4)
        );
        assert_eq!(version, Some(4));
        assert_eq!(meta.label("l"), Some("10-6-0-0-16"));
    }
}
