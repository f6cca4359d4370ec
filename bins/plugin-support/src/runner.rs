//! The CNI command runner: environment and stdin in, one command dispatched, stdout and an exit
//! code out.
//!
//! Order of checks (Go's `skel` order, so errors match Go plugins):
//!
//! 1. `CNI_*` variables ([`CniEnv::from_vars`], code 4). With no `CNI_COMMAND` at all, the
//!    `about` text and the supported versions go to stderr and the exit code is 0, as Go does
//!    when a plugin is run by hand.
//! 2. `VERSION` is answered here, without reading stdin.
//! 3. stdin is read (code 5 on an I/O error) and decoded ([`NetConf::parse`], codes 6 and 7).
//! 4. the version is negotiated ([`NetConf::negotiate`], code 1: unknown or unsupported
//!    `cniVersion`, or a command the version does not allow: CHECK needs 0.4.0, GC and STATUS
//!    need 1.1.0).
//! 5. ADD and CHECK: `CNI_NETNS` must not be the plugin's own network namespace (code 8,
//!    libcni's message), unless `CNI_NETNS_OVERRIDE` is set, as Go's `skel` checks it: a plugin
//!    run by mistake with the node's netns would otherwise rewrite the node's own links and
//!    routes. See [`netns_kind`].
//! 6. the [`Plugin`] method runs; a result is printed in the configuration's `cniVersion`.
//!
//! Failures print the [`CniError`] JSON (four-space indented, as Go's plugins print it) on
//! stdout and exit 1. Nothing else ever goes to stdout: logs use stderr or a file.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::ExitCode;

use spiderpool_core::cni::{
    CniEnv, CniError, Command, ERR_INVALID_NETNS, ERR_IO, NetConf, Result100, SpecVersion,
    VersionReply,
};

/// Everything a command needs: the parsed environment, the configuration, the version to
/// answer in, and the raw stdin (for plugins that delegate).
#[derive(Debug, Clone)]
pub struct Context {
    /// The `CNI_*` variables.
    pub env: CniEnv,
    /// The network configuration from stdin.
    pub conf: NetConf,
    /// The negotiated version (the configuration's own `cniVersion`).
    pub version: SpecVersion,
    /// stdin as read.
    pub stdin: Vec<u8>,
}

/// What an ADD prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A result, printed in the configuration's `cniVersion`.
    Result(Result100),
    /// Text printed as is (e.g. a `prevResult` passed through byte for byte).
    Raw(String),
}

/// A CNI plugin: one method per command. VERSION is handled by the runner. CHECK, GC and
/// STATUS succeed by default.
pub trait Plugin {
    /// ADD.
    fn add(&self, ctx: &Context) -> Result<Output, CniError>;
    /// DEL: must succeed when things are already gone.
    fn del(&self, ctx: &Context) -> Result<(), CniError>;
    /// CHECK (0.4.0 and later).
    fn check(&self, _ctx: &Context) -> Result<(), CniError> {
        Ok(())
    }
    /// GC (1.1.0): `ctx.conf.valid_attachments` lists what to keep.
    fn gc(&self, _ctx: &Context) -> Result<(), CniError> {
        Ok(())
    }
    /// STATUS (1.1.0): `Ok` when ADD could succeed now; codes 50/51 otherwise.
    fn status(&self, _ctx: &Context) -> Result<(), CniError> {
        Ok(())
    }
}

/// What the process should print and return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Text for stdout (a result, the VERSION reply, or the error JSON).
    pub stdout: String,
    /// Text for stderr (only the `about` text when run by hand).
    pub stderr: String,
    /// The exit code: 0 or 1.
    pub code: u8,
}

