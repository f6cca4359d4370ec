//! Result (de)serialization in every supported version, byte-compatible with Go's `libcni`.
//!
//! Two wire layouts:
//!
//! * **0.3.0 / 0.3.1 / 0.4.0** (Go `types040.Result`): keys in Go's struct order
//!   (`cniVersion`, `interfaces`, `ips`, `routes`, `dns`); `ips[]` as `version`, `interface`,
//!   `address`, `gateway`; routes as `dst`, `gw`, `mtu`, `advmss`, `priority`, `table`, `scope`;
//!   `dns` always present (`{}` when empty); interfaces carry only `name`, `mac`, `sandbox`.
//! * **1.0.0 / 1.1.0** (Go `types100.Result`): Go re-marshals this result through a generic map
//!   to drop an empty `dns`, so **every object's keys come out sorted** (`cniVersion`, `dns`,
//!   `interfaces`, `ips`, `routes`; `address`, `gateway`, `interface`; `advmss`, `dst`, `gw`,
//!   ...). `dns` is omitted when empty.
//!
//! Strings are escaped as Go's `encoding/json` does (`<`, `>`, `&`, U+2028 and U+2029 as
//! `\u003c`...), and pretty output is Go's `MarshalIndent(v, "", "    ")` without a final
//! newline, so a Go-printed result parses and re-prints byte for byte.
//!
//! Parsing is lenient as Go is: unknown keys are ignored (and so dropped on re-printing: Go does
//! not keep them either), `null` reads as empty, `ips[].version` is not checked (it is
//! recomputed from the address when printing), an empty `gateway` is no gateway.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub(crate) use crate::gojson::to_go_json;

use super::error::CniError;
use super::result::{Dns, Interface, IpConfig, Result100, Route, VersionedResult};
use super::version::{ResultLayout, SpecVersion};

// ---------------------------------------------------------------------------------------------
// Field helpers

/// `null` reads as the default value (Go leaves the zero value).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

mod cidr {
    //! `IpNet` as CIDR text with the host bits kept (`10.6.212.145/16`).
    use super::*;

    pub fn serialize<S: Serializer>(net: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<IpNet>()
            .map_err(|_| serde::de::Error::custom(format!("invalid CIDR address: {text}")))
    }
}

mod opt_ip {
    //! An optional IP address: absent, `null` or `""` is `None`. IPv4-mapped IPv6 addresses
    //! are read as IPv4, as Go's `net.IP` prints them.
    use super::*;

