//! The network-namespace lab: named namespaces made with `ip netns` (cleaned up on drop),
//! running programs inside a namespace handle, and the `ip` / `sysctl` / `ping` helpers the
//! root tests inspect them with. Tests using it are gated with [`crate::gate`].
//!
//! The helpers panic with the failing command and its stderr: they are test setup.

use std::process::Command;

/// Runs `ip ARGS` in the calling thread's namespace, failing the test with its stderr;
/// returns stdout.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Named network namespaces (`ip netns add`, so `/var/run/netns/NAME` exists), deleted on
/// drop.
#[derive(Debug, Default)]
pub struct NamedNetns(pub Vec<String>);

impl NamedNetns {
    /// Creates `name` (replacing a stale one left by an earlier run) and returns it.
    pub fn add(&mut self, name: &str) -> String {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name]);
        self.0.push(name.to_owned());
        name.to_owned()
    }

    /// Deletes `name` now.
    pub fn del(&mut self, name: &str) {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        self.0.retain(|n| n != name);
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        for n in self.0.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

#[cfg(feature = "netlink")]
mod handles;
#[cfg(feature = "netlink")]
pub use handles::*;
