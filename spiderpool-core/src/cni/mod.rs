//! The CNI specification as plain Rust types, for our two plugins (`spiderpool` IPAM and
//! `coordinator`).
//!
//! Pure: the binary hands in its environment variables and stdin bytes, gets typed values
//! back, and prints the strings these types produce. Behaviour follows Go's
//! `containernetworking/cni` (`skel`, `types`, `version`) where the spec leaves room, so our
//! plugins are interchangeable with Go ones; deliberate differences are listed in `docs/cni.md`.
//!
//! | step | items |
//! |---|---|
//! | environment | [`CniEnv::from_vars`] → [`Command`], container ID, netns, ifname, [`CniArgs`], `CNI_PATH` |
//! | stdin | [`NetConf::parse`] (common keys + plugin keys), [`NetConf::negotiate`] → [`SpecVersion`] |
//! | versions | [`SpecVersion`] (0.1.0..1.1.0), [`SpecVersion::SUPPORTED`], [`SpecVersion::allows`], [`VersionReply`] |
//! | results | [`Result100`] (the 1.1.0 model), [`Result100::parse`] / [`NetConf::prev_result`] from any supported version, [`Result100::to_json_pretty`] in any supported version |
//! | failure | [`CniError`] with the spec's codes ([`ERR_INVALID_ENV`], [`ERR_DECODE`], ...) |
//!
//! A plugin's main, in outline:
//!
//! ```
//! use spiderpool_core::cni::*;
//!
//! fn run(vars: Vec<(String, String)>, stdin: &[u8]) -> Result<String, CniError> {
//!     let env = CniEnv::from_vars(vars)?;
//!     if env.command() == Command::Version {
//!         return Ok(VersionReply::ours().to_json());
//!     }
//!     let conf = NetConf::parse(stdin)?;
//!     let version = conf.negotiate(env.command(), &SpecVersion::SUPPORTED)?;
//!     match env.command() {
//!         // A chained plugin passes its prevResult on, in the version it answers in.
//!         Command::Add => match conf.prev_result()? {
//!             Some(prev) => prev.result.to_json_pretty(version),
//!             None => Result100::default().to_json_pretty(version),
//!         },
//!         _ => Ok(String::new()),
//!     }
//! }
//!
//! let vars = [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1"), ("CNI_NETNS", "/var/run/netns/p"),
//!             ("CNI_IFNAME", "net1"), ("CNI_PATH", "/opt/cni/bin")];
//! let vars = vars.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec();
//! let stdin = br#"{"cniVersion":"1.0.0","name":"n","type":"coordinator",
//!     "prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.6.212.145/16","gateway":"10.6.0.1"}]}}"#;
//! let out = run(vars, stdin).unwrap();
//! assert!(out.starts_with("{\n    \"cniVersion\": \"1.0.0\",\n    \"ips\": ["));
//! ```

mod command;
mod config;
mod convert;
mod env;
mod error;
mod result;
mod version;

pub use command::Command;
pub use config::{GcAttachment, NetConf, VALID_ATTACHMENTS_KEY};
pub use env::{
    CniArgs, CniEnv, ENV_ARGS, ENV_COMMAND, ENV_CONTAINERID, ENV_IFNAME, ENV_NETNS,
    ENV_NETNS_OVERRIDE, ENV_PATH, MAX_IFNAME_LEN, is_valid_cni_name, validate_container_id,
    validate_ifname,
};
pub use error::{
    CniError, ERR_DECODE, ERR_INCOMPATIBLE_VERSION, ERR_INTERNAL, ERR_INVALID_CONFIG,
    ERR_INVALID_ENV, ERR_INVALID_NETNS, ERR_IO, ERR_LIMITED_CONNECTIVITY, ERR_PLUGIN_NOT_AVAILABLE,
    ERR_TRY_AGAIN_LATER, ERR_UNKNOWN_CONTAINER, ERR_UNSUPPORTED_FIELD, ErrorCode,
};
pub use result::{Dns, Interface, IpConfig, Result100, Route, VersionedResult};
pub use version::{ResultLayout, SpecVersion, VersionReply, negotiate};