impl Outcome {
    fn ok(stdout: String) -> Self {
        Self {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }

    fn err(e: &CniError) -> Self {
        Self {
            stdout: e.to_json_pretty(),
            stderr: String::new(),
            code: 1,
        }
    }
}

/// Runs `plugin` for this process: reads the real environment and stdin, prints, and returns
/// the exit code for `main`.
pub fn run(plugin: &dyn Plugin, about: &str) -> ExitCode {
    let outcome = run_with(std::env::vars_os(), io::stdin().lock(), plugin, about);
    // If stdout is gone there is nobody to tell; the exit code still says it.
    let mut out = io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    if !outcome.stderr.is_empty() {
        let _ = io::stderr().write_all(outcome.stderr.as_bytes());
    }
    ExitCode::from(outcome.code)
}

/// The runner without process I/O: `vars` are the environment, `stdin` is read only for
/// commands that take a configuration.
pub fn run_with<I, K, V, R>(vars: I, stdin: R, plugin: &dyn Plugin, about: &str) -> Outcome
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
    R: Read,
{
    let vars: Vec<(K, V)> = vars.into_iter().collect();
    let has_command = vars
        .iter()
        .any(|(k, v)| k.as_ref() == spiderpool_core::cni::ENV_COMMAND && !v.as_ref().is_empty());
    let env = match CniEnv::from_vars(vars) {
        Ok(env) => env,
        Err(_) if !has_command && !about.is_empty() => {
            let versions = SpecVersion::SUPPORTED
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Outcome {
                stdout: String::new(),
                stderr: format!("{about}\nCNI protocol versions supported: {versions}\n"),
                code: 0,
            };
        }
        Err(e) => return Outcome::err(&e),
    };
    match dispatch(env, stdin, plugin) {
        Ok(stdout) => Outcome::ok(stdout),
        Err(e) => Outcome::err(&e),
    }
}

fn dispatch<R: Read>(env: CniEnv, mut stdin: R, plugin: &dyn Plugin) -> Result<String, CniError> {
    let command = env.command();
    if command == Command::Version {
        return Ok(VersionReply::ours().to_json());
    }
    let mut bytes = Vec::new();
    stdin
        .read_to_end(&mut bytes)
        .map_err(|e| CniError::new(ERR_IO, format!("error reading from stdin: {e}")))?;
    let conf = NetConf::parse(&bytes)?;
    let version = conf.negotiate(command, &SpecVersion::SUPPORTED)?;
    if matches!(command, Command::Add | Command::Check) && !env.netns_override() {
        refuse_own_netns(env.netns())?;
    }
    let ctx = Context {
        env,
        conf,
        version,
        stdin: bytes,
    };
    match command {
        Command::Add => match plugin.add(&ctx)? {
            Output::Result(r) => r.to_json_pretty(version),
            Output::Raw(text) => Ok(text),
        },
        Command::Del => plugin.del(&ctx).map(|()| String::new()),
        Command::Check => plugin.check(&ctx).map(|()| String::new()),
        Command::Gc => plugin.gc(&ctx).map(|()| String::new()),
        Command::Status => plugin.status(&ctx).map(|()| String::new()),
        // Answered above; kept so the match stays exhaustive without a panic.
        Command::Version => Ok(VersionReply::ours().to_json()),
    }
}

/// What a `CNI_NETNS` path names, found without entering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsKind {
    /// Nothing at that path (the netns is gone).
    Missing,
    /// Something that is not a network namespace: a leftover mount point (an empty regular
    /// file once the netns mount is gone), a directory, another kind of namespace...; the
    /// string says what.
    NotNetns(String),
    /// The calling thread's own network namespace.
    Own,
    /// Another network namespace.
    Other,
}

/// The calling thread's netns (threads may differ; `/proc/self` shows the main thread's).
const THREAD_SELF_NET: &str = "/proc/thread-self/ns/net";

