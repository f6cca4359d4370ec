//! The network configuration a plugin reads on stdin.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::command::Command;
use super::convert::to_go_json;
use super::env::is_valid_cni_name;
use super::error::CniError;
use super::result::{Dns, Result100, VersionedResult};
use super::version::{SpecVersion, negotiate};

/// The key of the GC attachment list.
pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";

/// The keys [`NetConf`] knows; everything else is plugin-specific.
const KNOWN_KEYS: [&str; 10] = [
    "cniVersion",
    "name",
    "type",
    "capabilities",
    "ipam",
    "dns",
    "args",
    "runtimeConfig",
    "prevResult",
    VALID_ATTACHMENTS_KEY,
];

/// One attachment the runtime still wants kept, in a GC request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcAttachment {
    /// The container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name.
    #[serde(rename = "ifname")]
    pub ifname: String,
}

/// The common part of a plugin's network configuration, plus every other key kept in
/// [`NetConf::plugin`] (in input order) so each plugin reads its own keys from the same stdin.
///
/// `cniVersion` is kept as text: [`NetConf::negotiate`] decides whether the plugin can answer
/// in it (code 1), so that an unknown version is not a decoding error.
///
/// ```
/// use spiderpool_core::cni::{Command, NetConf, SpecVersion};
///
/// let stdin = br#"{"cniVersion":"0.3.1","name":"macvlan-ens192","type":"macvlan","master":"ens192",
///   "ipam":{"type":"spiderpool","default_ipv4_ippool":["pool-1000"]}}"#;
/// let conf = NetConf::parse(stdin)?;
/// assert_eq!(conf.negotiate(Command::Add, &SpecVersion::SUPPORTED)?, SpecVersion::V0_3_1);
/// assert_eq!(conf.ipam_type(), Some("spiderpool"));
/// assert_eq!(conf.plugin["master"], "ens192");
///
/// #[derive(serde::Deserialize)]
/// struct Ipam { default_ipv4_ippool: Vec<String> }
/// let ipam: Ipam = conf.ipam_config()?;
/// assert_eq!(ipam.default_ipv4_ippool, ["pool-1000"]);
/// # Ok::<(), spiderpool_core::cni::CniError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetConf {
    /// `cniVersion`, as written.
    pub cni_version: String,
    /// `name`: the network name.
    pub name: String,
    /// `type`: the plugin binary name.
    pub plugin_type: String,
    /// `capabilities` (from a conflist entry).
    pub capabilities: Option<BTreeMap<String, bool>>,
    /// `ipam`: the IPAM plugin's configuration, raw.
    pub ipam: Option<Map<String, Value>>,
    /// `dns`.
    pub dns: Option<Dns>,
    /// `args`: conventionally `{"cni": {...}}` from the runtime, raw.
    pub args: Option<Map<String, Value>>,
    /// `runtimeConfig`: capability arguments from the runtime, raw.
    pub runtime_config: Option<Map<String, Value>>,
    /// `prevResult`, raw; parse it with [`NetConf::prev_result`].
    pub prev_result: Option<Map<String, Value>>,
    /// `cni.dev/valid-attachments` (GC only).
    pub valid_attachments: Option<Vec<GcAttachment>>,
    /// Every other key, in input order.
    pub plugin: Map<String, Value>,
}

fn field<T: DeserializeOwned>(map: &Map<String, Value>, key: &str) -> Result<Option<T>, CniError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v).map(Some).map_err(|e| {
            CniError::decode(format!("error decoding network config: field {key:?}: {e}"))
        }),
    }
}

impl NetConf {
    /// Decodes and validates stdin.
    ///
    /// * not JSON, not an object, or a known key of the wrong type: code 6
    ///   ([`super::ERR_DECODE`]) `error decoding network config: ...` with line and column or
    ///   the key;
    /// * missing `name` (`missing network name`) or one outside `[a-zA-Z0-9][a-zA-Z0-9_.\-]*`
    ///   (`invalid characters found in network name`), missing `cniVersion`
    ///   (`missing cniVersion`) or missing `type` (`missing plugin type`): code 7
    ///   ([`super::ERR_INVALID_CONFIG`]).
    ///
    /// Go's skel treats a missing `cniVersion` as 0.1.0 and then refuses it as incompatible
    /// (code 1); we report the missing key instead.
    pub fn parse(stdin: &[u8]) -> Result<Self, CniError> {
        let conf = Self::decode(stdin)?;
        conf.validate()?;
        Ok(conf)
    }

