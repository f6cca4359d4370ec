//! The `CNI_*` environment variables of one plugin invocation, read from a given list of
//! variables (the binary passes `std::env::vars_os()`), validated as Go's `skel` does.

use std::ffi::OsStr;

use super::command::Command;
use super::error::CniError;

/// `CNI_COMMAND`.
pub const ENV_COMMAND: &str = "CNI_COMMAND";
/// `CNI_CONTAINERID`.
pub const ENV_CONTAINERID: &str = "CNI_CONTAINERID";
/// `CNI_NETNS`.
pub const ENV_NETNS: &str = "CNI_NETNS";
/// `CNI_IFNAME`.
pub const ENV_IFNAME: &str = "CNI_IFNAME";
/// `CNI_ARGS`.
pub const ENV_ARGS: &str = "CNI_ARGS";
/// `CNI_PATH`.
pub const ENV_PATH: &str = "CNI_PATH";
/// `CNI_NETNS_OVERRIDE` (a libcni extension: `1` / `true` allows the plugin's own netns).
pub const ENV_NETNS_OVERRIDE: &str = "CNI_NETNS_OVERRIDE";

/// The longest interface name Linux accepts (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;

const VARS: [&str; 7] = [
    ENV_COMMAND,
    ENV_CONTAINERID,
    ENV_NETNS,
    ENV_IFNAME,
    ENV_ARGS,
    ENV_PATH,
    ENV_NETNS_OVERRIDE,
];

/// The environment of one invocation.
///
/// Which variables are required follows Go's skel matrix: `CNI_COMMAND` always;
/// `CNI_CONTAINERID` and `CNI_IFNAME` for ADD, DEL and CHECK; `CNI_NETNS` for ADD and CHECK
/// (not DEL: the netns may be gone); `CNI_PATH` for everything but VERSION. An empty value counts
/// as missing. Required variables are validated; variables a command does not need are kept as
/// given (or absent) without validation.
///
/// ```
/// use spiderpool_core::cni::{CniEnv, Command};
///
/// let env = CniEnv::from_vars([
///     ("CNI_COMMAND", "DEL"),
///     ("CNI_CONTAINERID", "9A2b-c.d_e"),
///     ("CNI_IFNAME", "net1"),
///     ("CNI_PATH", "/opt/cni/bin"),
///     ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"),
/// ])?;
/// assert_eq!(env.command(), Command::Del);
/// assert_eq!(env.netns(), None);
/// assert_eq!(env.args().k8s_pod_name(), Some("web-0"));
/// # Ok::<(), spiderpool_core::cni::CniError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    command: Command,
    container_id: Option<String>,
    netns: Option<String>,
    ifname: Option<String>,
    args: CniArgs,
    path: Option<String>,
    netns_override: bool,
}

impl CniEnv {
    /// Reads the invocation from `(name, value)` pairs; other variables are ignored.
    ///
    /// Errors (all code 4, [`super::ERR_INVALID_ENV`], except as noted), in Go's order: the
    /// first invalid required variable (`invalid characters in containerID`, `interface name is
    /// too long`, ...); else every missing one at once (`required env variables
    /// [CNI_NETNS,CNI_PATH] missing`); else `unknown CNI_COMMAND: X`; else a malformed
    /// `CNI_ARGS` (`ARGS: invalid pair "x"`). A value that is not UTF-8 is invalid.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, CniError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        // Last occurrence wins, as with a real environment built by `env`/exec.
        let mut found: [Option<Result<String, ()>>; 7] = Default::default();
        for (name, value) in vars {
            let Some(name) = name.as_ref().to_str() else {
                continue;
            };
            if let Some(i) = VARS.iter().position(|v| *v == name) {
                found[i] = Some(value.as_ref().to_str().map(str::to_owned).ok_or(()));
            }
        }
        let [
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
            netns_override,
        ] = found;

        let command_text = value_of(ENV_COMMAND, command)?;
        let command = command_text.as_deref().map(str::parse::<Command>);
        let cmd = command.as_ref().and_then(|c| c.as_ref().ok().copied());

        let container_id = value_of(ENV_CONTAINERID, container_id)?;
        let netns = value_of(ENV_NETNS, netns)?;
        let ifname = value_of(ENV_IFNAME, ifname)?;
        let path = value_of(ENV_PATH, path)?;

