//! Parsing of the pod and namespace annotations the IPAM reads (§3.3, §3.19). Every error
//! names the annotation and says what is wrong (the JSON parser's message carries line and
//! column).

use crate::ipam::IpamError;
use std::collections::BTreeSet;

use serde::Deserialize;

use crate::ip::{Cidr, IpFamily, parse_ip};
use crate::objects::Route;
use crate::objects::keys::{
    ANNO_IPPOOL_IP_NUMBER, ANNO_IPPOOL_RECLAIM, ANNO_POD_IPPOOL, ANNO_POD_IPPOOLS, ANNO_POD_ROUTES,
    ANNO_POD_SUBNET, ANNO_POD_SUBNETS,
};

fn bad(key: &str, reason: impl Into<String>) -> IpamError {
    IpamError::Annotation {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn json<'a, T: Deserialize<'a>>(key: &str, text: &'a str, shape: &str) -> Result<T, IpamError> {
    serde_json::from_str(text).map_err(|e| bad(key, format!("expected {shape}: {e}")))
}

/// Pool names per family, as in `ipam.spidernet.io/ippool` (`{"ipv4":[..],"ipv6":[..]}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PoolNames {
    /// IPv4 pool names (globs allowed, §3.4).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ipv4: Vec<String>,
    /// IPv6 pool names (globs allowed).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ipv6: Vec<String>,
}

impl PoolNames {
    /// The names of `family`.
    pub fn of(&self, family: IpFamily) -> &[String] {
        match family {
            IpFamily::V4 => &self.ipv4,
            IpFamily::V6 => &self.ipv6,
        }
    }

    /// Whether both lists are empty.
    pub fn is_empty(&self) -> bool {
        self.ipv4.is_empty() && self.ipv6.is_empty()
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// One item of `ipam.spidernet.io/ippools`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NicPools {
    /// The NIC; when the annotation names no interface, the item's position (`"0"`, `"1"`...).
    pub interface: String,
    /// The pools.
    pub pools: PoolNames,
    /// `cleangateway`: no default route for this NIC.
    pub clean_gateway: bool,
}

/// The parsed `ipam.spidernet.io/ippools` annotation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiNicPools {
    /// Whether the items name their interfaces (else they are positional).
    pub named: bool,
    /// The items in annotation order.
    pub nics: Vec<NicPools>,
}

#[derive(Deserialize)]
struct RawNicPools {
    #[serde(default)]
    interface: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    ipv4: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    ipv6: Vec<String>,
    #[serde(default)]
    cleangateway: bool,
}

/// Parses `ipam.spidernet.io/ippool`.
pub fn parse_ippool(text: &str) -> Result<PoolNames, IpamError> {
    json(
        ANNO_POD_IPPOOL,
        text,
        r#"a JSON object {"ipv4":[...],"ipv6":[...]}"#,
    )
}

/// Parses `ipam.spidernet.io/ippools`: non-empty; either every item names an `interface` or
/// none does; no interface twice.
pub fn parse_ippools(text: &str) -> Result<MultiNicPools, IpamError> {
    let raw: Vec<RawNicPools> = json(
        ANNO_POD_IPPOOLS,
        text,
        r#"a JSON array [{"interface":..,"ipv4":[...],"ipv6":[...],"cleangateway":..}]"#,
    )?;
    if raw.is_empty() {
        return Err(bad(ANNO_POD_IPPOOLS, "the list is empty"));
    }
    let named = raw.iter().filter(|r| !r.interface.is_empty()).count();
    if named != 0 && named != raw.len() {
        return Err(bad(
            ANNO_POD_IPPOOLS,
            "NIC should be either all specified or all unspecified",
        ));
    }
    let mut seen = BTreeSet::new();
    let mut nics = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let interface = if named == 0 {
            i.to_string()
        } else {
            r.interface
        };
        if !seen.insert(interface.clone()) {
            return Err(bad(
                ANNO_POD_IPPOOLS,
                format!("duplicate interface {interface}"),
            ));
        }
        nics.push(NicPools {
            interface,
            pools: PoolNames {
                ipv4: r.ipv4,
                ipv6: r.ipv6,
            },
            clean_gateway: r.cleangateway,
        });
    }
    Ok(MultiNicPools {
        named: named != 0,
        nics,
    })
}