    /// Decodes stdin without [`NetConf::validate`].
    pub fn decode(stdin: &[u8]) -> Result<Self, CniError> {
        let value: Value = serde_json::from_slice(stdin)
            .map_err(|e| CniError::decode(format!("error decoding network config: {e}")))?;
        Self::from_value(value)
    }

    /// Decodes a JSON value without [`NetConf::validate`].
    pub fn from_value(value: Value) -> Result<Self, CniError> {
        let Value::Object(mut map) = value else {
            return Err(CniError::decode(
                "error decoding network config: expected a JSON object",
            ));
        };
        let mut conf = NetConf {
            cni_version: field(&map, "cniVersion")?.unwrap_or_default(),
            name: field(&map, "name")?.unwrap_or_default(),
            plugin_type: field(&map, "type")?.unwrap_or_default(),
            capabilities: field(&map, "capabilities")?,
            ipam: field(&map, "ipam")?,
            dns: field(&map, "dns")?,
            args: field(&map, "args")?,
            runtime_config: field(&map, "runtimeConfig")?,
            prev_result: field(&map, "prevResult")?,
            valid_attachments: field(&map, VALID_ATTACHMENTS_KEY)?,
            plugin: Map::new(),
        };
        // `retain` keeps the input order of the remaining keys.
        map.retain(|k, _| !KNOWN_KEYS.contains(&k.as_str()));
        conf.plugin = map;
        Ok(conf)
    }

    /// Checks the keys every plugin needs (see [`NetConf::parse`]); all code 7.
    pub fn validate(&self) -> Result<(), CniError> {
        if self.name.is_empty() {
            return Err(CniError::invalid_config("missing network name"));
        }
        if !is_valid_cni_name(&self.name) {
            return Err(
                CniError::invalid_config("invalid characters found in network name")
                    .with_details(&self.name),
            );
        }
        if self.cni_version.is_empty() {
            return Err(CniError::invalid_config("missing cniVersion"));
        }
        if self.plugin_type.is_empty() {
            return Err(CniError::invalid_config("missing plugin type"));
        }
        Ok(())
    }

    /// The configuration's version, if it is a known one (code 1 otherwise).
    pub fn spec_version(&self) -> Result<SpecVersion, CniError> {
        SpecVersion::parse(&self.cni_version)
    }

    /// [`negotiate`] on this configuration's `cniVersion`: the version to answer in.
    pub fn negotiate(
        &self,
        cmd: Command,
        supported: &[SpecVersion],
    ) -> Result<SpecVersion, CniError> {
        negotiate(&self.cni_version, cmd, supported)
    }

    /// `ipam.type`, if set.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam.as_ref()?.get("type")?.as_str()
    }

    /// Deserializes the plugin-specific keys ([`NetConf::plugin`]) into the plugin's own type.
    /// Code 6 on mismatch.
    pub fn plugin_config<T: DeserializeOwned>(&self) -> Result<T, CniError> {
        serde_json::from_value(Value::Object(self.plugin.clone()))
            .map_err(|e| CniError::decode(format!("error decoding plugin configuration: {e}")))
    }

    /// Deserializes the `ipam` object (empty when absent) into the IPAM plugin's own type.
    /// Code 6 on mismatch.
    pub fn ipam_config<T: DeserializeOwned>(&self) -> Result<T, CniError> {
        let ipam = self.ipam.clone().unwrap_or_default();
        serde_json::from_value(Value::Object(ipam))
            .map_err(|e| CniError::decode(format!("error decoding ipam configuration: {e}")))
    }

    /// Parses `prevResult`, if any, in any supported version. A `prevResult` without
    /// `cniVersion` is read in the configuration's version (Go's `ParsePrevResult`).
    ///
    /// Go only accepts a `prevResult` of the configuration's own layout family; we accept any
    /// supported version, and the caller prints it in the version it answers in. Errors are
    /// those of [`Result100::from_value`] with `prevResult: ` in front of the message.
    pub fn prev_result(&self) -> Result<Option<VersionedResult>, CniError> {
        let Some(raw) = &self.prev_result else {
            return Ok(None);
        };
        let default = SpecVersion::parse(&self.cni_version).ok();
        Result100::from_value(Value::Object(raw.clone()), default)
            .map(Some)
            .map_err(|mut e| {
                e.msg = format!("prevResult: {}", e.msg);
                e
            })
    }

    /// The configuration as a JSON object: the known keys first (`cniVersion`, `name`, `type`,
    /// `capabilities`, `ipam`, `dns`, `args`, `runtimeConfig`, `prevResult`,
    /// `cni.dev/valid-attachments`; empty ones omitted), then the plugin keys in their order.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                map.insert(key.to_owned(), v);
            }
        };
        let text = |s: &str| (!s.is_empty()).then(|| Value::String(s.to_owned()));
        put("cniVersion", text(&self.cni_version));
        put("name", text(&self.name));
        put("type", text(&self.plugin_type));
        put(
            "capabilities",
            self.capabilities
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
        );
        put("ipam", self.ipam.clone().map(Value::Object));
        put(
            "dns",
            self.dns
                .as_ref()
                .filter(|d| !d.is_empty())
                .and_then(|d| serde_json::to_value(d).ok()),
        );
        put("args", self.args.clone().map(Value::Object));
        put(
            "runtimeConfig",
            self.runtime_config.clone().map(Value::Object),
        );
        put("prevResult", self.prev_result.clone().map(Value::Object));
        put(
            VALID_ATTACHMENTS_KEY,
            self.valid_attachments
                .as_ref()
                .and_then(|a| serde_json::to_value(a).ok()),
        );
        for (k, v) in &self.plugin {
            if !KNOWN_KEYS.contains(&k.as_str()) {
                map.insert(k.clone(), v.clone());
            }
        }
        Value::Object(map)
    }

    /// [`NetConf::to_value`] as compact JSON (e.g. stdin for a delegated plugin).
    pub fn to_json(&self) -> String {
        to_go_json(&self.to_value(), false).unwrap_or_default()
    }
}

