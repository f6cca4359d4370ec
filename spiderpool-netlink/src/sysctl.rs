//! Sysctls under `/proc/sys`: read, compare, write.
//!
//! `/proc/sys/net` resolves against the netns of the thread that opens the file, so writes for
//! a pod go through [`ProcSys::in_netns`], which enters the netns on a short-lived thread.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::netns::NetNs;

/// Reads and writes sysctls; implemented by [`ProcSys`] and by the fake.
pub trait SysctlAccess {
    /// The current value, trimmed.
    fn read(&mut self, key: &str) -> Result<String>;
    /// Writes `value` unless the current value is already equal; returns the previous value.
    fn write(&mut self, key: &str, value: &str) -> Result<String>;
}

/// The path of a sysctl key: `net.ipv4.conf.all.rp_filter` → `/proc/sys/net/ipv4/conf/all/
/// rp_filter`. A key written with `/` separators is taken as is, so interface names with dots
/// (`eth0.100`) can be addressed as `net/ipv4/conf/eth0.100/rp_filter`.
pub fn key_path(key: &str) -> Result<PathBuf> {
    if key.is_empty() || key.contains("..") || key.starts_with('/') || key.starts_with('.') {
        return Err(Error::invalid(format!("sysctl key {key:?}")));
    }
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    Ok(PathBuf::from("/proc/sys").join(rel))
}

/// Reads a sysctl in the calling thread's netns.
pub fn read(key: &str) -> Result<String> {
    let path = key_path(key)?;
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| sysctl_error(key, "read", e))
}

/// Writes a sysctl in the calling thread's netns unless it already has `value`; returns the
/// previous value.
pub fn write(key: &str, value: &str) -> Result<String> {
    let old = read(key)?;
    if old != value.trim() {
        let path = key_path(key)?;
        std::fs::write(&path, value).map_err(|e| sysctl_error(key, "write", e))?;
    }
    Ok(old)
}

fn sysctl_error(key: &str, what: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::not_found(format!("sysctl {key}"))
    } else {
        Error::io(format!("{what} sysctl {key}"), e)
    }
}

/// The real `/proc/sys`, in the calling thread's netns or in a given one.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSys<'a> {
    netns: Option<&'a NetNs>,
}

impl<'a> ProcSys<'a> {
    /// Sysctls of the calling thread's netns.
    pub fn here() -> ProcSys<'static> {
        ProcSys { netns: None }
    }

    /// Sysctls of `netns` (each access runs on a thread inside it).
    pub fn in_netns(netns: &'a NetNs) -> ProcSys<'a> {
        ProcSys { netns: Some(netns) }
    }
}

impl SysctlAccess for ProcSys<'_> {
    fn read(&mut self, key: &str) -> Result<String> {
        match self.netns {
            None => read(key),
            Some(ns) => ns.run(|| read(key)),
        }
    }

    fn write(&mut self, key: &str, value: &str) -> Result<String> {
        match self.netns {
            None => write(key, value),
            Some(ns) => ns.run(|| write(key, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_paths() {
        assert_eq!(
            key_path("net.ipv4.conf.all.rp_filter").ok(),
            Some(PathBuf::from("/proc/sys/net/ipv4/conf/all/rp_filter"))
        );
        assert_eq!(
            key_path("net/ipv4/conf/eth0.100/rp_filter").ok(),
            Some(PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter"))
        );
        assert!(key_path("net/../../etc/passwd").is_err());
        assert!(key_path("").is_err());
    }
}
