//! The reply-via-veth connection marking (see `docs/netlink.md` for why `nft` is used).
//!
//! The mark is set with the host's `nft` binary, run from a thread inside the target netns, in
//! a table of our own (`inet spiderpool`), so it never touches other rules. A missing `nft`
//! gives a clear [`Error::Command`].

use std::io::Write;
use std::process::{Command, Stdio};

use spiderpool_core::coordinator::ReplyViaVethMark;

use crate::error::{Error, Result};
use crate::netns::NetNs;

/// Applies and removes reply-via-veth markings.
pub trait Marker {
    /// Installs the marking (idempotent).
    fn apply(&mut self, mark: &ReplyViaVethMark) -> Result<()>;
    /// Removes it (absent = done).
    fn remove(&mut self, mark: &ReplyViaVethMark) -> Result<()>;
}

/// The `nft` script for a marking: new connections entering `iface` get `mark` in conntrack,
/// and locally generated packets (the replies) get the connection's mark back, so the rule
/// `fwmark <mark> lookup <table>` routes them out by `iface`.
pub fn nft_script(mark: &ReplyViaVethMark) -> String {
    let chain = chain_prefix(mark);
    format!(
        "table inet spiderpool {{\n\
         \tchain {chain}-pre {{ type filter hook prerouting priority mangle; \
         iifname \"{iface}\" ct state new ct mark set {m:#x}; }}\n\
         \tchain {chain}-out {{ type route hook output priority mangle; \
         ct mark {m:#x} meta mark set ct mark; }}\n}}\n",
        iface = mark.iface,
        m = mark.mark,
    )
}

fn chain_prefix(mark: &ReplyViaVethMark) -> String {
    format!("reply-{}", mark.iface)
}

/// Runs `nft` in a netns (or the caller's).
#[derive(Debug, Clone, Copy)]
pub struct NftMarker<'a> {
    netns: Option<&'a NetNs>,
    program: &'a str,
}

impl Default for NftMarker<'_> {
    fn default() -> Self {
        NftMarker {
            netns: None,
            program: "nft",
        }
    }
}

/// Why running `nft` failed.
enum NftFailure {
    /// The program could not be started (missing binary) or talked to.
    Run(Error),
    /// `nft` ran and refused the script; its stderr.
    Refused(String),
}

impl<'a> NftMarker<'a> {
    /// `nft` in `netns`.
    pub fn in_netns(netns: &'a NetNs) -> NftMarker<'a> {
        NftMarker {
            netns: Some(netns),
            ..NftMarker::default()
        }
    }

    /// The same marker running `program` (a path or a name looked up in `PATH`) instead of `nft`.
    pub fn with_program(self, program: &'a str) -> NftMarker<'a> {
        NftMarker { program, ..self }
    }

    fn run(&self, script: String) -> Result<std::result::Result<(), NftFailure>> {
        let program = self.program;
        let go = move || Ok(nft(program, &script));
        match self.netns {
            Some(ns) => ns.run(go),
            None => go(),
        }
    }

    fn command_error(&self, message: String) -> Error {
        Error::Command {
            program: self.program.into(),
            message,
        }
    }
}

fn nft(program: &str, script: &str) -> std::result::Result<(), NftFailure> {
    let cmd_err = |message: String| {
        NftFailure::Run(Error::Command {
            program: program.into(),
            message,
        })
    };
    let mut child = Command::new(program)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            cmd_err(format!(
                "cannot run {program} ({e}); the underlay reply-via-veth marking needs the nft \
                 binary of the nftables package (Debian: apt-get install nftables)"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| cmd_err(format!("writing the script: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cmd_err(format!("waiting for {program}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftFailure::Refused(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Marker for NftMarker<'_> {
    fn apply(&mut self, mark: &ReplyViaVethMark) -> Result<()> {
        // `nft -f` with a table block is additive; delete our chains first so re-applying
        // does not duplicate the statements.
        self.remove(mark)?;
        match self.run(nft_script(mark))? {
            Ok(()) => Ok(()),
            Err(NftFailure::Run(e)) => Err(e),
            Err(NftFailure::Refused(m)) => Err(self.command_error(m)),
        }
    }

    fn remove(&mut self, mark: &ReplyViaVethMark) -> Result<()> {
        let chain = chain_prefix(mark);
        // Declaring the table first makes the deletes work when it does not exist yet.
        let script = format!(
            "table inet spiderpool {{}}\n\
             delete chain inet spiderpool {chain}-pre\n\
             delete chain inet spiderpool {chain}-out\n"
        );
        match self.run(script)? {
            Ok(()) => Ok(()),
            // A chain that is not there (nft says ENOENT) is already removed.
            Err(NftFailure::Refused(m)) if m.contains("No such file") => Ok(()),
            Err(NftFailure::Refused(m)) => Err(self.command_error(m)),
            Err(NftFailure::Run(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use spiderpool_core::coordinator::Family;

    use super::*;

    fn veth0() -> ReplyViaVethMark {
        ReplyViaVethMark {
            iface: "veth0".into(),
            mark: 1,
            table: 100,
            families: vec![Family::V4],
        }
    }

    #[test]
    fn script_marks_new_connections_and_restores_the_mark_on_output() {
        assert_eq!(
            nft_script(&veth0()),
            "table inet spiderpool {\n\
             \tchain reply-veth0-pre { type filter hook prerouting priority mangle; \
             iifname \"veth0\" ct state new ct mark set 0x1; }\n\
             \tchain reply-veth0-out { type route hook output priority mangle; \
             ct mark 0x1 meta mark set ct mark; }\n}\n"
        );
    }

    #[test]
    fn a_missing_binary_is_named_in_the_error_on_apply_and_remove() {
        let mut m = NftMarker::default().with_program("/nonexistent/nft");
        for err in [m.apply(&veth0()), m.remove(&veth0())] {
            let err = err.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.starts_with("/nonexistent/nft: cannot run /nonexistent/nft"),
                "{err}"
            );
            assert!(err.contains("apt-get install nftables"), "{err}");
        }
    }
}