impl Serialize for NetConf {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for NetConf {
    /// Decodes like [`NetConf::decode`] (no validation).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        NetConf::from_value(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COORDINATOR_STDIN: &str = r#"{"cniVersion": "0.3.1", "name": "macvlan-ens192", "tunePodRoutes": true, "mode": "auto", "type": "coordinator", "prevResult": {"cniVersion": "0.3.1", "interfaces": [{"name": "net1", "mac": "6a:1b:e7:ac:f8:a0", "sandbox": "/var/run/netns/sppod1"}], "ips": [{"version": "4", "interface": 0, "address": "10.6.212.145/16", "gateway": "10.6.0.1"}], "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}}"#;

    #[test]
    fn cni_config_coordinator_stdin() {
        let conf = NetConf::parse(COORDINATOR_STDIN.as_bytes()).unwrap();
        assert_eq!(conf.plugin_type, "coordinator");
        assert_eq!(
            conf.plugin.keys().collect::<Vec<_>>(),
            ["tunePodRoutes", "mode"]
        );
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Coord {
            tune_pod_routes: bool,
            mode: String,
        }
        let c: Coord = conf.plugin_config().unwrap();
        assert!(c.tune_pod_routes);
        assert_eq!(c.mode, "auto");
        let prev = conf.prev_result().unwrap().unwrap();
        assert_eq!(prev.version, SpecVersion::V0_3_1);
        assert_eq!(prev.result.ips[0].interface, Some(0));
        assert_eq!(prev.result.interfaces[0].name, "net1");
    }

    #[test]
    fn cni_config_decode_errors_are_code_6() {
        let e = NetConf::parse(b"{\"name\": \"x\",\n \"type\": }").unwrap_err();
        assert_eq!(e.code, 6);
        assert!(e.msg.starts_with("error decoding network config: "));
        assert!(e.msg.contains("line 2"), "{}", e.msg);
        let e = NetConf::parse(b"[1]").unwrap_err();
        assert_eq!(
            e.msg,
            "error decoding network config: expected a JSON object"
        );
        let e = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":"x"}"#)
            .unwrap_err();
        assert_eq!(e.code, 6);
        assert!(e.msg.contains("field \"ipam\""), "{}", e.msg);
        let e = NetConf::parse(br#"{"cniVersion":1,"name":"n","type":"t"}"#).unwrap_err();
        assert!(e.msg.contains("field \"cniVersion\""), "{}", e.msg);
        let e = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"t","prevResult":[]}"#)
            .unwrap_err();
        assert_eq!(e.code, 6);
    }

