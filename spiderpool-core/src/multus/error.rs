//! The errors of [`crate::multus`]: a SpiderMultusConfig that cannot be rendered.

use thiserror::Error;

/// Why a SpiderMultusConfig could not be rendered into a NetworkAttachmentDefinition.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A SpiderMultusConfig cannot be rendered into a NetworkAttachmentDefinition: a field
    /// its cniType needs is missing or unusable (admission would have refused it).
    #[error("SpiderMultusConfig {smc}: {field}: {reason}")]
    Config {
        /// `namespace/name` of the SpiderMultusConfig.
        smc: String,
        /// The field path, e.g. `spec.macvlan.bond`.
        field: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// An entry of `spec.chainCNIJsonData` is not a JSON CNI plugin object.
    #[error("SpiderMultusConfig {smc}: spec.chainCNIJsonData[{index}]: {reason}")]
    ChainPlugin {
        /// `namespace/name` of the SpiderMultusConfig.
        smc: String,
        /// Zero-based position of the entry.
        index: usize,
        /// Why it was refused.
        reason: String,
    },
    /// A field of the SpiderMultusConfig holds a value outside its set.
    #[error(transparent)]
    Object(#[from] crate::manifest::ManifestError),
}
