//! The plugin's keys in the network configuration: upstream's NAD keys
//! ([`NadCoordinatorConf`]), `logOptions`, our socket override, and the local-mode pod
//! annotation.
//!
//! Every error here is code 7 and names the key, so a bad NAD is found before anything is
//! asked of the agent or changed in a netns.

use std::path::PathBuf;

use serde_json::{Map, Value};
use spiderpool_core::agentapi::DEFAULT_SOCKET;
use spiderpool_core::cni::{CniError, NetConf};
use spiderpool_core::coordinator::{Mode, NadCoordinatorConf};
use spiderpool_core::objects::keys::ANNO_DEFAULT_ROUTE_NIC;
use spiderpool_plugin_support::log::{LevelFilter, parse_level};

/// Upstream's log file.
pub const DEFAULT_LOG_FILE: &str = "/var/log/spidernet/coordinator.log";

/// The key that points the plugin at another agent socket (local mode, tests). Same name as
/// the `spiderpool` IPAM plugin's key, since it is the same agent and the same socket.
pub const SOCKET_KEY: &str = "ipam_unix_socket_path";

/// Everything the plugin reads from its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    /// Upstream's coordinator keys.
    pub nad: NadCoordinatorConf,
    /// The agent's socket.
    pub socket: PathBuf,
    /// `logOptions.logLevel` (default `debug`, as upstream).
    pub log_level: LevelFilter,
    /// `logOptions.logFile`; `None` (`stderr` or `-`) logs to stderr.
    pub log_file: Option<PathBuf>,
    /// `logOptions.logMaxSize` in MiB (0: 100).
    pub log_max_size: u64,
    /// `logOptions.logMaxAge` in days (0: unlimited).
    pub log_max_age: u64,
    /// `logOptions.logMaxCount` (0: unlimited).
    pub log_max_count: u64,
    /// `ipam.spidernet.io/default-route-nic` from `runtimeConfig.podAnnotations` or
    /// `args.cni.annotations` (local mode: no apiserver for the agent to read it from).
    pub default_route_nic_annotation: Option<String>,
}

impl PluginConf {
    /// Reads the configuration (code 7 naming the key on a bad value).
    pub fn from_conf(conf: &NetConf) -> Result<Self, CniError> {
        let nad = nad_keys(&conf.plugin)?;
        // Refuse an unknown mode here, before the agent is asked anything.
        if let Some(mode) = nad.mode.as_deref().filter(|m| !m.is_empty()) {
            Mode::parse(mode).map_err(|e| CniError::invalid_config(e.to_string()))?;
        }
        let socket = match string(&conf.plugin, SOCKET_KEY, SOCKET_KEY)?.as_deref() {
            None | Some("") => PathBuf::from(DEFAULT_SOCKET),
            Some(p) => PathBuf::from(p),
        };
        let empty = Map::new();
        let log = match conf.plugin.get("logOptions") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(v) => {
                return Err(bad_key(
                    "logOptions",
                    &format!("expected an object, got {}", kind(v)),
                ));
            }
        };
        let log_level = parse_level(
            string(log, "logLevel", "logOptions.logLevel")?
                .as_deref()
                .unwrap_or(""),
            LevelFilter::Debug,
        )
        .map_err(|e| bad_key("logOptions.logLevel", &e))?;
        let log_file = match string(log, "logFile", "logOptions.logFile")?.as_deref() {
            None | Some("") => Some(PathBuf::from(DEFAULT_LOG_FILE)),
            Some("stderr" | "-") => None,
            Some(p) => Some(PathBuf::from(p)),
        };
        Ok(Self {
            nad,
            socket,
            log_level,
            log_file,
            log_max_size: count(log, "logMaxSize")?,
            log_max_age: count(log, "logMaxAge")?,
            log_max_count: count(log, "logMaxCount")?,
            default_route_nic_annotation: local_annotation(conf)?,
        })
    }

    /// True when the NAD itself turns the coordinator off (the agent is then not asked).
    pub fn nad_disables(&self) -> bool {
        matches!(
            self.nad.mode.as_deref().map(Mode::parse),
            Some(Ok(Mode::Disable))
        )
    }
}

/// Decodes the NAD keys; on a type error, finds the key at fault so the message names it.
fn nad_keys(plugin: &Map<String, Value>) -> Result<NadCoordinatorConf, CniError> {
    match serde_json::from_value::<NadCoordinatorConf>(Value::Object(plugin.clone())) {
        Ok(nad) => Ok(nad),
        Err(whole) => {
            for (key, value) in plugin {
                let one = Map::from_iter([(key.clone(), value.clone())]);
                if let Err(e) = serde_json::from_value::<NadCoordinatorConf>(Value::Object(one)) {
                    return Err(bad_key(key, &e.to_string()));
                }
            }
            Err(CniError::invalid_config(format!(
                "invalid coordinator configuration: {whole}"
            )))
        }
    }
}

