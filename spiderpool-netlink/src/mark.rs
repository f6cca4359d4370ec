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
#[derive(Debug, Clone, Copy, Default)]
pub struct NftMarker<'a> {
    netns: Option<&'a NetNs>,
}

impl<'a> NftMarker<'a> {
    /// `nft` in `netns`.
    pub fn in_netns(netns: &'a NetNs) -> NftMarker<'a> {
        NftMarker { netns: Some(netns) }
    }

    fn run(&self, script: String) -> Result<()> {
        let go = move || nft(&script);
        match self.netns {
            Some(ns) => ns.run(go),
            None => go(),
        }
    }
}

fn nft(script: &str) -> Result<()> {
    let cmd_err = |message: String| Error::Command {
        program: "nft".into(),
        message,
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            cmd_err(format!(
                "cannot run nft ({e}); the underlay reply-via-veth marking needs the nftables \
                 package (Debian: apt-get install nftables)"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| cmd_err(format!("writing the script: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cmd_err(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(cmd_err(format!(
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
        let _ = self.remove(mark);
        self.run(nft_script(mark))
    }

    fn remove(&mut self, mark: &ReplyViaVethMark) -> Result<()> {
        let chain = chain_prefix(mark);
        let script = format!(
            "table inet spiderpool {{}}\n\
             delete chain inet spiderpool {chain}-pre\n\
             delete chain inet spiderpool {chain}-out\n"
        );
        match self.run(script) {
            Ok(()) => Ok(()),
            Err(Error::Command { message, .. }) if message.contains("No such file") => Ok(()),
            Err(e) => Err(e),
        }
    }
}