        let mut missing = Vec::new();
        if command_text.is_none() {
            missing.push(ENV_COMMAND);
        }
        let need = |f: fn(Command) -> bool| cmd.is_some_and(f);
        match &container_id {
            None if need(Command::requires_container_id) => missing.push(ENV_CONTAINERID),
            Some(id) if need(Command::requires_container_id) => validate_container_id(id)?,
            _ => {}
        }
        if netns.is_none() && need(Command::requires_netns) {
            missing.push(ENV_NETNS);
        }
        match &ifname {
            None if need(Command::requires_ifname) => missing.push(ENV_IFNAME),
            Some(name) if need(Command::requires_ifname) => validate_ifname(name)?,
            _ => {}
        }
        if path.is_none() && need(Command::requires_path) {
            missing.push(ENV_PATH);
        }
        if !missing.is_empty() {
            return Err(CniError::invalid_env(format!(
                "required env variables [{}] missing",
                missing.join(",")
            )));
        }
        let command = match command {
            Some(c) => c?,
            None => return Err(CniError::invalid_env("CNI_COMMAND is not set")),
        };

        let args_text = value_of(ENV_ARGS, args)?;
        let args = match args_text {
            Some(text) if command.is_attachment() => CniArgs::parse(&text)?,
            _ => CniArgs::default(),
        };
        let netns_override = value_of(ENV_NETNS_OVERRIDE, netns_override)?
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));

        Ok(Self {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
            netns_override,
        })
    }

    /// `CNI_COMMAND`.
    pub fn command(&self) -> Command {
        self.command
    }

    /// `CNI_CONTAINERID`: always present (and valid) for ADD, DEL and CHECK.
    pub fn container_id(&self) -> Option<&str> {
        self.container_id.as_deref()
    }

    /// `CNI_NETNS`: always present for ADD and CHECK; for DEL only if the runtime still has it.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// `CNI_IFNAME`: always present (and valid) for ADD, DEL and CHECK.
    pub fn ifname(&self) -> Option<&str> {
        self.ifname.as_deref()
    }

    /// `CNI_ARGS`, parsed (empty for commands other than ADD, DEL and CHECK).
    pub fn args(&self) -> &CniArgs {
        &self.args
    }

    /// `CNI_PATH` as given (present for every command but VERSION).
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The directories of `CNI_PATH` (colon-separated, empty entries skipped).
    pub fn path_dirs(&self) -> impl Iterator<Item = &str> {
        self.path
            .as_deref()
            .unwrap_or_default()
            .split(':')
            .filter(|d| !d.is_empty())
    }

    /// Whether `CNI_NETNS_OVERRIDE` is `1` or `true` (any case).
    pub fn netns_override(&self) -> bool {
        self.netns_override
    }
}

/// The value of a variable: `None` when unset or empty; an error when not UTF-8.
fn value_of(name: &str, raw: Option<Result<String, ()>>) -> Result<Option<String>, CniError> {
    match raw {
        None => Ok(None),
        Some(Err(())) => Err(CniError::invalid_env(format!("{name} is not valid UTF-8"))),
        Some(Ok(v)) if v.is_empty() => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
    }
}

/// Whether `name` matches `[a-zA-Z0-9][a-zA-Z0-9_.\-]*` (container IDs and network names).
pub fn is_valid_cni_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Validates a container ID as Go's `utils.ValidateContainerID`: empty is code 3
/// ([`super::ERR_UNKNOWN_CONTAINER`]) `missing containerID`; characters outside
/// `[a-zA-Z0-9][a-zA-Z0-9_.\-]*` are code 4 `invalid characters in containerID` with the ID as
/// details. Upper case is allowed.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            super::ERR_UNKNOWN_CONTAINER,
            "missing containerID",
        ));
    }
    if !is_valid_cni_name(id) {
        return Err(CniError::invalid_env("invalid characters in containerID").with_details(id));
    }
    Ok(())
}

