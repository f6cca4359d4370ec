//! The CNI harness: run a plugin binary as a container runtime would, with the `CNI_*`
//! environment and the network configuration on stdin, and read back exit code, stdout and
//! stderr. [`crate::lab::run_plugin`] (feature `netlink`) runs it inside a network namespace.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// What a plugin run gave.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    /// From a finished process.
    pub fn from_output(out: &Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The CNI error code printed on stdout, if any.
    pub fn cni_code(&self) -> Option<u64> {
        serde_json::from_str::<serde_json::Value>(&self.stdout)
            .ok()?
            .get("code")?
            .as_u64()
    }
}

/// The CNI environment of one call.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// `CNI_COMMAND`: ADD, DEL, CHECK, VERSION...
    pub command: &'a str,
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_NETNS` (empty: unset).
    pub netns: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_ARGS`.
    pub args: &'a str,
}

/// `CNI_PATH` of every call: where Debian and the CNI project install plugins.
pub const CNI_PATH: &str = "/usr/lib/cni:/opt/cni/bin";

impl<'a> Call<'a> {
    /// An ADD of `ifname` for pod `default/test-pod`.
    pub fn add(netns: &'a str, container_id: &'a str, ifname: &'a str) -> Call<'a> {
        Call {
            command: "ADD",
            container_id,
            netns,
            ifname,
            args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=test-pod",
        }
    }

    /// The same call with another command.
    pub fn with(&self, command: &'a str) -> Call<'a> {
        Call { command, ..*self }
    }

    /// The `CNI_*` variables of the call.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CNI_COMMAND", self.command.to_owned()),
            ("CNI_CONTAINERID", self.container_id.to_owned()),
            ("CNI_IFNAME", self.ifname.to_owned()),
            ("CNI_PATH", CNI_PATH.to_owned()),
            ("CNI_ARGS", self.args.to_owned()),
        ];
        if !self.netns.is_empty() {
            env.push(("CNI_NETNS", self.netns.to_owned()));
        }
        env
    }

    /// `program` with a clean environment: `PATH` and the call's `CNI_*` variables only.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env());
        cmd
    }
}

/// Runs `program` for `call` with `stdin` (in the calling thread's network namespace).
///
/// # Panics
///
/// When the program cannot be started (a test setup error).
pub fn run_plugin_here(program: &str, call: &Call<'_>, stdin: &str) -> Run {
    let out = run_with_stdin(call.command(program), stdin)
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Run::from_output(&out)
}

/// Spawns `cmd` with piped stdio, writes `stdin`, and waits.
pub fn run_with_stdin(mut cmd: Command, stdin: &str) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut pipe) = child.stdin.take() {
        // VERSION does not read stdin: a broken pipe here is expected.
        let _ = pipe.write_all(stdin.as_bytes());
    }
    child.wait_with_output()
}
