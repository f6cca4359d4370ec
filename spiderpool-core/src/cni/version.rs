//! CNI specification versions, which commands each allows, and the VERSION reply.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::command::Command;
use super::convert::to_go_json;
use super::error::CniError;

/// A CNI specification version that has a published result layout.
///
/// Ordered by release. Parsing is lenient where Go's `version.ParseVersion` is: missing minor or
/// patch parts count as `0` (`"1.0"` and `"1"` are `1.0.0`), but every part must be a decimal
/// number and there are at most three parts. A well-formed version that was never published
/// (`1.0.1`, `2.0.0`) is refused.
///
/// ```
/// use spiderpool_core::cni::{Command, SpecVersion};
///
/// let v: SpecVersion = "0.3.1".parse()?;
/// assert_eq!(v, SpecVersion::V0_3_1);
/// assert!(v < SpecVersion::V0_4_0);
/// assert!(!v.allows(Command::Check));
/// assert_eq!("1.0".parse::<SpecVersion>()?.to_string(), "1.0.0");
/// # Ok::<(), spiderpool_core::cni::CniError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecVersion {
    /// 0.1.0 (`ip4`/`ip6` result layout; parsed, not supported by our plugins).
    V0_1_0,
    /// 0.2.0 (`ip4`/`ip6` result layout; parsed, not supported by our plugins).
    V0_2_0,
    /// 0.3.0: `interfaces`/`ips`/`routes`/`dns` with `ips[].version`.
    V0_3_0,
    /// 0.3.1: same result layout as 0.3.0.
    V0_3_1,
    /// 0.4.0: same result layout as 0.3.x; adds CHECK.
    V0_4_0,
    /// 1.0.0: drops `ips[].version`.
    V1_0_0,
    /// 1.1.0: adds interface `mtu`/`socketPath`/`pciID`, route
    /// `mtu`/`advmss`/`priority`/`table`/`scope`, GC and STATUS.
    V1_1_0,
}

/// The result layout a version uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultLayout {
    /// 0.1.0 and 0.2.0: `ip4` / `ip6` objects (not implemented by this module).
    Legacy02,
    /// 0.3.0, 0.3.1 and 0.4.0: `ips[]` entries carry `version` (`"4"` / `"6"`).
    V04,
    /// 1.0.0 and 1.1.0.
    V1,
}

impl SpecVersion {
    /// Every version, oldest first.
    pub const ALL: [SpecVersion; 7] = [
        SpecVersion::V0_1_0,
        SpecVersion::V0_2_0,
        SpecVersion::V0_3_0,
        SpecVersion::V0_3_1,
        SpecVersion::V0_4_0,
        SpecVersion::V1_0_0,
        SpecVersion::V1_1_0,
    ];

    /// The versions our plugins (`spiderpool`, `coordinator`) accept, oldest first.
    pub const SUPPORTED: [SpecVersion; 5] = [
        SpecVersion::V0_3_0,
        SpecVersion::V0_3_1,
        SpecVersion::V0_4_0,
        SpecVersion::V1_0_0,
        SpecVersion::V1_1_0,
    ];

    /// The newest version this module implements (`1.1.0`), printed as `cniVersion` of the
    /// VERSION reply.
    pub const CURRENT: SpecVersion = SpecVersion::V1_1_0;

    /// The canonical text, e.g. `"0.3.1"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V0_1_0 => "0.1.0",
            SpecVersion::V0_2_0 => "0.2.0",
            SpecVersion::V0_3_0 => "0.3.0",
            SpecVersion::V0_3_1 => "0.3.1",
            SpecVersion::V0_4_0 => "0.4.0",
            SpecVersion::V1_0_0 => "1.0.0",
            SpecVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Whether it is in [`SpecVersion::SUPPORTED`].
    pub fn is_supported(self) -> bool {
        Self::SUPPORTED.contains(&self)
    }

    /// The result layout of this version.
    pub const fn layout(self) -> ResultLayout {
        match self {
            SpecVersion::V0_1_0 | SpecVersion::V0_2_0 => ResultLayout::Legacy02,
            SpecVersion::V0_3_0 | SpecVersion::V0_3_1 | SpecVersion::V0_4_0 => ResultLayout::V04,
            SpecVersion::V1_0_0 | SpecVersion::V1_1_0 => ResultLayout::V1,
        }
    }