/// Validates an interface name as Go's `utils.ValidateInterfaceName` (all code 4): not empty, at
/// most 15 bytes, not `.` or `..`, no `/`, `:` or whitespace. The details quote the name.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let err = |msg: &str| CniError::invalid_env(msg).with_details(format!("{ENV_IFNAME}={name:?}"));
    if name.is_empty() {
        return Err(err("interface name is empty"));
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(
            CniError::invalid_env("interface name is too long").with_details(format!(
                "interface name should be less than {} characters: {name:?} has {}",
                MAX_IFNAME_LEN + 1,
                name.len()
            )),
        );
    }
    if name == "." || name == ".." {
        return Err(err("interface name is . or .."));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(err(
            "interface name contains / or : or whitespace characters",
        ));
    }
    Ok(())
}

/// Problems with `uid` as a pod UID (see [`CniArgs::validate_pod_identity`]).
fn pod_uid_problems(uid: &str) -> Vec<String> {
    if uid.len() <= 128 && is_valid_cni_name(uid) {
        return Vec::new();
    }
    vec![
        "a pod UID must be 1 to 128 alphanumeric characters, '_', '.' or '-', starting with an \
         alphanumeric character"
            .to_owned(),
    ]
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`, in the order given.
///
/// Parsing is Go's `types.LoadArgs` split: every `;`-separated item must contain exactly one
/// `=` (so values cannot contain `=` and a trailing `;` is an error). Keys are case-sensitive;
/// when a key repeats, the last value wins. Which keys are acceptable is up to the plugin (see
/// [`CniArgs::unknown_keys`] and [`CniArgs::ignore_unknown`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// `IgnoreUnknown`: a runtime's promise that unknown keys may be ignored.
    pub const IGNORE_UNKNOWN: &'static str = "IgnoreUnknown";
    /// `K8S_POD_NAMESPACE`.
    pub const K8S_POD_NAMESPACE: &'static str = "K8S_POD_NAMESPACE";
    /// `K8S_POD_NAME`.
    pub const K8S_POD_NAME: &'static str = "K8S_POD_NAME";
    /// `K8S_POD_UID`.
    pub const K8S_POD_UID: &'static str = "K8S_POD_UID";
    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub const K8S_POD_INFRA_CONTAINER_ID: &'static str = "K8S_POD_INFRA_CONTAINER_ID";

    /// Parses `K=V;K=V`; the empty string gives no pairs. Errors are code 4.
    pub fn parse(text: &str) -> Result<Self, CniError> {
        if text.is_empty() {
            return Ok(Self::default());
        }
        let pairs = text
            .split(';')
            .map(|pair| {
                let mut kv = pair.split('=');
                match (kv.next(), kv.next(), kv.next()) {
                    (Some(k), Some(v), None) => Ok((k.to_owned(), v.to_owned())),
                    _ => Err(
                        CniError::invalid_env(format!("ARGS: invalid pair {pair:?}"))
                            .with_details(format!("{ENV_ARGS}={text:?}")),
                    ),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { pairs })
    }

    /// The pairs in the order given.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The value of `key` (exact case; the last one when repeated).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `K8S_POD_NAMESPACE`.
    pub fn k8s_pod_namespace(&self) -> Option<&str> {
        self.get(Self::K8S_POD_NAMESPACE)
    }

    /// `K8S_POD_NAME`.
    pub fn k8s_pod_name(&self) -> Option<&str> {
        self.get(Self::K8S_POD_NAME)
    }

    /// `K8S_POD_UID`.
    pub fn k8s_pod_uid(&self) -> Option<&str> {
        self.get(Self::K8S_POD_UID)
    }

    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub fn k8s_pod_infra_container_id(&self) -> Option<&str> {
        self.get(Self::K8S_POD_INFRA_CONTAINER_ID)
    }

    /// Checks the pod identity keys that are present, as Kubernetes names them:
    /// `K8S_POD_NAMESPACE` must be a DNS-1123 label (a namespace name), `K8S_POD_NAME` a
    /// DNS-1123 subdomain (a pod name), `K8S_POD_UID` 1 to 128 characters of
    /// `[a-zA-Z0-9][a-zA-Z0-9_.\-]*` (a UUID in practice). So no newline, NUL, `/` or space
    /// reaches a log line, an endpoint key (`namespace/name`) or the agent. Code 4 (an
    /// environment variable is invalid), naming the key, with the value quoted in `details`.
    pub fn validate_pod_identity(&self) -> Result<(), CniError> {
        use crate::meta::validation::{dns1123_label_problems, dns1123_subdomain_problems};
        for key in [
            Self::K8S_POD_NAMESPACE,
            Self::K8S_POD_NAME,
            Self::K8S_POD_UID,
        ] {
            // An empty value counts as absent (the plugins fall back on the container ID).
            let Some(value) = self.get(key).filter(|v| !v.is_empty()) else {
                continue;
            };
            let problems = match key {
                Self::K8S_POD_NAMESPACE => dns1123_label_problems(value),
                Self::K8S_POD_NAME => dns1123_subdomain_problems(value),
                _ => pod_uid_problems(value),
            };
            if !problems.is_empty() {
                return Err(CniError::invalid_env(format!(
                    "invalid {key} in {ENV_ARGS}: {}",
                    problems.join("; ")
                ))
                .with_details(format!("{key}={value:?}")));
            }
        }
        Ok(())
    }

    /// `IgnoreUnknown`: `1`/`true` (any case) is true, `0`/`false` or absent is false; any other
    /// value is code 4, as Go's boolean argument parsing.
    pub fn ignore_unknown(&self) -> Result<bool, CniError> {
        match self.get(Self::IGNORE_UNKNOWN) {
            None => Ok(false),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" => Ok(true),
                "0" | "false" => Ok(false),
                _ => Err(CniError::invalid_env(format!(
                    "ARGS: error parsing value of pair \"{}={v}\": boolean unmarshal error: invalid input {}",
                    Self::IGNORE_UNKNOWN,
                    v.to_ascii_lowercase()
                ))),
            },
        }
    }

    /// The keys not in `known` (and not `IgnoreUnknown`), in order: what Go's `LoadArgs` refuses
    /// unless [`CniArgs::ignore_unknown`] is set.
    pub fn unknown_keys<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.pairs
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| *k != Self::IGNORE_UNKNOWN && !known.contains(k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_identity_is_checked_as_kubernetes_names_it() {
        let ok = |a: &str| CniArgs::parse(a).unwrap().validate_pod_identity();
        ok("K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=web-0.a;K8S_POD_UID=9666672f-uid").unwrap();
        // Absent or empty keys are left to the plugins' fallbacks.
        ok("").unwrap();
        ok("K8S_POD_NAME=;K8S_POD_UID=").unwrap();
        ok(&format!("K8S_POD_NAME={}", "a".repeat(253))).unwrap();
        for (args, key) in [
            ("K8S_POD_NAME=a\nb", "K8S_POD_NAME"),
            ("K8S_POD_NAME=a/b", "K8S_POD_NAME"),
            ("K8S_POD_NAME=a\0b", "K8S_POD_NAME"),
            ("K8S_POD_NAME=Web", "K8S_POD_NAME"),
            ("K8S_POD_NAME=a b", "K8S_POD_NAME"),
            ("K8S_POD_NAMESPACE=a.b", "K8S_POD_NAMESPACE"),
            ("K8S_POD_NAMESPACE=a/b", "K8S_POD_NAMESPACE"),
            ("K8S_POD_NAMESPACE=-a", "K8S_POD_NAMESPACE"),
            ("K8S_POD_UID=u\nid", "K8S_POD_UID"),
            ("K8S_POD_UID=a/b", "K8S_POD_UID"),
        ] {
            let e = ok(args).unwrap_err();
            assert_eq!(e.code, 4, "{args:?}");
            assert!(
                e.msg.starts_with(&format!("invalid {key} in CNI_ARGS: ")),
                "{}",
                e.msg
            );
            assert!(!e.msg.contains('\n'), "{}", e.msg);
            assert!(e.details.starts_with(&format!("{key}=\"")), "{}", e.details);
        }
        let e = ok(&format!("K8S_POD_NAME={}", "a".repeat(254))).unwrap_err();
        assert!(e.msg.contains("no more than 253"), "{}", e.msg);
        let e = ok(&format!("K8S_POD_NAMESPACE={}", "a".repeat(64))).unwrap_err();
        assert!(e.msg.contains("no more than 63"), "{}", e.msg);
    }

    fn add_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "cid-overlay-0001"),
            ("CNI_NETNS", "/var/run/netns/sppod1"),
            ("CNI_IFNAME", "net1"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=perf-pod-0001;K8S_POD_INFRA_CONTAINER_ID=cid-perf-0001;K8S_POD_UID=9666672f-1",
            ),
            ("HOME", "/root"),
        ]
    }

    fn with(overrides: &[(&'static str, &'static str)]) -> Result<CniEnv, CniError> {
        let mut vars = add_env();
        for (k, v) in overrides {
            vars.retain(|(n, _)| n != k);
            vars.push((k, v));
        }
        CniEnv::from_vars(vars)
    }

    fn without(names: &[&str]) -> Result<CniEnv, CniError> {
        CniEnv::from_vars(add_env().into_iter().filter(|(k, _)| !names.contains(k)))
    }

    #[test]
    fn cni_env_add_ok() {
        let env = with(&[]).unwrap();
        assert_eq!(env.command(), Command::Add);
        assert_eq!(env.container_id(), Some("cid-overlay-0001"));
        assert_eq!(env.netns(), Some("/var/run/netns/sppod1"));
        assert_eq!(env.ifname(), Some("net1"));
        assert_eq!(
            env.path_dirs().collect::<Vec<_>>(),
            ["/opt/cni/bin", "/usr/lib/cni"]
        );
        assert!(!env.netns_override());
        let a = env.args();
        assert_eq!(a.k8s_pod_namespace(), Some("default"));
        assert_eq!(a.k8s_pod_name(), Some("perf-pod-0001"));
        assert_eq!(a.k8s_pod_uid(), Some("9666672f-1"));
        assert_eq!(a.k8s_pod_infra_container_id(), Some("cid-perf-0001"));
        assert!(a.ignore_unknown().unwrap());
        assert_eq!(a.pairs()[0], ("IgnoreUnknown".into(), "1".into()));
    }

    #[test]
    fn cni_env_missing_variables_listed_together() {
        let e = without(&["CNI_NETNS", "CNI_PATH"]).unwrap_err();
        assert_eq!(e.code, 4);
        assert_eq!(e.msg, "required env variables [CNI_NETNS,CNI_PATH] missing");
        let e = without(&["CNI_CONTAINERID", "CNI_IFNAME"]).unwrap_err();
        assert_eq!(
            e.msg,
            "required env variables [CNI_CONTAINERID,CNI_IFNAME] missing"
        );
        // Empty counts as missing.
        let e = with(&[("CNI_IFNAME", "")]).unwrap_err();
        assert_eq!(e.msg, "required env variables [CNI_IFNAME] missing");
        let e = CniEnv::from_vars([("HOME", "/")]).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (4, "required env variables [CNI_COMMAND] missing")
        );
    }

    #[test]
    fn cni_env_del_without_netns_ok() {
        let env = CniEnv::from_vars(
            add_env()
                .into_iter()
                .filter(|(k, _)| *k != "CNI_NETNS")
                .map(|(k, v)| (k, if k == "CNI_COMMAND" { "DEL" } else { v })),
        )
        .unwrap();
        assert_eq!(env.command(), Command::Del);
        assert_eq!(env.netns(), None);
        let e = without(&["CNI_NETNS"]).unwrap_err();
        assert_eq!(e.msg, "required env variables [CNI_NETNS] missing");
    }

    #[test]
    fn cni_env_gc_status_version_need_little() {
        for cmd in ["GC", "STATUS"] {
            let env =
                CniEnv::from_vars([("CNI_COMMAND", cmd), ("CNI_PATH", "/opt/cni/bin")]).unwrap();
            assert_eq!(env.command().as_str(), cmd);
            assert_eq!(env.container_id(), None);
            let e = CniEnv::from_vars([("CNI_COMMAND", cmd)]).unwrap_err();
            assert_eq!(e.msg, "required env variables [CNI_PATH] missing");
        }
        let env = CniEnv::from_vars([("CNI_COMMAND", "VERSION")]).unwrap();
        assert_eq!(env.command(), Command::Version);
        // Not validated when not required: GC does not look at CNI_IFNAME or CNI_ARGS.
        let env = CniEnv::from_vars([
            ("CNI_COMMAND", "GC"),
            ("CNI_PATH", "/p"),
            ("CNI_IFNAME", "bad name"),
            ("CNI_ARGS", "garbage"),
        ])
        .unwrap();
        assert_eq!(env.ifname(), Some("bad name"));
        assert!(env.args().is_empty());
    }

    #[test]
    fn cni_env_unknown_command() {
        let e = with(&[("CNI_COMMAND", "add")]).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (4, "unknown CNI_COMMAND: add"));
        let e = CniEnv::from_vars([("CNI_COMMAND", "FOO")]).unwrap_err();
        assert_eq!(e.msg, "unknown CNI_COMMAND: FOO");
    }

    #[test]
    fn cni_env_container_id_rules() {
        assert!(with(&[("CNI_CONTAINERID", "ABCdef0123_.-x")]).is_ok());
        assert!(with(&[("CNI_CONTAINERID", "7")]).is_ok());
        for bad in ["-abc", "_abc", ".abc", "ab/c", "ab c", "ab:c", "äb"] {
            let e = with(&[("CNI_CONTAINERID", bad)]).unwrap_err();
            assert_eq!(e.code, 4, "{bad}");
            assert_eq!(e.msg, "invalid characters in containerID");
            assert_eq!(e.details, bad);
        }
        let e = validate_container_id("").unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (3, "missing containerID"));
    }

    #[test]
    fn cni_env_ifname_rules() {
        assert!(with(&[("CNI_IFNAME", "abcdefghijklmno")]).is_ok());
        let cases = [
            ("abcdefghijklmnop", "interface name is too long"),
            (".", "interface name is . or .."),
            ("..", "interface name is . or .."),
            (
                "a/b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "a:b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "a b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "a\tb",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "a\u{a0}b",
                "interface name contains / or : or whitespace characters",
            ),
        ];
        for (name, msg) in cases {
            let e = with(&[("CNI_IFNAME", name)]).unwrap_err();
            assert_eq!((e.code, e.msg.as_str()), (4, msg), "{name:?}");
        }
        // 15 bytes, not 15 characters.
        let e = with(&[("CNI_IFNAME", "ééééééééé")]).unwrap_err();
        assert_eq!(e.msg, "interface name is too long");
        assert!(e.details.contains("less than 16 characters"));
    }

    #[test]
    fn cni_env_validation_error_wins_over_missing() {
        // Go returns the first invalid required variable before reporting missing ones.
        let vars = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "bad id"),
            ("CNI_IFNAME", "net1"),
        ];
        let e = CniEnv::from_vars(vars).unwrap_err();
        assert_eq!(e.msg, "invalid characters in containerID");
    }

    #[test]
    fn cni_env_args_rules() {
        let e = with(&[("CNI_ARGS", "A=1;B")]).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (4, "ARGS: invalid pair \"B\""));
        let e = with(&[("CNI_ARGS", "A=1;")]).unwrap_err();
        assert_eq!(e.msg, "ARGS: invalid pair \"\"");
        let e = with(&[("CNI_ARGS", "A=b=c")]).unwrap_err();
        assert_eq!(e.msg, "ARGS: invalid pair \"A=b=c\"");
        let env = with(&[("CNI_ARGS", "")]).unwrap();
        assert!(env.args().is_empty());
        let a = CniArgs::parse("K8S_POD_NAME=a;X=1;K8S_POD_NAME=b").unwrap();
        assert_eq!(a.k8s_pod_name(), Some("b"));
        assert_eq!(a.unknown_keys(&["K8S_POD_NAME"]), ["X"]);
        assert!(!a.ignore_unknown().unwrap());
        assert!(
            CniArgs::parse("IgnoreUnknown=TRUE")
                .unwrap()
                .ignore_unknown()
                .unwrap()
        );
        assert!(
            CniArgs::parse("IgnoreUnknown=yes")
                .unwrap()
                .ignore_unknown()
                .is_err()
        );
    }

    #[test]
    fn cni_env_netns_override_and_non_utf8() {
        let env = with(&[("CNI_NETNS_OVERRIDE", "True")]).unwrap();
        assert!(env.netns_override());
        #[cfg(unix)]
        {
            use std::ffi::OsString;
            use std::os::unix::ffi::OsStringExt;
            let mut vars: Vec<(OsString, OsString)> = add_env()
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
            vars.push(("CNI_IFNAME".into(), OsString::from_vec(vec![0x6e, 0xff])));
            let e = CniEnv::from_vars(vars).unwrap_err();
            assert_eq!(
                (e.code, e.msg.as_str()),
                (4, "CNI_IFNAME is not valid UTF-8")
            );
        }
    }
}
