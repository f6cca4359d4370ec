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

/// What [`Marker::apply`] found in place of the marking before it installed it; an undo puts
/// exactly that back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marked {
    /// Nothing: the marking is new, and undoing it removes it.
    Added,
    /// The same marking: nothing changed, and there is nothing to undo (someone else, e.g. an
    /// earlier ADD, may rely on it).
    Unchanged,
    /// A different marking under the same name, as the marker describes it (for `nft`: the
    /// chains as `nft list` printed them); undoing hands it to [`Marker::restore`].
    Replaced(String),
}

/// Applies and removes reply-via-veth markings.
pub trait Marker {
    /// Installs the marking (idempotent) and says what was there before.
    fn apply(&mut self, mark: &ReplyViaVethMark) -> Result<Marked>;
    /// Removes it (absent = done).
    fn remove(&mut self, mark: &ReplyViaVethMark) -> Result<()>;
    /// Replaces the marking with `previous`, what [`Marked::Replaced`] described.
    fn restore(&mut self, mark: &ReplyViaVethMark, previous: &str) -> Result<()>;
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

/// Deletes the marking's two chains. Declaring the table and the chains first (a no-op for
/// existing ones) makes the deletes succeed when either is missing, in one transaction.
fn remove_script(mark: &ReplyViaVethMark) -> String {
    let chain = chain_prefix(mark);
    format!(
        "table inet spiderpool {{}}\n\
         add chain inet spiderpool {chain}-pre\n\
         add chain inet spiderpool {chain}-out\n\
         delete chain inet spiderpool {chain}-pre\n\
         delete chain inet spiderpool {chain}-out\n"
    )
}

/// The marking's chains out of `nft list table inet spiderpool`, as a script that re-creates
/// them (`nft list` prints a loadable ruleset); `None` when neither chain is there.
pub fn marking_of(listing: &str, mark: &ReplyViaVethMark) -> Option<String> {
    let chain = chain_prefix(mark);
    let heads = [
        format!("\tchain {chain}-pre {{"),
        format!("\tchain {chain}-out {{"),
    ];
    let mut blocks = String::new();
    let mut inside = false;
    for line in listing.lines() {
        if heads.iter().any(|h| line == h) {
            inside = true;
        }
        if inside {
            blocks.push_str(line);
            blocks.push('\n');
            // nft closes a chain with a tab and a brace on a line of its own.
            inside = line != "\t}";
        }
    }
    (!blocks.is_empty()).then(|| format!("table inet spiderpool {{\n{blocks}}}\n"))
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

    fn run(&self, script: String) -> Result<std::result::Result<String, NftFailure>> {
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

/// Runs `program -f -` on `script`; its stdout.
fn nft(program: &str, script: &str) -> std::result::Result<String, NftFailure> {
    let cmd_err = |message: String| {
        NftFailure::Run(Error::Command {
            program: program.into(),
            message,
        })
    };
    let mut child = Command::new(program)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
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
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NftFailure::Refused(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl NftMarker<'_> {
    /// Runs `script`; a refusal is an error naming the program.
    fn run_script(&self, script: String) -> Result<String> {
        match self.run(script)? {
            Ok(out) => Ok(out),
            Err(NftFailure::Run(e)) => Err(e),
            Err(NftFailure::Refused(m)) => Err(self.command_error(m)),
        }
    }

    /// The marking's chains as they are now (see [`marking_of`]).
    fn current(&self, mark: &ReplyViaVethMark) -> Result<Option<String>> {
        match self.run("list table inet spiderpool\n".into())? {
            Ok(listing) => Ok(marking_of(&listing, mark)),
            // No table, no marking.
            Err(NftFailure::Refused(m)) if m.contains("No such file") => Ok(None),
            Err(NftFailure::Refused(m)) => Err(self.command_error(m)),
            Err(NftFailure::Run(e)) => Err(e),
        }
    }
}

impl Marker for NftMarker<'_> {
    fn apply(&mut self, mark: &ReplyViaVethMark) -> Result<Marked> {
        let Some(before) = self.current(mark)? else {
            self.run_script(nft_script(mark))?;
            return Ok(Marked::Added);
        };
        // `nft -f` with a table block is additive: delete our chains in the same transaction
        // so re-applying does not duplicate the statements.
        self.run_script(remove_script(mark) + &nft_script(mark))?;
        // nft's own listing, before and after, tells whether anything changed.
        Ok(if self.current(mark)?.as_ref() == Some(&before) {
            Marked::Unchanged
        } else {
            Marked::Replaced(before)
        })
    }

    fn remove(&mut self, mark: &ReplyViaVethMark) -> Result<()> {
        self.run_script(remove_script(mark)).map(drop)
    }

    fn restore(&mut self, mark: &ReplyViaVethMark, previous: &str) -> Result<()> {
        self.run_script(remove_script(mark) + previous).map(drop)
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
    fn the_marking_is_cut_out_of_an_nft_listing_as_a_loadable_script() {
        let listing = "table inet spiderpool {\n\
            \tchain reply-veth0-pre {\n\
            \t\ttype filter hook prerouting priority mangle; policy accept;\n\
            \t\tiifname \"veth0\" ct state new ct mark set 0x00000001\n\
            \t}\n\
            \n\
            \tchain reply-veth1-out {\n\
            \t}\n\
            \n\
            \tchain reply-veth0-out {\n\
            \t\tct mark 0x00000001 meta mark set ct mark\n\
            \t}\n\
            }\n";
        assert_eq!(
            marking_of(listing, &veth0()).as_deref(),
            Some(
                "table inet spiderpool {\n\
                 \tchain reply-veth0-pre {\n\
                 \t\ttype filter hook prerouting priority mangle; policy accept;\n\
                 \t\tiifname \"veth0\" ct state new ct mark set 0x00000001\n\
                 \t}\n\
                 \tchain reply-veth0-out {\n\
                 \t\tct mark 0x00000001 meta mark set ct mark\n\
                 \t}\n\
                 }\n"
            )
        );
        assert_eq!(marking_of("table inet spiderpool {\n}\n", &veth0()), None);
    }

    #[test]
    fn a_missing_binary_is_named_in_the_error_on_apply_and_remove() {
        let mut m = NftMarker::default().with_program("/nonexistent/nft");
        let errors = [
            m.apply(&veth0()).err(),
            m.remove(&veth0()).err(),
            m.restore(&veth0(), "").err(),
        ];
        for err in errors {
            let err = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.starts_with("/nonexistent/nft: cannot run /nonexistent/nft"),
                "{err}"
            );
            assert!(err.contains("apt-get install nftables"), "{err}");
        }
    }
}