/// The default-route NIC annotation given in the network configuration; `args.cni` wins over
/// `runtimeConfig`, as for the `spiderpool` IPAM plugin's pod annotations.
fn local_annotation(conf: &NetConf) -> Result<Option<String>, CniError> {
    let from_runtime = match conf
        .runtime_config
        .as_ref()
        .map(|rc| rc.get("podAnnotations"))
    {
        None | Some(None | Some(Value::Null)) => None,
        Some(Some(Value::Object(m))) => annotation(m, "runtimeConfig.podAnnotations")?,
        Some(Some(v)) => {
            return Err(bad_key(
                "runtimeConfig.podAnnotations",
                &format!("expected an object of strings, got {}", kind(v)),
            ));
        }
    };
    let from_args = match conf.args.as_ref().and_then(|a| a.get("cni")) {
        None | Some(Value::Null) => None,
        Some(Value::Object(cni)) => match cni.get("annotations") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => annotation(m, "args.cni.annotations")?,
            Some(v) => {
                return Err(bad_key(
                    "args.cni.annotations",
                    &format!("expected an object of strings, got {}", kind(v)),
                ));
            }
        },
        Some(v) => {
            return Err(bad_key(
                "args.cni",
                &format!("expected an object, got {}", kind(v)),
            ));
        }
    };
    Ok(from_args.or(from_runtime).filter(|s| !s.is_empty()))
}

fn annotation(map: &Map<String, Value>, at: &str) -> Result<Option<String>, CniError> {
    match map.get(ANNO_DEFAULT_ROUTE_NIC) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(bad_key(
            &format!("{at}.{ANNO_DEFAULT_ROUTE_NIC}"),
            &format!("expected a string, got {}", kind(v)),
        )),
    }
}

fn bad_key(key: &str, why: &str) -> CniError {
    CniError::invalid_config(format!(
        "invalid coordinator configuration key {key:?}: {why}"
    ))
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

fn string(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, CniError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(bad_key(
            path,
            &format!("expected a string, got {}", kind(v)),
        )),
    }
}

/// A non-negative integer, or a string holding one (upstream's docs write `"100"`).
fn count(map: &Map<String, Value>, key: &str) -> Result<u64, CniError> {
    let path = format!("logOptions.{key}");
    let want = "expected a non-negative integer or a numeric string";
    match map.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| bad_key(&path, &format!("{want}, got {n}"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(0),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| bad_key(&path, &format!("{want}, got {s:?}"))),
        Some(v) => Err(bad_key(&path, &format!("{want}, got {}", kind(v)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<PluginConf, CniError> {
        let stdin = format!(r#"{{"cniVersion":"0.3.1","name":"n","type":"coordinator"{extra}}}"#);
        PluginConf::from_conf(&NetConf::parse(stdin.as_bytes()).unwrap())
    }

    #[test]
    fn defaults_are_upstreams() {
        let c = parse("").unwrap();
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.log_level, LevelFilter::Debug);
        assert_eq!(c.log_file, Some(PathBuf::from(DEFAULT_LOG_FILE)));
        assert_eq!(c.nad, NadCoordinatorConf::default());
        assert_eq!(c.default_route_nic_annotation, None);
        assert!(!c.nad_disables());
    }

    #[test]
    fn seed_nad_and_overrides() {
        let c = parse(
            r#","tunePodRoutes":true,"mode":"auto","podDefaultRouteNic":"net1",
               "ipam_unix_socket_path":"/tmp/a.sock",
               "logOptions":{"logLevel":"info","logFile":"stderr","logMaxSize":"10","logMaxCount":2}"#,
        )
        .unwrap();
        assert_eq!(c.nad.mode.as_deref(), Some("auto"));
        assert_eq!(c.nad.tune_pod_routes, Some(true));
        assert_eq!(c.nad.pod_default_route_nic.as_deref(), Some("net1"));
        assert_eq!(c.socket, PathBuf::from("/tmp/a.sock"));
        assert_eq!(c.log_level, LevelFilter::Info);
        assert_eq!(c.log_file, None);
        assert_eq!((c.log_max_size, c.log_max_age, c.log_max_count), (10, 0, 2));
        assert!(parse(r#","mode":"disabled""#).unwrap().nad_disables());
        assert!(parse(r#","mode":"disable""#).unwrap().nad_disables());
    }

    #[test]
    fn bad_values_are_code_7_naming_the_key() {
        for (extra, key) in [
            (r#","hostRuleTable":"500""#, "hostRuleTable"),
            (r#","tunePodRoutes":"yes""#, "tunePodRoutes"),
            (r#","ipam_unix_socket_path":1"#, SOCKET_KEY),
            (
                r#","logOptions":{"logLevel":"loud"}"#,
                "logOptions.logLevel",
            ),
            (r#","logOptions":{"logMaxAge":-1}"#, "logOptions.logMaxAge"),
            (r#","logOptions":3"#, "logOptions"),
            (
                r#","args":{"cni":{"annotations":{"ipam.spidernet.io/default-route-nic":1}}}"#,
                "args.cni.annotations.ipam.spidernet.io/default-route-nic",
            ),
        ] {
            let e = parse(extra).unwrap_err();
            assert_eq!(e.code, 7, "{extra}");
            assert!(e.msg.contains(&format!("{key:?}")), "{}", e.msg);
        }
        let e = parse(r#","mode":"sideways""#).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("sideways"), "{}", e.msg);
    }

    #[test]
    fn local_annotation_args_win_over_runtime_config() {
        let c = parse(
            r#","runtimeConfig":{"podAnnotations":{"ipam.spidernet.io/default-route-nic":"net2"}}"#,
        )
        .unwrap();
        assert_eq!(c.default_route_nic_annotation.as_deref(), Some("net2"));
        let c = parse(
            r#","runtimeConfig":{"podAnnotations":{"ipam.spidernet.io/default-route-nic":"net2"}},
               "args":{"cni":{"annotations":{"ipam.spidernet.io/default-route-nic":"net1"}}}"#,
        )
        .unwrap();
        assert_eq!(c.default_route_nic_annotation.as_deref(), Some("net1"));
    }
}