/// Classifies `path`, opened with `O_PATH` (no read permission needed, never blocks on a
/// FIFO), without entering it. Every namespace file lives on the kernel's one `nsfs` file
/// system: a path whose device is not that of `/proc/thread-self/ns/net` is no namespace (a
/// netns mount point left behind is an empty regular file on `/run`). Same device and inode:
/// the calling thread's own netns. A `/proc/<pid>/ns/<kind>` link also names its kind
/// (`uts:[<inode>]`), so other kinds are told apart there; a bind mount (`ip netns add`) shows
/// only its path, and a namespace file found by one is taken for a netns.
pub fn netns_kind(path: &Path) -> io::Result<NetnsKind> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_PATH.bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(NetnsKind::Missing),
        Err(e) => return Err(e),
    };
    let (it, own) = (file.metadata()?, fs::metadata(THREAD_SELF_NET)?);
    if it.dev() != own.dev() {
        return Ok(NetnsKind::NotNetns(describe(&it)));
    }
    if it.ino() == own.ino() {
        return Ok(NetnsKind::Own);
    }
    let name = fs::read_link(format!("/proc/thread-self/fd/{}", file.as_raw_fd()))?;
    Ok(match name.to_string_lossy().split_once(":[") {
        Some((kind, _)) if kind != "net" => NetnsKind::NotNetns(format!("a {kind} namespace")),
        _ => NetnsKind::Other,
    })
}

fn describe(meta: &fs::Metadata) -> String {
    let kind = meta.file_type();
    if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
    .to_owned()
}

