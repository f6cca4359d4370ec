//! The Multus NetworkAttachmentDefinition (`k8s.cni.cncf.io/v1`), as plain data.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;

/// `apiVersion` of a NetworkAttachmentDefinition.
pub const NAD_API_VERSION: &str = "k8s.cni.cncf.io/v1";
/// `kind` of a NetworkAttachmentDefinition.
pub const NAD_KIND: &str = "NetworkAttachmentDefinition";

/// A Multus NetworkAttachmentDefinition (namespaced, `network-attachment-definitions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAttachmentDefinition {
    /// Always `k8s.cni.cncf.io/v1` (filled in when absent).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Always `NetworkAttachmentDefinition` (filled in when absent).
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The CNI configuration.
    #[serde(default)]
    pub spec: NetworkAttachmentDefinitionSpec,
}

/// `NetworkAttachmentDefinition.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachmentDefinitionSpec {
    /// The CNI configuration as a JSON string. Absent: Multus uses the on-disk CNI config
    /// whose `name` is the NAD's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

fn default_api_version() -> String {
    NAD_API_VERSION.to_owned()
}

fn default_kind() -> String {
    NAD_KIND.to_owned()
}

impl NetworkAttachmentDefinition {
    /// An empty NAD with `metadata` and no config.
    pub fn new(metadata: ObjectMeta) -> Self {
        Self {
            api_version: default_api_version(),
            kind: default_kind(),
            metadata,
            spec: NetworkAttachmentDefinitionSpec::default(),
        }
    }

    /// The controller owner reference naming a SpiderMultusConfig, if any.
    pub fn owning_multus_config(&self) -> Option<&str> {
        self.metadata
            .owner_references
            .as_ref()?
            .iter()
            .find(|o| o.kind == crate::objects::MULTUSCONFIG.kind)
            .map(|o| o.name.as_str())
    }
}
