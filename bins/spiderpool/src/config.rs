//! The plugin's own keys in the network configuration's `ipam` object.
//!
//! Read key by key (not through a derive) so that a value of the wrong type names its key, and
//! so that the few places where we are more lenient than upstream are explicit:
//! `log_file_*` numbers may be numeric strings (upstream's docs show `"100"`, which upstream's
//! own parser refuses), the pool lists may be a single string, and `cleangateway` is accepted
//! as a spelling of `clean_gateway`. `null` counts as absent. Unknown keys are ignored, as in
//! Go.

use std::path::PathBuf;

use serde_json::{Map, Value};
use spiderpool_core::agentapi::DEFAULT_SOCKET;
use spiderpool_core::cni::{CniError, NetConf};
use spiderpool_plugin_support::log::{LevelFilter, parse_level};

/// Upstream's default log file.
pub const DEFAULT_LOG_FILE: &str = "/var/log/spidernet/spiderpool.log";

/// The parsed `ipam` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConf {
    /// `log_level` (default `info`; upstream's code defaults to debug, its docs to info).
    pub log_level: LevelFilter,
    /// `log_file_path`; `None` (the values `stderr` or `-`) logs to stderr.
    pub log_file_path: Option<PathBuf>,
    /// `log_file_max_size` in MiB (0: 100).
    pub log_file_max_size: u64,
    /// `log_file_max_age` in days (0: unlimited).
    pub log_file_max_age: u64,
    /// `log_file_max_count` (0: unlimited).
    pub log_file_max_count: u64,
    /// `default_ipv4_ippool`.
    pub default_ipv4_ippool: Vec<String>,
    /// `default_ipv6_ippool`.
    pub default_ipv6_ippool: Vec<String>,
    /// `clean_gateway` (or `cleangateway`).
    pub clean_gateway: bool,
    /// `match_master_subnet`.
    pub match_master_subnet: bool,
    /// `ipam_unix_socket_path`.
    pub socket: PathBuf,
}

impl IpamConf {
    /// Reads the `ipam` object of `conf` (an absent one gives the defaults). Wrong types are
    /// code 7 naming the key.
    pub fn from_conf(conf: &NetConf) -> Result<Self, CniError> {
        let empty = Map::new();
        let map = conf.ipam.as_ref().unwrap_or(&empty);
        let log_file_path = match string(map, "log_file_path")?.as_deref() {
            None | Some("") => Some(PathBuf::from(DEFAULT_LOG_FILE)),
            Some("stderr" | "-") => None,
            Some(p) => Some(PathBuf::from(p)),
        };
        let log_level = parse_level(
            string(map, "log_level")?.as_deref().unwrap_or(""),
            LevelFilter::Info,
        )
        .map_err(|e| bad_key("log_level", &e))?;
        // `clean_gateway` wins when both spellings are present.
        let clean_gateway = match boolean(map, "clean_gateway")? {
            Some(v) => v,
            None => boolean(map, "cleangateway")?.unwrap_or(false),
        };
        Ok(Self {
            log_level,
            log_file_path,
            log_file_max_size: count(map, "log_file_max_size")?,
            log_file_max_age: count(map, "log_file_max_age")?,
            log_file_max_count: count(map, "log_file_max_count")?,
            default_ipv4_ippool: string_list(map, "default_ipv4_ippool")?,
            default_ipv6_ippool: string_list(map, "default_ipv6_ippool")?,
            clean_gateway,
            match_master_subnet: boolean(map, "match_master_subnet")?.unwrap_or(false),
            socket: match string(map, "ipam_unix_socket_path")?.as_deref() {
                None | Some("") => PathBuf::from(DEFAULT_SOCKET),
                Some(p) => PathBuf::from(p),
            },
        })
    }
}

fn bad_key(key: &str, why: &str) -> CniError {
    CniError::invalid_config(format!("invalid ipam configuration key {key:?}: {why}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, CniError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(bad_key(key, &format!("expected a string, got {}", kind(v)))),
    }
}

fn boolean(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, CniError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad_key(
            key,
            &format!("expected a boolean, got {}", kind(v)),
        )),
    }
}

/// A non-negative integer, or a string holding one.
fn count(map: &Map<String, Value>, key: &str) -> Result<u64, CniError> {
    let want = "expected a non-negative integer or a numeric string";
    match map.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| bad_key(key, &format!("{want}, got {n}"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(0),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| bad_key(key, &format!("{want}, got {s:?}"))),
        Some(v) => Err(bad_key(key, &format!("{want}, got {}", kind(v)))),
    }
}

/// A list of strings, or one string.
fn string_list(map: &Map<String, Value>, key: &str) -> Result<Vec<String>, CniError> {
    let want = "expected an array of strings";
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(bad_key(key, &format!("{want}, got {} in it", kind(other)))),
            })
            .collect(),
        Some(v) => Err(bad_key(key, &format!("{want}, got {}", kind(v)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(ipam: &str) -> Result<IpamConf, CniError> {
        let stdin =
            format!(r#"{{"cniVersion":"0.3.1","name":"n","type":"macvlan","ipam":{ipam}}}"#);
        IpamConf::from_conf(&NetConf::parse(stdin.as_bytes()).unwrap())
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"type":"spiderpool"}"#).unwrap();
        assert_eq!(
            c.socket,
            PathBuf::from("/var/run/spidernet/spiderpool.sock")
        );
        assert_eq!(c.log_file_path, Some(PathBuf::from(DEFAULT_LOG_FILE)));
        assert_eq!(c.log_level, LevelFilter::Info);
        assert!(!c.clean_gateway && !c.match_master_subnet);
        assert!(c.default_ipv4_ippool.is_empty());
    }

    #[test]
    fn every_key() {
        let c = parse(
            r#"{"type":"spiderpool","log_level":"DEBUG","log_file_path":"stderr",
                "log_file_max_size":"50","log_file_max_age":7,"log_file_max_count":" 3 ",
                "default_ipv4_ippool":["a","b"],"default_ipv6_ippool":"v6",
                "cleangateway":true,"match_master_subnet":true,
                "ipam_unix_socket_path":"/tmp/a.sock","unknown":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(c.log_level, LevelFilter::Debug);
        assert_eq!(c.log_file_path, None);
        assert_eq!(
            (
                c.log_file_max_size,
                c.log_file_max_age,
                c.log_file_max_count
            ),
            (50, 7, 3)
        );
        assert_eq!(c.default_ipv4_ippool, ["a", "b"]);
        assert_eq!(c.default_ipv6_ippool, ["v6"]);
        assert!(c.clean_gateway && c.match_master_subnet);
        assert_eq!(c.socket, PathBuf::from("/tmp/a.sock"));
        let c = parse(r#"{"clean_gateway":false,"cleangateway":true}"#).unwrap();
        assert!(!c.clean_gateway);
    }

    #[test]
    fn wrong_types_name_the_key() {
        for (ipam, key) in [
            (r#"{"clean_gateway":"yes"}"#, "clean_gateway"),
            (r#"{"log_file_max_size":"big"}"#, "log_file_max_size"),
            (r#"{"log_file_max_age":-1}"#, "log_file_max_age"),
            (r#"{"default_ipv4_ippool":[1]}"#, "default_ipv4_ippool"),
            (r#"{"ipam_unix_socket_path":5}"#, "ipam_unix_socket_path"),
            (r#"{"log_level":"loud"}"#, "log_level"),
        ] {
            let e = parse(ipam).unwrap_err();
            assert_eq!(e.code, 7, "{ipam}");
            assert!(e.msg.contains(&format!("{key:?}")), "{}", e.msg);
        }
    }
}