/// Step 5 of the module docs: code 8 when `netns` is the plugin's own network namespace (or
/// when that cannot be told). A missing path or one that is not a netns is left to the plugin.
fn refuse_own_netns(netns: Option<&str>) -> Result<(), CniError> {
    let Some(path) = netns else {
        return Ok(());
    };
    let refuse = |details: String| {
        CniError::new(
            ERR_INVALID_NETNS,
            "plugin's netns and netns from CNI_NETNS should not be the same",
        )
        .with_details(details)
    };
    match netns_kind(Path::new(path)) {
        Ok(NetnsKind::Own) => Err(refuse(format!(
            "CNI_NETNS={path} is the network namespace the plugin runs in (the node's); \
             set CNI_NETNS_OVERRIDE=1 if that is really meant"
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(refuse(format!(
            "cannot tell whether CNI_NETNS={path} is the plugin's own network namespace: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spiderpool_core::cni::IpConfig;
    use std::cell::RefCell;

    /// Records which command ran; ADD returns one address.
    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<&'static str>>,
    }

    impl Plugin for Recorder {
        fn add(&self, ctx: &Context) -> Result<Output, CniError> {
            self.calls.borrow_mut().push("add");
            if ctx.conf.name == "fail" {
                return Err(CniError::try_again_later("agent down"));
            }
            let mut r = Result100::default();
            r.ips.push(
                IpConfig::new("10.6.100.1/16".parse().unwrap())
                    .with_gateway("10.6.0.1".parse().unwrap()),
            );
            Ok(Output::Result(r))
        }
        fn del(&self, _ctx: &Context) -> Result<(), CniError> {
            self.calls.borrow_mut().push("del");
            Ok(())
        }
        fn status(&self, _ctx: &Context) -> Result<(), CniError> {
            self.calls.borrow_mut().push("status");
            Err(CniError::new(50, "plugin not available"))
        }
    }

    fn env(command: &str) -> Vec<(String, String)> {
        [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/p"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec()
    }

    fn conf(version: &str) -> String {
        format!(
            r#"{{"cniVersion":"{version}","name":"n","type":"macvlan","ipam":{{"type":"spiderpool"}}}}"#
        )
    }

    fn go(vars: Vec<(String, String)>, stdin: &str) -> (Outcome, Vec<&'static str>) {
        let p = Recorder::default();
        let o = run_with(vars, stdin.as_bytes(), &p, "test plugin");
        (o, p.calls.into_inner())
    }

    #[test]
    fn version_is_answered_without_stdin() {
        struct Unreadable;
        impl Read for Unreadable {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("must not be read"))
            }
        }
        let p = Recorder::default();
        let o = run_with([("CNI_COMMAND", "VERSION")], Unreadable, &p, "about");
        assert_eq!(
            o.stdout,
            "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
        );
        assert_eq!(o.code, 0);
    }

    #[test]
    fn add_prints_the_result_in_the_config_version() {
        let (o, calls) = go(env("ADD"), &conf("0.3.1"));
        assert_eq!(o.code, 0);
        assert!(
            o.stdout
                .starts_with("{\n    \"cniVersion\": \"0.3.1\",\n    \"ips\": [")
        );
        assert!(o.stdout.contains("\"version\": \"4\""));
        assert_eq!(calls, ["add"]);
        let (o, _) = go(env("ADD"), &conf("1.0.0"));
        assert!(
            o.stdout
                .starts_with("{\n    \"cniVersion\": \"1.0.0\",\n    \"ips\": [")
        );
        assert!(!o.stdout.contains("\"version\""));
    }

    #[test]
    fn errors_are_json_on_stdout_with_exit_1() {
        let fail = r#"{"cniVersion":"1.0.0","name":"fail","type":"macvlan"}"#;
        let (o, _) = go(env("ADD"), fail);
        assert_eq!(o.code, 1);
        assert_eq!(
            o.stdout,
            "{\n    \"code\": 11,\n    \"msg\": \"agent down\"\n}"
        );
        assert!(o.stderr.is_empty());
    }

    #[test]
    fn env_stdin_and_version_errors_have_their_codes() {
        let mut missing = env("ADD");
        missing.retain(|(k, _)| k != "CNI_NETNS");
        let (o, calls) = go(missing, &conf("0.3.1"));
        assert_eq!(o.code, 1);
        assert!(o.stdout.contains("\"code\": 4"), "{}", o.stdout);
        assert!(
            o.stdout
                .contains("required env variables [CNI_NETNS] missing")
        );
        assert!(calls.is_empty());

        let (o, _) = go(env("ADD"), "{not json");
        assert!(o.stdout.contains("\"code\": 6"), "{}", o.stdout);
        let (o, _) = go(env("ADD"), r#"{"cniVersion":"0.3.1","type":"x"}"#);
        assert!(o.stdout.contains("\"code\": 7"), "{}", o.stdout);
        let (o, _) = go(env("ADD"), &conf("0.9.9"));
        assert!(o.stdout.contains("\"code\": 1"), "{}", o.stdout);
        let (o, _) = go(env("ADD"), &conf("0.2.0"));
        assert!(
            o.stdout.contains("incompatible CNI versions"),
            "{}",
            o.stdout
        );
    }

    #[test]
    fn check_gc_status_follow_the_version_rules() {
        let (o, calls) = go(env("CHECK"), &conf("0.3.1"));
        assert_eq!(o.code, 1);
        assert!(
            o.stdout.contains("config version does not allow CHECK"),
            "{}",
            o.stdout
        );
        assert!(calls.is_empty());
        let (o, _) = go(env("CHECK"), &conf("0.4.0"));
        assert_eq!((o.code, o.stdout.as_str()), (0, ""));

        let status = vec![
            ("CNI_COMMAND".to_owned(), "STATUS".to_owned()),
            ("CNI_PATH".to_owned(), "/opt/cni/bin".to_owned()),
        ];
        let (o, calls) = go(status.clone(), &conf("1.0.0"));
        assert!(
            o.stdout.contains("config version does not allow STATUS"),
            "{}",
            o.stdout
        );
        assert!(calls.is_empty());
        let (o, calls) = go(status, &conf("1.1.0"));
        assert_eq!(o.code, 1);
        assert!(o.stdout.contains("\"code\": 50"));
        assert_eq!(calls, ["status"]);

        let gc = vec![
            ("CNI_COMMAND".to_owned(), "GC".to_owned()),
            ("CNI_PATH".to_owned(), "/opt/cni/bin".to_owned()),
        ];
        let (o, _) = go(gc, &conf("1.1.0"));
        assert_eq!((o.code, o.stdout.as_str()), (0, ""));
    }

    #[test]
    fn del_prints_nothing() {
        let mut vars = env("DEL");
        vars.retain(|(k, _)| k != "CNI_NETNS");
        let (o, calls) = go(vars, &conf("0.3.1"));
        assert_eq!((o.code, o.stdout.as_str()), (0, ""));
        assert_eq!(calls, ["del"]);
    }

    #[test]
    fn the_plugins_own_netns_is_refused_for_add_and_check() {
        for (command, version) in [("ADD", "0.3.1"), ("CHECK", "1.0.0")] {
            let mut vars = env(command);
            vars.retain(|(k, _)| k != "CNI_NETNS");
            vars.push(("CNI_NETNS".into(), "/proc/self/ns/net".into()));
            let (o, calls) = go(vars.clone(), &conf(version));
            assert_eq!(o.code, 1, "{command}");
            let e: CniError = serde_json::from_str(&o.stdout).unwrap();
            assert_eq!(e.code, 8, "{command}: {}", o.stdout);
            assert_eq!(
                e.msg,
                "plugin's netns and netns from CNI_NETNS should not be the same"
            );
            assert!(e.details.contains("/proc/self/ns/net"), "{}", e.details);
            assert!(calls.is_empty(), "{command}: the plugin must not run");
            // libcni's escape hatch.
            vars.push(("CNI_NETNS_OVERRIDE".into(), "1".into()));
            let (o, calls) = go(vars, &conf(version));
            assert_eq!(o.code, 0, "{command}: {}", o.stdout);
            assert_eq!(calls.len(), usize::from(command == "ADD"));
        }
        // DEL must still run (it cleans up; the plugin decides what to touch).
        let mut vars = env("DEL");
        vars.retain(|(k, _)| k != "CNI_NETNS");
        vars.push(("CNI_NETNS".into(), "/proc/self/ns/net".into()));
        let (o, calls) = go(vars, &conf("0.3.1"));
        assert_eq!((o.code, calls), (0, vec!["del"]));
    }

    #[test]
    fn netns_kinds_without_root() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("leftover");
        std::fs::write(&file, b"").unwrap();
        let kind = |p: &Path| netns_kind(p).unwrap();
        assert_eq!(kind(&dir.path().join("gone")), NetnsKind::Missing);
        assert_eq!(kind(&file), NetnsKind::NotNetns("a regular file".into()));
        assert_eq!(kind(dir.path()), NetnsKind::NotNetns("a directory".into()));
        assert_eq!(
            kind(Path::new("/proc/self/ns/uts")),
            NetnsKind::NotNetns("a uts namespace".into())
        );
        assert_eq!(kind(Path::new("/proc/self/ns/net")), NetnsKind::Own);
        assert_eq!(kind(Path::new("/proc/thread-self/ns/net")), NetnsKind::Own);
    }

    #[test]
    fn netns_kind_compares_with_the_calling_thread() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: needs root to create a network namespace");
            return;
        }
        let main_ns = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        let (tid, kinds) = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let tid = nix::unistd::gettid();
                let kinds = [
                    netns_kind(Path::new("/proc/thread-self/ns/net")).unwrap(),
                    // The main thread's netns (the "node"), seen from a thread in another.
                    netns_kind(Path::new(&main_ns)).unwrap(),
                ];
                (tid, kinds)
            })
            .join()
            .unwrap()
        });
        assert_eq!(kinds, [NetnsKind::Own, NetnsKind::Other]);
        // A bind-mounted netns (`ip netns add`) is told by its device, not its name.
        let name = format!("spnskind-{}", std::process::id());
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        };
        ip(&["netns", "add", &name]);
        let mounted = netns_kind(Path::new(&format!("/var/run/netns/{name}"))).unwrap();
        ip(&["netns", "del", &name]);
        assert_eq!(mounted, NetnsKind::Other);
        // The thread has exited; its netns went with it.
        let gone = format!("/proc/self/task/{tid}/ns/net");
        assert_eq!(netns_kind(Path::new(&gone)).unwrap(), NetnsKind::Missing);
    }

    #[test]
    fn no_command_prints_about_on_stderr() {
        let (o, calls) = go(Vec::new(), "");
        assert_eq!(o.code, 0);
        assert!(o.stdout.is_empty());
        assert!(
            o.stderr
                .starts_with("test plugin\nCNI protocol versions supported: 0.3.0")
        );
        assert!(calls.is_empty());
        let (o, _) = go(vec![("CNI_COMMAND".into(), "BOGUS".into())], "");
        assert_eq!(o.code, 1);
        assert!(o.stdout.contains("\"code\": 4"));
    }
}