    /// Whether a configuration of this version may be used with `cmd`: CHECK needs 0.4.0 or
    /// later, GC and STATUS need 1.1.0 or later; ADD, DEL and VERSION are always allowed.
    pub fn allows(self, cmd: Command) -> bool {
        match cmd {
            Command::Add | Command::Del | Command::Version => true,
            Command::Check => self >= SpecVersion::V0_4_0,
            Command::Gc | Command::Status => self >= SpecVersion::V1_1_0,
        }
    }

    /// Parses a version (see the type's documentation for the accepted forms).
    ///
    /// Errors are code 1 ([`super::ERR_INCOMPATIBLE_VERSION`]) and name the input.
    pub fn parse(text: &str) -> Result<Self, CniError> {
        let parts = text.split('.').collect::<Vec<_>>();
        if text.is_empty() {
            return Err(CniError::incompatible_version("empty CNI version"));
        }
        if parts.len() > 3 {
            return Err(CniError::incompatible_version(format!(
                "invalid CNI version {text:?}: too many parts"
            )));
        }
        let mut nums = [0u64; 3];
        for (slot, part) in nums.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CniError::incompatible_version(format!(
                    "invalid CNI version {text:?}: {part:?} is not a number"
                )));
            }
            *slot = part.parse().map_err(|_| {
                CniError::incompatible_version(format!(
                    "invalid CNI version {text:?}: {part:?} is out of range"
                ))
            })?;
        }
        Self::ALL
            .into_iter()
            .find(|v| v.numbers() == nums)
            .ok_or_else(|| {
                CniError::incompatible_version(format!(
                    "unknown CNI version {text:?}; known versions: {}",
                    join(&Self::ALL)
                ))
            })
    }

    fn numbers(self) -> [u64; 3] {
        match self {
            SpecVersion::V0_1_0 => [0, 1, 0],
            SpecVersion::V0_2_0 => [0, 2, 0],
            SpecVersion::V0_3_0 => [0, 3, 0],
            SpecVersion::V0_3_1 => [0, 3, 1],
            SpecVersion::V0_4_0 => [0, 4, 0],
            SpecVersion::V1_0_0 => [1, 0, 0],
            SpecVersion::V1_1_0 => [1, 1, 0],
        }
    }
}

