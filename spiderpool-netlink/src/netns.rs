//! Network namespaces: open one by path, run work inside it on a short-lived thread.
//!
//! `setns` changes the namespace of the calling *thread* only. Switching a pooled thread (an
//! async runtime's worker, `spawn_blocking`) would leave it in the wrong netns, so this module
//! never switches the caller: [`NetNs::run`] spawns a scoped thread, enters the netns there,
//! runs the closure and lets the thread exit. Sockets created inside stay bound to that netns,
//! and `/proc/sys/net` files opened there keep referring to it; [`NetNs::handles`] makes both
//! in one thread so later requests need none.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns, unshare};

use crate::error::{Error, Result};
use crate::socket::NetlinkSocket;
use crate::sysctl::{self, ProcSys};

/// The calling thread's own netns (not the thread-group leader's, which `/proc/self` shows).
const THREAD_SELF_NET: &str = "/proc/thread-self/ns/net";

/// An open handle on a network namespace. The namespace lives at least as long as the handle.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Opens the netns at `path` (`/var/run/netns/NAME`, `/proc/PID/ns/net`, a CNI_NETNS path).
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!("netns {}", path.display()))
            } else {
                Error::io(format!("open netns {}", path.display()), e)
            }
        })?;
        Ok(NetNs { file, path })
    }

    /// The calling thread's current netns.
    pub fn current() -> Result<NetNs> {
        NetNs::open(THREAD_SELF_NET)
    }

    /// Creates a new anonymous netns (on a short-lived thread that unshares) and returns a
    /// handle on it. It disappears when the last handle and the last socket in it are gone.
    pub fn create_anonymous() -> Result<NetNs> {
        run_on_thread(|| {
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io("unshare(CLONE_NEWNET)", e.into()))?;
            NetNs::current()
        })
    }

    /// The path the handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a new thread that has entered this netns, and returns its result. The
    /// calling thread never changes namespace.
    pub fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> Result<T> + Send,
    {
        let fd = self.file.as_fd();
        let path = &self.path;
        run_on_thread(move || {
            setns(fd, CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io(format!("setns {}", path.display()), e.into()))?;
            f()
        })
    }

    /// A `NETLINK_ROUTE` socket bound inside this netns.
    pub fn route_socket(&self) -> Result<NetlinkSocket> {
        self.run(NetlinkSocket::new)
    }

    /// A `NETLINK_ROUTE` socket and the sysctl files `sysctl_keys`, all opened inside this
    /// netns by one short-lived thread. Both keep referring to this netns, so reading and
    /// writing those keys afterwards starts no thread (other keys still do).
    pub fn handles(&self, sysctl_keys: &[&str]) -> Result<(NetlinkSocket, ProcSys<'_>)> {
        let (nl, files) =
            self.run(|| Ok((NetlinkSocket::new()?, sysctl::open_files(sysctl_keys)?)))?;
        Ok((nl, ProcSys::in_netns_with(self, files)))
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn run_on_thread<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(f).join().unwrap_or_else(|_| {
            Err(Error::io(
                "netns thread",
                std::io::Error::other("the thread panicked"),
            ))
        })
    })
}