/// One NIC of `ipam.spidernet.io/subnet(s)`: the subnet per family (only the first name of
/// each list is used, as upstream).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NicSubnets {
    /// The NIC (defaults to `eth0`).
    pub interface: String,
    /// The IPv4 subnet.
    pub ipv4: Option<String>,
    /// The IPv6 subnet.
    pub ipv6: Option<String>,
}

impl NicSubnets {
    /// The subnet of `family`.
    pub fn of(&self, family: IpFamily) -> Option<&str> {
        match family {
            IpFamily::V4 => self.ipv4.as_deref(),
            IpFamily::V6 => self.ipv6.as_deref(),
        }
    }
}

#[derive(Deserialize)]
struct RawNicSubnets {
    #[serde(default)]
    interface: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    ipv4: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    ipv6: Vec<String>,
}

fn subnet_item(key: &str, r: RawNicSubnets) -> Result<NicSubnets, IpamError> {
    if r.ipv4.iter().chain(&r.ipv6).any(String::is_empty) {
        return Err(bad(key, "empty subnet name"));
    }
    if r.ipv4.is_empty() && r.ipv6.is_empty() {
        return Err(bad(key, "an item has neither ipv4 nor ipv6 subnets"));
    }
    Ok(NicSubnets {
        interface: if r.interface.is_empty() {
            "eth0".to_owned()
        } else {
            r.interface
        },
        ipv4: r.ipv4.into_iter().next(),
        ipv6: r.ipv6.into_iter().next(),
    })
}

/// Parses `ipam.spidernet.io/subnet`.
pub fn parse_subnet(text: &str) -> Result<NicSubnets, IpamError> {
    let raw: RawNicSubnets = json(
        ANNO_POD_SUBNET,
        text,
        r#"a JSON object {"interface":..,"ipv4":[..],"ipv6":[..]}"#,
    )?;
    subnet_item(ANNO_POD_SUBNET, raw)
}

/// Parses `ipam.spidernet.io/subnets`: no interface twice, no subnet used by two interfaces.
pub fn parse_subnets(text: &str) -> Result<Vec<NicSubnets>, IpamError> {
    let raw: Vec<RawNicSubnets> = json(
        ANNO_POD_SUBNETS,
        text,
        r#"a JSON array [{"interface":..,"ipv4":[..],"ipv6":[..]}]"#,
    )?;
    let mut ifs = BTreeSet::new();
    let mut subnets = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let item = subnet_item(ANNO_POD_SUBNETS, r)?;
        if !ifs.insert(item.interface.clone()) {
            return Err(bad(
                ANNO_POD_SUBNETS,
                format!("duplicate interface {}", item.interface),
            ));
        }
        for s in item.ipv4.iter().chain(&item.ipv6) {
            if !subnets.insert(s.clone()) {
                return Err(bad(
                    ANNO_POD_SUBNETS,
                    format!("subnet {s} is used by more than one interface"),
                ));
            }
        }
        out.push(item);
    }
    Ok(out)
}

