//! Per-kind facts (plural, short name, scope) and the macro that writes each kind's
//! top-level struct, so the six kinds share one shape.

/// Static facts about one kind, as registered in its CRD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// `kind`, e.g. `SpiderIPPool`.
    pub kind: &'static str,
    /// Plural resource name, e.g. `spiderippools`.
    pub plural: &'static str,
    /// Singular resource name, e.g. `spiderippool`.
    pub singular: &'static str,
    /// Short name for kubectl, e.g. `sp`.
    pub short_name: &'static str,
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
    /// Whether `status` is a subresource (written through `/status`).
    pub status_subresource: bool,
}

/// Writes the top-level struct of a kind (`apiVersion`, `kind`, `metadata` + the given
/// fields), its constructor, and its [`super::SpiderResource`] impl.
macro_rules! spider_kind {
    (
        $(#[$meta:meta])*
        $name:ident = $info:expr, kind_default = $kd:literal, {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// Always `spiderpool.spidernet.io/v2beta1` (filled in when absent).
            #[serde(default = "crate::objects::kinds::default_api_version")]
            pub api_version: String,
            /// The kind name (filled in when absent).
            #[serde(default = $kd)]
            pub kind: String,
            /// Object metadata.
            #[serde(default)]
            pub metadata: crate::meta::ObjectMeta,
            $( $(#[$fmeta])* pub $field : $ty, )*
        }

        impl $name {
            fn default_kind() -> String {
                <Self as crate::objects::SpiderResource>::INFO.kind.to_owned()
            }
        }

        impl crate::objects::SpiderResource for $name {
            const INFO: crate::objects::KindInfo = $info;
            fn metadata(&self) -> &crate::meta::ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut crate::meta::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use spider_kind;

/// Default for a missing `apiVersion`.
pub(crate) fn default_api_version() -> String {
    super::API_VERSION.to_owned()
}