fn join(versions: &[SpecVersion]) -> String {
    versions
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Go's `%q` of a `[]string`: `["0.3.0" "0.3.1"]`.
fn go_quoted_list(versions: &[SpecVersion]) -> String {
    let inner = versions
        .iter()
        .map(|v| format!("\"{}\"", v.as_str()))
        .collect::<Vec<_>>()
        .join(" ");
    format!("[{inner}]")
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SpecVersion {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SpecVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SpecVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Checks a configuration's `cniVersion` text against the versions a plugin supports and the
/// command being run, returning the version to answer in.
///
/// * unparsable, unknown or unsupported: code 1, `incompatible CNI versions`, with Go's details
///   `config is "X", plugin supports ["0.3.0" ...]`;
/// * known but too old for the command (CHECK before 0.4.0, GC/STATUS before 1.1.0): code 1,
///   `config version does not allow CHECK` (as Go's skel).
///
/// ```
/// use spiderpool_core::cni::{negotiate, Command, SpecVersion};
///
/// assert_eq!(negotiate("0.3.1", Command::Add, &SpecVersion::SUPPORTED)?, SpecVersion::V0_3_1);
/// let e = negotiate("0.3.1", Command::Check, &SpecVersion::SUPPORTED).unwrap_err();
/// assert_eq!((e.code, e.msg.as_str()), (1, "config version does not allow CHECK"));
/// let e = negotiate("0.2.0", Command::Add, &SpecVersion::SUPPORTED).unwrap_err();
/// assert_eq!(e.details, r#"config is "0.2.0", plugin supports ["0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#);
/// # Ok::<(), spiderpool_core::cni::CniError>(())
/// ```
pub fn negotiate(
    config_version: &str,
    cmd: Command,
    supported: &[SpecVersion],
) -> Result<SpecVersion, CniError> {
    let incompatible = || {
        CniError::incompatible_version("incompatible CNI versions").with_details(format!(
            "config is {config_version:?}, plugin supports {}",
            go_quoted_list(supported)
        ))
    };
    let version = SpecVersion::parse(config_version).map_err(|_| incompatible())?;
    if !version.allows(cmd) {
        return Err(CniError::incompatible_version(format!(
            "config version does not allow {cmd}"
        )));
    }
    if !supported.contains(&version) {
        return Err(incompatible());
    }
    Ok(version)
}

/// The reply to `CNI_COMMAND=VERSION`: `{"cniVersion": ..., "supportedVersions": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReply {
    /// The newest spec version the plugin implements.
    #[serde(rename = "cniVersion")]
    pub cni_version: SpecVersion,
    /// Every version the plugin accepts in a configuration.
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<SpecVersion>,
}

impl VersionReply {
    /// The reply of our plugins: `cniVersion` 1.1.0 and [`SpecVersion::SUPPORTED`].
    pub fn ours() -> Self {
        Self {
            cni_version: SpecVersion::CURRENT,
            supported_versions: SpecVersion::SUPPORTED.to_vec(),
        }
    }

    /// The reply as Go's skel writes it: compact JSON followed by a newline.
    pub fn to_json(&self) -> String {
        let mut text = to_go_json(self, false).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_version_parse_display_order() {
        for v in SpecVersion::ALL {
            assert_eq!(SpecVersion::parse(v.as_str()).unwrap(), v);
            assert_eq!(v.to_string(), v.as_str());
        }
        assert!(SpecVersion::ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(SpecVersion::parse("1").unwrap(), SpecVersion::V1_0_0);
        assert_eq!(SpecVersion::parse("1.1").unwrap(), SpecVersion::V1_1_0);
        assert_eq!(SpecVersion::parse("0.4").unwrap(), SpecVersion::V0_4_0);
        assert_eq!(SpecVersion::parse("01.0.0").unwrap(), SpecVersion::V1_0_0);
        for bad in [
            "", "1.0.1", "2.0.0", "1.0.0.0", "v1.0.0", "1..0", "+1.0.0", "1.0.x",
        ] {
            let e = SpecVersion::parse(bad).unwrap_err();
            assert_eq!(e.code, 1, "{bad}");
        }
        assert!(
            SpecVersion::parse("1.0.0.0")
                .unwrap_err()
                .msg
                .contains("too many parts")
        );
        assert!(
            SpecVersion::parse("1.0.1")
                .unwrap_err()
                .msg
                .contains("unknown CNI version \"1.0.1\"")
        );
    }

    #[test]
    fn cni_version_allows() {
        use Command::*;
        let v = SpecVersion::V0_3_1;
        assert!(v.allows(Add) && v.allows(Del) && v.allows(Version));
        assert!(!v.allows(Check) && !v.allows(Gc) && !v.allows(Status));
        assert!(SpecVersion::V0_4_0.allows(Check));
        assert!(!SpecVersion::V1_0_0.allows(Gc) && !SpecVersion::V1_0_0.allows(Status));
        assert!(SpecVersion::V1_1_0.allows(Gc) && SpecVersion::V1_1_0.allows(Status));
    }

    #[test]
    fn cni_version_layouts_and_supported() {
        assert_eq!(SpecVersion::V0_2_0.layout(), ResultLayout::Legacy02);
        assert_eq!(SpecVersion::V0_3_0.layout(), ResultLayout::V04);
        assert_eq!(SpecVersion::V1_1_0.layout(), ResultLayout::V1);
        assert!(!SpecVersion::V0_2_0.is_supported());
        assert!(SpecVersion::V0_3_0.is_supported());
    }

    #[test]
    fn cni_version_negotiate() {
        let s = &SpecVersion::SUPPORTED;
        assert_eq!(
            negotiate("1.1.0", Command::Gc, s).unwrap(),
            SpecVersion::V1_1_0
        );
        let e = negotiate("1.0.0", Command::Status, s).unwrap_err();
        assert_eq!(e.msg, "config version does not allow STATUS");
        let e = negotiate("banana", Command::Add, s).unwrap_err();
        assert_eq!(e.code, 1);
        assert_eq!(e.msg, "incompatible CNI versions");
        assert!(e.details.starts_with("config is \"banana\""));
        // A plugin limited to 1.x refuses 0.4.0 even though CHECK is allowed there.
        let e = negotiate("0.4.0", Command::Check, &[SpecVersion::V1_0_0]).unwrap_err();
        assert_eq!(e.details, r#"config is "0.4.0", plugin supports ["1.0.0"]"#);
    }

    #[test]
    fn cni_version_reply() {
        assert_eq!(
            VersionReply::ours().to_json(),
            "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
        );
        let back: VersionReply = serde_json::from_str(&VersionReply::ours().to_json()).unwrap();
        assert_eq!(back, VersionReply::ours());
    }
}