    #[test]
    fn cni_config_invalid_config_is_code_7() {
        let cases: [(&[u8], &str); 5] = [
            (
                br#"{"cniVersion":"1.0.0","type":"t"}"#,
                "missing network name",
            ),
            (
                br#"{"cniVersion":"1.0.0","name":"a b","type":"t"}"#,
                "invalid characters found in network name",
            ),
            (br#"{"name":"n","type":"t"}"#, "missing cniVersion"),
            (
                br#"{"cniVersion":"","name":"n","type":"t"}"#,
                "missing cniVersion",
            ),
            (
                br#"{"cniVersion":"1.0.0","name":"n"}"#,
                "missing plugin type",
            ),
        ];
        for (stdin, msg) in cases {
            let e = NetConf::parse(stdin).unwrap_err();
            assert_eq!((e.code, e.msg.as_str()), (7, msg));
        }
    }

    #[test]
    fn cni_config_negotiation() {
        let conf = NetConf::parse(br#"{"cniVersion":"0.2.0","name":"n","type":"t"}"#).unwrap();
        let e = conf
            .negotiate(Command::Add, &SpecVersion::SUPPORTED)
            .unwrap_err();
        assert_eq!(e.code, 1);
        assert_eq!(conf.spec_version().unwrap(), SpecVersion::V0_2_0);
        let conf = NetConf::parse(br#"{"cniVersion":"7.0.0","name":"n","type":"t"}"#).unwrap();
        assert_eq!(conf.spec_version().unwrap_err().code, 1);
    }

    #[test]
    fn cni_config_prev_result_version_injection() {
        // No cniVersion in prevResult: read in the config's version (0.4.0 layout here).
        let conf = NetConf::parse(
            br#"{"cniVersion":"0.4.0","name":"n","type":"t","prevResult":{"ips":[{"version":"4","address":"10.0.0.2/24"}]}}"#,
        )
        .unwrap();
        let prev = conf.prev_result().unwrap().unwrap();
        assert_eq!(prev.version, SpecVersion::V0_4_0);
        // A prevResult in another supported version is accepted.
        let conf = NetConf::parse(
            br#"{"cniVersion":"0.3.1","name":"n","type":"t","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}}"#,
        )
        .unwrap();
        let prev = conf.prev_result().unwrap().unwrap();
        assert_eq!(prev.version, SpecVersion::V1_0_0);
        let text = prev.result.to_json(SpecVersion::V0_3_1).unwrap();
        assert_eq!(
            text,
            r#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.2/24"}],"dns":{}}"#
        );
        // Bad prevResult: named.
        let conf = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"t","prevResult":{"ips":[{"address":"x"}]}}"#,
        )
        .unwrap();
        let e = conf.prev_result().unwrap_err();
        assert_eq!(e.code, 6);
        assert!(e.msg.starts_with("prevResult: "), "{}", e.msg);
        assert!(
            NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#)
                .unwrap()
                .prev_result()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn cni_config_round_trip_and_gc() {
        let stdin = br#"{"cniVersion":"1.1.0","name":"n","type":"spiderpool","ipam":{"type":"spiderpool"},"dns":{"nameservers":["10.0.0.10"]},"args":{"cni":{"ips":["10.0.0.5"]}},"runtimeConfig":{"mac":"aa:bb:cc:dd:ee:ff"},"capabilities":{"mac":true},"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],"zeta":1,"alpha":[2]}"#;
        let conf = NetConf::parse(stdin).unwrap();
        assert_eq!(
            conf.valid_attachments.as_deref().unwrap(),
            [GcAttachment {
                container_id: "c1".into(),
                ifname: "eth0".into()
            }]
        );
        assert_eq!(conf.dns.as_ref().unwrap().nameservers, ["10.0.0.10"]);
        assert_eq!(conf.plugin.keys().collect::<Vec<_>>(), ["zeta", "alpha"]);
        let again = NetConf::parse(conf.to_json().as_bytes()).unwrap();
        assert_eq!(again, conf);
        let via_serde: NetConf = serde_json::from_slice(stdin).unwrap();
        assert_eq!(via_serde, conf);
        assert_eq!(serde_json::to_value(&conf).unwrap(), conf.to_value());
        // ipam_config on an absent ipam sees an empty object.
        #[derive(Deserialize, Default)]
        struct Empty {
            #[serde(default)]
            clean_gateway: bool,
        }
        let bare = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#).unwrap();
        assert!(!bare.ipam_config::<Empty>().unwrap().clean_gateway);
        assert_eq!(bare.ipam_type(), None);
    }
}