    pub fn serialize<S: Serializer>(ip: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
        match ip {
            Some(ip) => s.collect_str(ip),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) if text.is_empty() => Ok(None),
            Some(text) => text
                .parse::<IpAddr>()
                .map(|ip| Some(ip.to_canonical()))
                .map_err(|_| serde::de::Error::custom(format!("invalid IP address: {text}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 0.3.x / 0.4.0 wire layout (Go struct order)

#[derive(Serialize, Deserialize)]
struct Result04 {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    cni_version: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    interfaces: Vec<Interface04>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    ips: Vec<Ip04>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    routes: Vec<Route04>,
    #[serde(default, deserialize_with = "null_as_default")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct Interface04 {
    #[serde(default, deserialize_with = "null_as_default")]
    name: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    mac: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    sandbox: String,
}

#[derive(Serialize, Deserialize)]
struct Ip04 {
    #[serde(default, deserialize_with = "null_as_default")]
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    #[serde(with = "cidr")]
    address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ip")]
    gateway: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct Route04 {
    #[serde(with = "cidr")]
    dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ip")]
    gw: Option<IpAddr>,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    mtu: u32,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    advmss: u32,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<u8>,
}

// ---------------------------------------------------------------------------------------------
// 1.0.0 / 1.1.0 wire layout (keys sorted, as Go's map re-marshal prints them)

#[derive(Serialize, Deserialize)]
struct Result1 {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    cni_version: String,
    #[serde(
        default,
        skip_serializing_if = "Dns1::is_empty",
        deserialize_with = "null_as_default"
    )]
    dns: Dns1,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    interfaces: Vec<Interface1>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    ips: Vec<Ip1>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    routes: Vec<Route1>,
}

#[derive(Default, Serialize, Deserialize)]
struct Dns1 {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    domain: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    nameservers: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    options: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    search: Vec<String>,
}

impl Dns1 {
    fn is_empty(&self) -> bool {
        self.domain.is_empty()
            && self.nameservers.is_empty()
            && self.options.is_empty()
            && self.search.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
struct Interface1 {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    mac: String,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    mtu: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    name: String,
    #[serde(
        rename = "pciID",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pci_id: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    sandbox: String,
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    socket_path: String,
}

#[derive(Serialize, Deserialize)]
struct Ip1 {
    #[serde(with = "cidr")]
    address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ip")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct Route1 {
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    advmss: u32,
    #[serde(with = "cidr")]
    dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ip")]
    gw: Option<IpAddr>,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    mtu: u32,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// model <-> wire

fn route04(r: &Route) -> Route04 {
    Route04 {
        dst: r.dst,
        gw: r.gw,
        mtu: r.mtu,
        advmss: r.advmss,
        priority: r.priority,
        table: r.table,
        scope: r.scope,
    }
}

fn to04(r: &Result100, version: SpecVersion) -> Result04 {
    Result04 {
        cni_version: version.as_str().to_owned(),
        interfaces: r
            .interfaces
            .iter()
            .map(|i| Interface04 {
                name: i.name.clone(),
                mac: i.mac.clone(),
                sandbox: i.sandbox.clone(),
            })
            .collect(),
        ips: r
            .ips
            .iter()
            .map(|ip| Ip04 {
                version: ip.version_label().to_owned(),
                interface: ip.interface,
                address: ip.address,
                gateway: ip.gateway,
            })
            .collect(),
        routes: r.routes.iter().map(route04).collect(),
        dns: r.dns.clone(),
    }
}

fn from04(w: Result04) -> Result100 {
    Result100 {
        interfaces: w
            .interfaces
            .into_iter()
            .map(|i| Interface {
                name: i.name,
                mac: i.mac,
                sandbox: i.sandbox,
                ..Interface::default()
            })
            .collect(),
        ips: w
            .ips
            .into_iter()
            .map(|ip| IpConfig {
                interface: ip.interface,
                address: ip.address,
                gateway: ip.gateway,
            })
            .collect(),
        routes: w
            .routes
            .into_iter()
            .map(|r| Route {
                dst: r.dst,
                gw: r.gw,
                mtu: r.mtu,
                advmss: r.advmss,
                priority: r.priority,
                table: r.table,
                scope: r.scope,
            })
            .collect(),
        dns: w.dns,
    }
}

fn to1(r: &Result100, version: SpecVersion) -> Result1 {
    Result1 {
        cni_version: version.as_str().to_owned(),
        dns: Dns1 {
            domain: r.dns.domain.clone(),
            nameservers: r.dns.nameservers.clone(),
            options: r.dns.options.clone(),
            search: r.dns.search.clone(),
        },
        interfaces: r
            .interfaces
            .iter()
            .map(|i| Interface1 {
                mac: i.mac.clone(),
                mtu: i.mtu,
                name: i.name.clone(),
                pci_id: i.pci_id.clone(),
                sandbox: i.sandbox.clone(),
                socket_path: i.socket_path.clone(),
            })
            .collect(),
        ips: r
            .ips
            .iter()
            .map(|ip| Ip1 {
                address: ip.address,
                gateway: ip.gateway,
                interface: ip.interface,
            })
            .collect(),
        routes: r
            .routes
            .iter()
            .map(|r| Route1 {
                advmss: r.advmss,
                dst: r.dst,
                gw: r.gw,
                mtu: r.mtu,
                priority: r.priority,
                scope: r.scope,
                table: r.table,
            })
            .collect(),
    }
}

fn from1(w: Result1) -> Result100 {
    Result100 {
        interfaces: w
            .interfaces
            .into_iter()
            .map(|i| Interface {
                name: i.name,
                mac: i.mac,
                mtu: i.mtu,
                sandbox: i.sandbox,
                socket_path: i.socket_path,
                pci_id: i.pci_id,
            })
            .collect(),
        ips: w
            .ips
            .into_iter()
            .map(|ip| IpConfig {
                interface: ip.interface,
                address: ip.address,
                gateway: ip.gateway,
            })
            .collect(),
        routes: w
            .routes
            .into_iter()
            .map(|r| Route {
                dst: r.dst,
                gw: r.gw,
                mtu: r.mtu,
                advmss: r.advmss,
                priority: r.priority,
                table: r.table,
                scope: r.scope,
            })
            .collect(),
        dns: Dns {
            nameservers: w.dns.nameservers,
            domain: w.dns.domain,
            search: w.dns.search,
            options: w.dns.options,
        },
    }
}

fn legacy_unsupported(version: SpecVersion) -> CniError {
    CniError::incompatible_version(format!(
        "CNI result version {version} is not supported: the 0.1.0/0.2.0 (ip4/ip6) layout is not implemented"
    ))
    .with_details(format!(
        "supported result versions: {}",
        SpecVersion::SUPPORTED.map(SpecVersion::as_str).join(", ")
    ))
}

fn decode_error(e: &serde_json::Error) -> CniError {
    CniError::decode(format!("could not parse CNI result: {e}"))
}

/// Reads the `cniVersion` of a result; absent, `null` or `""` gives `default`.
fn result_version(
    version: Option<&Value>,
    default: Option<SpecVersion>,
) -> Result<SpecVersion, CniError> {
    match version {
        None | Some(Value::Null) => default,
        Some(Value::String(s)) if s.is_empty() => default,
        Some(Value::String(s)) => {
            return SpecVersion::parse(s).map_err(|e| {
                CniError::incompatible_version(format!("unsupported CNI result version {s:?}"))
                    .with_details(e.msg)
            });
        }
        Some(other) => {
            return Err(CniError::decode(format!(
                "could not parse CNI result: cniVersion must be a string, got {other}"
            )));
        }
    }
    .ok_or_else(|| CniError::decode("could not parse CNI result: missing cniVersion"))
}

fn from_layout<T: DeserializeOwned>(value: Value) -> Result<T, CniError> {
    serde_json::from_value(value).map_err(|e| decode_error(&e))
}

impl Result100 {
    /// Parses a result written in any version with a 0.3.0 or later layout.
    ///
    /// `default_version` stands in for a missing (or empty) `cniVersion`, as Go's
    /// `ParsePrevResult` injects the configuration's version. Errors: code 6 for bad JSON or
    /// shapes (with line and column), code 1 for an unknown or 0.1.0/0.2.0 version.
    pub fn parse(
        bytes: &[u8],
        default_version: Option<SpecVersion>,
    ) -> Result<VersionedResult, CniError> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "cniVersion", default)]
            cni_version: Option<Value>,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| decode_error(&e))?;
        let version = result_version(probe.cni_version.as_ref(), default_version)?;
        let result = match version.layout() {
            ResultLayout::Legacy02 => return Err(legacy_unsupported(version)),
            ResultLayout::V04 => {
                from04(serde_json::from_slice(bytes).map_err(|e| decode_error(&e))?)
            }
            ResultLayout::V1 => from1(serde_json::from_slice(bytes).map_err(|e| decode_error(&e))?),
        };
        Ok(VersionedResult { version, result })
    }

    /// [`Result100::parse`] from an already decoded JSON value (e.g. a config's `prevResult`).
    pub fn from_value(
        value: Value,
        default_version: Option<SpecVersion>,
    ) -> Result<VersionedResult, CniError> {
        let Value::Object(map) = value else {
            return Err(CniError::decode(
                "could not parse CNI result: expected a JSON object",
            ));
        };
        let version = result_version(map.get("cniVersion"), default_version)?;
        let value = Value::Object(map);
        let result = match version.layout() {
            ResultLayout::Legacy02 => return Err(legacy_unsupported(version)),
            ResultLayout::V04 => from04(from_layout(value)?),
            ResultLayout::V1 => from1(from_layout(value)?),
        };
        Ok(VersionedResult { version, result })
    }

    /// The result as a JSON value in `version`'s layout, keys in Go's order.
    pub fn to_value(&self, version: SpecVersion) -> Result<Value, CniError> {
        let value = match version.layout() {
            ResultLayout::Legacy02 => return Err(legacy_unsupported(version)),
            ResultLayout::V04 => serde_json::to_value(to04(self, version)),
            ResultLayout::V1 => serde_json::to_value(to1(self, version)),
        };
        value.map_err(|e| CniError::internal(format!("cannot serialize CNI result: {e}")))
    }

    /// The result as compact JSON in `version` (Go's `json.Marshal`).
    pub fn to_json(&self, version: SpecVersion) -> Result<String, CniError> {
        self.print(version, false)
    }

    /// The result as a plugin prints it on stdout in `version` (Go's `Result.Print`: four-space
    /// indentation, no final newline).
    pub fn to_json_pretty(&self, version: SpecVersion) -> Result<String, CniError> {
        self.print(version, true)
    }

    fn print(&self, version: SpecVersion, pretty: bool) -> Result<String, CniError> {
        let text = match version.layout() {
            ResultLayout::Legacy02 => return Err(legacy_unsupported(version)),
            ResultLayout::V04 => to_go_json(&to04(self, version), pretty),
            ResultLayout::V1 => to_go_json(&to1(self, version), pretty),
        };
        text.map_err(|e| CniError::internal(format!("cannot serialize CNI result: {e}")))
    }
}

impl VersionedResult {
    /// Pretty JSON in the result's own version.
    pub fn to_json_pretty(&self) -> Result<String, CniError> {
        self.result.to_json_pretty(self.version)
    }

    /// The same result, to be printed in `version` (what Go's `GetAsVersion` can carry: see
    /// [`Result100::as_held_by`]).
    #[must_use]
    pub fn convert(&self, version: SpecVersion) -> VersionedResult {
        VersionedResult {
            version,
            result: self.result.as_held_by(version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_convert_go_escaping() {
        let s = to_go_json("a<b>&c\u{2028}\u{2029}\n\"é\u{7f}", false).unwrap();
        assert_eq!(
            s,
            "\"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\n\\\"é\u{7f}\""
        );
    }

    #[test]
    fn cni_convert_missing_version_needs_default() {
        let e = Result100::parse(br#"{"ips":[]}"#, None).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (6, "could not parse CNI result: missing cniVersion")
        );
        let r = Result100::parse(br#"{"ips":[]}"#, Some(SpecVersion::V0_4_0)).unwrap();
        assert_eq!(r.version, SpecVersion::V0_4_0);
        let r = Result100::parse(
            br#"{"cniVersion":"","ips":null}"#,
            Some(SpecVersion::V1_0_0),
        )
        .unwrap();
        assert_eq!(r.version, SpecVersion::V1_0_0);
    }

    #[test]
    fn cni_convert_errors() {
        let e = Result100::parse(br#"{"cniVersion":"0.2.0","ip4":{}}"#, None).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.msg.contains("0.2.0"), "{}", e.msg);
        let e = Result100::parse(br#"{"cniVersion":"9.9.9"}"#, None).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (1, "unsupported CNI result version \"9.9.9\"")
        );
        let e = Result100::parse(br#"{"cniVersion":1}"#, None).unwrap_err();
        assert_eq!(e.code, 6);
        let e = Result100::parse(
            b"{\"cniVersion\":\"1.0.0\",\n\"ips\":[{\"address\":\"10.0.0.1\"}]}",
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, 6);
        assert!(
            e.msg.contains("invalid CIDR address: 10.0.0.1") && e.msg.contains("line 2"),
            "{}",
            e.msg
        );
        let e = Result100::parse(b"{", None).unwrap_err();
        assert_eq!(e.code, 6);
        let e = Result100::default()
            .to_json(SpecVersion::V0_1_0)
            .unwrap_err();
        assert_eq!(e.code, 1);
        let e = Result100::from_value(Value::Bool(true), None).unwrap_err();
        assert_eq!(e.code, 6);
    }

    #[test]
    fn cni_convert_lenient_inputs() {
        // Unknown keys ignored, null lists, empty gateway, wrong ips[].version not checked,
        // v4-mapped gateway read as IPv4.
        let text = br#"{"cniVersion":"0.3.1","extra":1,"interfaces":null,
            "ips":[{"version":"6","address":"10.1.2.3/24","gateway":""},
                   {"address":"10.1.2.4/24","gateway":"::ffff:10.1.2.1"}],
            "routes":[{"dst":"0.0.0.0/0","mtu":null,"table":null}],"dns":null}"#;
        let r = Result100::parse(text, None).unwrap();
        assert_eq!(r.result.ips[0].gateway, None);
        assert_eq!(r.result.ips[1].gateway, Some("10.1.2.1".parse().unwrap()));
        let printed = r.result.to_json(SpecVersion::V0_3_1).unwrap();
        assert_eq!(
            printed,
            r#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.2.3/24"},{"version":"4","address":"10.1.2.4/24","gateway":"10.1.2.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#
        );
    }

    #[test]
    fn cni_convert_to_value_keeps_go_order() {
        let mut r = Result100::default();
        r.ips
            .push(IpConfig::new("fd00::2/64".parse().unwrap()).with_interface(0));
        let v = r.to_value(SpecVersion::V0_4_0).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["cniVersion", "ips", "dns"]);
        let v = r.to_value(SpecVersion::V1_1_0).unwrap();
        let ip_keys: Vec<_> = v["ips"][0].as_object().unwrap().keys().cloned().collect();
        assert_eq!(ip_keys, ["address", "interface"]);
        assert_eq!(Result100::from_value(v, None).unwrap().result, r);
    }
}
