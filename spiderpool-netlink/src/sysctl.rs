//! Sysctls under `/proc/sys`: read, compare, write.
//!
//! `/proc/sys/net` resolves against the netns of the thread that opens the file, so access for
//! a pod goes through [`ProcSys::in_netns`], which enters the netns on a short-lived thread per
//! access, or through files opened there ahead of time ([`crate::NetNs::handles`]): an open
//! sysctl file keeps referring to the netns it was opened in, so reading and writing it needs no
//! thread.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
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

/// A sysctl file opened in some netns: read-write, or read-only for keys root cannot write.
#[derive(Debug)]
pub struct OpenedSysctl {
    file: File,
    writable: bool,
}

/// Opens `keys` in the calling thread's netns (read-write when allowed). Keys that do not exist
/// map to `None`, so reading them later answers "not found" as [`read`] would.
pub fn open_files(keys: &[&str]) -> Result<BTreeMap<String, Option<OpenedSysctl>>> {
    let mut out = BTreeMap::new();
    for key in keys {
        let path = key_path(key)?;
        let opened = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => Some(OpenedSysctl {
                file,
                writable: true,
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            // Read-only keys (mode 0444) refuse write access even to root.
            Err(e) if e.kind() == ErrorKind::PermissionDenied => match File::open(&path) {
                Ok(file) => Some(OpenedSysctl {
                    file,
                    writable: false,
                }),
                Err(e) => return Err(sysctl_error(key, "open", e)),
            },
            Err(e) => return Err(sysctl_error(key, "open", e)),
        };
        out.insert((*key).to_string(), opened);
    }
    Ok(out)
}

impl OpenedSysctl {
    fn read(&self, key: &str) -> Result<String> {
        // Positioned reads from 0: the same handle serves every read and write.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 256];
        loop {
            let n = self
                .file
                .read_at(&mut chunk, buf.len() as u64)
                .map_err(|e| sysctl_error(key, "read", e))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(String::from_utf8_lossy(&buf).trim().to_string())
    }

    fn write(&self, key: &str, value: &str) -> Result<String> {
        let old = self.read(key)?;
        if old != value.trim() {
            if !self.writable {
                return Err(sysctl_error(
                    key,
                    "write",
                    std::io::Error::from(ErrorKind::PermissionDenied),
                ));
            }
            let n = self
                .file
                .write_at(value.as_bytes(), 0)
                .map_err(|e| sysctl_error(key, "write", e))?;
            if n != value.len() {
                return Err(sysctl_error(
                    key,
                    "write",
                    std::io::Error::from(ErrorKind::WriteZero),
                ));
            }
        }
        Ok(old)
    }
}

/// The real `/proc/sys`, in the calling thread's netns or in a given one.
#[derive(Debug, Default)]
pub struct ProcSys<'a> {
    netns: Option<&'a NetNs>,
    /// Files opened inside `netns` ahead of time; other keys go through a thread.
    opened: BTreeMap<String, Option<OpenedSysctl>>,
}

impl<'a> ProcSys<'a> {
    /// Sysctls of the calling thread's netns.
    pub fn here() -> ProcSys<'static> {
        ProcSys {
            netns: None,
            opened: BTreeMap::new(),
        }
    }

    /// Sysctls of `netns` (each access runs on a thread inside it).
    pub fn in_netns(netns: &'a NetNs) -> ProcSys<'a> {
        ProcSys {
            netns: Some(netns),
            opened: BTreeMap::new(),
        }
    }

    /// Sysctls of `netns`, with `opened` (from [`open_files`] run inside it) served without a
    /// thread.
    pub fn in_netns_with(
        netns: &'a NetNs,
        opened: BTreeMap<String, Option<OpenedSysctl>>,
    ) -> ProcSys<'a> {
        ProcSys {
            netns: Some(netns),
            opened,
        }
    }
}

impl SysctlAccess for ProcSys<'_> {
    fn read(&mut self, key: &str) -> Result<String> {
        if let Some(opened) = self.opened.get(key) {
            return match opened {
                Some(f) => f.read(key),
                None => Err(Error::not_found(format!("sysctl {key}"))),
            };
        }
        match self.netns {
            None => read(key),
            Some(ns) => ns.run(|| read(key)),
        }
    }

    fn write(&mut self, key: &str, value: &str) -> Result<String> {
        if let Some(opened) = self.opened.get(key) {
            return match opened {
                Some(f) => f.write(key, value),
                None => Err(Error::not_found(format!("sysctl {key}"))),
            };
        }
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
