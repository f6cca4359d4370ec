//! The CNI operations (`CNI_COMMAND`).

use std::fmt;
use std::str::FromStr;

use super::error::CniError;

/// A CNI operation, as named by `CNI_COMMAND` (upper case, matched exactly as Go's skel does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `ADD`: attach the container to the network.
    Add,
    /// `DEL`: detach it; must succeed when things are already gone.
    Del,
    /// `CHECK`: verify the attachment (spec 0.4.0 and later).
    Check,
    /// `VERSION`: report the supported spec versions; no stdin config.
    Version,
    /// `GC`: release everything not in `cni.dev/valid-attachments` (spec 1.1.0 and later).
    Gc,
    /// `STATUS`: can the plugin serve ADD right now (spec 1.1.0 and later).
    Status,
}

impl Command {
    /// Every command.
    pub const ALL: [Command; 6] = [
        Command::Add,
        Command::Del,
        Command::Check,
        Command::Version,
        Command::Gc,
        Command::Status,
    ];

    /// The `CNI_COMMAND` spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }

    /// Whether the command is about one attachment, so that `CNI_CONTAINERID`, `CNI_IFNAME`
    /// and `CNI_ARGS` apply (ADD, DEL, CHECK).
    pub const fn is_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }

    /// Whether `CNI_CONTAINERID` must be set (ADD, DEL, CHECK).
    pub const fn requires_container_id(self) -> bool {
        self.is_attachment()
    }

    /// Whether `CNI_NETNS` must be set (ADD, CHECK; not DEL, whose netns may be gone).
    pub const fn requires_netns(self) -> bool {
        matches!(self, Command::Add | Command::Check)
    }

    /// Whether `CNI_IFNAME` must be set (ADD, DEL, CHECK).
    pub const fn requires_ifname(self) -> bool {
        self.is_attachment()
    }

    /// Whether `CNI_PATH` must be set (every command but VERSION).
    pub const fn requires_path(self) -> bool {
        !matches!(self, Command::Version)
    }

    /// Whether the command reads a network configuration on stdin (every command but VERSION).
    pub const fn reads_config(self) -> bool {
        !matches!(self, Command::Version)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = CniError;

    /// Code 4 ([`super::ERR_INVALID_ENV`]) `unknown CNI_COMMAND: X` for anything else.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| CniError::invalid_env(format!("unknown CNI_COMMAND: {s}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_command_parse() {
        for c in Command::ALL {
            assert_eq!(c.as_str().parse::<Command>().unwrap(), c);
            assert_eq!(c.to_string(), c.as_str());
        }
        let e = "add".parse::<Command>().unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (4, "unknown CNI_COMMAND: add"));
    }

    #[test]
    fn cni_command_requirements_matrix() {
        use Command::*;
        let row = |c: Command| {
            (
                c.requires_container_id(),
                c.requires_netns(),
                c.requires_ifname(),
                c.requires_path(),
            )
        };
        assert_eq!(row(Add), (true, true, true, true));
        assert_eq!(row(Check), (true, true, true, true));
        assert_eq!(row(Del), (true, false, true, true));
        assert_eq!(row(Gc), (false, false, false, true));
        assert_eq!(row(Status), (false, false, false, true));
        assert_eq!(row(Version), (false, false, false, false));
    }
}