/// Parses a namespace default-pool annotation (`ipam.spidernet.io/default-ipv4-ippool` or
/// `-ipv6-`): a JSON list of pool names.
pub fn parse_namespace_pools(key: &str, text: &str) -> Result<Vec<String>, IpamError> {
    json(key, text, r#"a JSON array of pool names ["pool1","pool2"]"#)
}

/// Parses and validates `ipam.spidernet.io/routes`: each `dst` is a CIDR and `gw` an address of
/// the same family.
pub fn parse_routes(text: &str) -> Result<Vec<Route>, IpamError> {
    let routes: Vec<Route> = json(
        ANNO_POD_ROUTES,
        text,
        r#"a JSON array [{"dst":"10.0.0.0/16","gw":"192.168.1.1"}]"#,
    )?;
    for (i, r) in routes.iter().enumerate() {
        let dst = Cidr::parse(&r.dst)
            .map_err(|e| bad(ANNO_POD_ROUTES, format!("route [{i}] dst: {e}")))?;
        let gw =
            parse_ip(&r.gw).map_err(|e| bad(ANNO_POD_ROUTES, format!("route [{i}] gw: {e}")))?;
        if IpFamily::of(&gw) != dst.family() {
            return Err(bad(
                ANNO_POD_ROUTES,
                format!(
                    "route [{i}]: dst {} and gw {} are of different families",
                    r.dst, r.gw
                ),
            ));
        }
    }
    Ok(routes)
}

/// `ipam.spidernet.io/ippool-ip-number`: the size of an auto-created pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpNumber {
    /// `"N"`: exactly N addresses.
    Fixed(u64),
    /// `"+N"`: the application's replicas plus N.
    Flexible(u64),
}

/// Parses `ipam.spidernet.io/ippool-ip-number` (`"N"` or `"+N"`, N ≥ 0).
pub fn parse_ip_number(text: &str) -> Result<IpNumber, IpamError> {
    let (flexible, digits) = match text.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let n: u64 = Some(digits)
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| {
            bad(
                ANNO_IPPOOL_IP_NUMBER,
                format!("{text:?} is not \"N\" or \"+N\" with N a non-negative integer"),
            )
        })?;
    Ok(if flexible {
        IpNumber::Flexible(n)
    } else {
        IpNumber::Fixed(n)
    })
}

/// Parses `ipam.spidernet.io/ippool-reclaim` with Go's `strconv.ParseBool` spellings.
pub fn parse_reclaim(text: &str) -> Result<bool, IpamError> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(bad(
            ANNO_IPPOOL_RECLAIM,
            format!("{text:?} is not a boolean (true/false)"),
        )),
    }
}

/// Whether `name` is a glob in Go `filepath.Match` syntax (§3.4): it contains `*`, `?`, or
/// both `[` and `]`.
pub fn is_glob(name: &str) -> bool {
    name.contains('*') || name.contains('?') || (name.contains('[') && name.contains(']'))
}

/// Go `filepath.Match` on pool names: `*` any run of characters except `/`, `?` one character
/// except `/`, `[...]` a class (ranges `a-z`, negation `^`), `\` escapes. A malformed pattern
/// matches nothing.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n).unwrap_or(false)
}

fn glob_at(p: &[char], n: &[char]) -> Option<bool> {
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    let (matched, len) = class(&p[pi..], n[ni])?;
                    if matched {
                        pi += len;
                        ni += 1;
                        continue;
                    }
                }
                '\\' => {
                    if p.get(pi + 1) == Some(&n[ni]) {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                    p.get(pi + 1)?;
                }
                c if c == n[ni] && c != '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) if n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => return Some(false),
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    Some(pi == p.len())
}

