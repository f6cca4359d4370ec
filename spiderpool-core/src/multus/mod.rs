//! SpiderMultusConfig → Multus NetworkAttachmentDefinition rendering (spec §6).
//!
//! [`render_nad`] turns a defaulted and validated [`crate::objects::SpiderMultusConfig`]
//! into the [`NetworkAttachmentDefinition`] upstream's controller would write, with the CNI
//! configuration (`spec.config`) byte-for-byte as upstream marshals it: the same plugin chain
//! (`ifacer`, main plugin, chained plugins, `coordinator`, `tuning`...) and the same key
//! order inside every plugin object.
//!
//! ```
//! use spiderpool_core::manifest::{SpiderObject, parse_documents};
//! use spiderpool_core::admission::{ClusterState, Operation, Switches, admit};
//! use spiderpool_core::multus::render_nad;
//!
//! let yaml = "apiVersion: spiderpool.spidernet.io/v2beta1
//! kind: SpiderMultusConfig
//! metadata: {name: macvlan-ens192}
//! spec: {cniType: macvlan, macvlan: {master: [ens192], ippools: {ipv4: [10-6-v4]}}}
//! ";
//! let obj = parse_documents(yaml)?.remove(0);
//! let Ok(SpiderObject::MultusConfig(smc)) =
//!     admit(Operation::Create, obj, None, &ClusterState::default(), &Switches::default())
//! else {
//!     panic!("rejected")
//! };
//! let nad = render_nad(&smc)?;
//! assert_eq!(
//!     nad.spec.config.as_deref(),
//!     Some(r#"{"cniVersion":"0.3.1","name":"macvlan-ens192","plugins":[{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool","default_ipv4_ippool":["10-6-v4"]}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#)
//! );
//! # Ok::<(), spiderpool_core::Error>(())
//! ```

mod error;
mod nad;
mod plugins;
mod render;

pub use error::RenderError;
pub use nad::{
    NAD_API_VERSION, NAD_KIND, NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec,
};
pub use render::{DEFAULT_NAMESPACE, nad_name, nad_namespace, render_nad};