/// Matches `c` against the class at the start of `p` (`[...]`); returns whether it matched and
/// the class length, or `None` for a malformed class.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = p.get(i) == Some(&'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            i += 1;
            hi = *p.get(i)?;
            if hi == '\\' {
                i += 1;
                hi = *p.get(i)?;
            }
            i += 1;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Some((matched != negate, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipam_annotation_ippool() {
        let p = parse_ippool(r#"{"ipv4":["a","b"]}"#).unwrap();
        assert_eq!(p.ipv4, ["a", "b"]);
        assert!(p.ipv6.is_empty());
        let p = parse_ippool(r#"{"ipv4":null,"ipv6":["c"]}"#).unwrap();
        assert_eq!(p.ipv6, ["c"]);
        let e = parse_ippool(r#"{"ipv4":"a"}"#).unwrap_err().to_string();
        assert!(e.starts_with("annotation ipam.spidernet.io/ippool: expected a JSON object"));
        assert!(e.contains("line 1 column"), "{e}");
    }

    #[test]
    fn ipam_annotation_ippools() {
        let m = parse_ippools(
            r#"[{"interface":"eth0","ipv4":["a"]},{"interface":"net1","ipv6":["b"],"cleangateway":true}]"#,
        )
        .unwrap();
        assert!(m.named);
        assert_eq!(m.nics[1].interface, "net1");
        assert!(m.nics[1].clean_gateway);
        let m = parse_ippools(r#"[{"ipv4":["a"]},{"ipv4":["b"]}]"#).unwrap();
        assert!(!m.named);
        assert_eq!(m.nics[1].interface, "1");
        for (text, want) in [
            ("[]", "the list is empty"),
            (
                r#"[{"interface":"eth0"},{"ipv4":["b"]}]"#,
                "either all specified or all unspecified",
            ),
            (
                r#"[{"interface":"eth0"},{"interface":"eth0"}]"#,
                "duplicate interface eth0",
            ),
            (r#"{"interface":"eth0"}"#, "expected a JSON array"),
            (r#"[{"interface":"eth0","#, "EOF while parsing"),
        ] {
            let e = parse_ippools(text).unwrap_err().to_string();
            assert!(e.contains("ipam.spidernet.io/ippools"), "{e}");
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn ipam_annotation_subnets() {
        let s = parse_subnet(r#"{"ipv4":["s1","s2"]}"#).unwrap();
        assert_eq!(s.interface, "eth0");
        assert_eq!(s.ipv4.as_deref(), Some("s1"));
        assert!(parse_subnet(r#"{"interface":"net1"}"#).is_err());
        assert!(parse_subnet(r#"{"ipv4":[""]}"#).is_err());
        let e = parse_subnets(
            r#"[{"interface":"eth0","ipv4":["s"]},{"interface":"net1","ipv4":["s"]}]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("used by more than one interface"), "{e}");
    }

    #[test]
    fn ipam_annotation_routes_and_numbers() {
        let r = parse_routes(r#"[{"dst":"10.0.0.0/16","gw":"192.168.1.1"}]"#).unwrap();
        assert_eq!(r[0].gw, "192.168.1.1");
        let e = parse_routes(r#"[{"dst":"10.0.0.0/16","gw":"fd00::1"}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("different families"), "{e}");
        let e = parse_routes(r#"[{"dst":"10.0.0.0","gw":"10.0.0.1"}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("route [0] dst"), "{e}");
        assert_eq!(parse_ip_number("+2").unwrap(), IpNumber::Flexible(2));
        assert_eq!(parse_ip_number("5").unwrap(), IpNumber::Fixed(5));
        assert!(parse_ip_number("++2").is_err());
        assert!(parse_ip_number("-1").is_err());
        assert!(parse_reclaim("T").unwrap());
        assert!(parse_reclaim("yes").is_err());
        let e = parse_namespace_pools("ipam.spidernet.io/default-ipv4-ippool", "p1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("default-ipv4-ippool"), "{e}");
    }

    #[test]
    fn ipam_glob() {
        assert!(is_glob("rdmarail1-*"));
        assert!(is_glob("p[12]"));
        assert!(!is_glob("p[12"));
        assert!(glob_match("rdmarail1-*", "rdmarail1-a"));
        assert!(!glob_match("rdmarail1-*", "rdmarail2-a"));
        assert!(glob_match("p?", "p1"));
        assert!(!glob_match("p?", "p12"));
        assert!(glob_match("p[1-3]", "p2"));
        assert!(!glob_match("p[^1-3]", "p2"));
        assert!(glob_match("*-v4-*", "a-v4-b"));
        assert!(!glob_match("p[", "p["));
        assert!(glob_match("a\\*", "a*"));
    }
}
