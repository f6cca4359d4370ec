//! Kubernetes object metadata and label selectors, as plain data.
//!
//! Design decision: `spiderpool-core` keeps its own [`ObjectMeta`], [`OwnerReference`] and
//! [`LabelSelector`] instead of depending on `k8s-openapi`, so the core crate stays free of
//! Kubernetes client crates. The JSON field names are exactly Kubernetes' ones, so the
//! Kubernetes adapter converts to and from `k8s-openapi` types through serde
//! (`serde_json::to_value` / `from_value`) without hand-written mapping. Metadata fields this
//! crate does not model (`managedFields`, `generateName`, ...) are kept in
//! [`ObjectMeta::extra`], so they survive a read-modify-write round trip.

mod selector;
pub mod validation;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use selector::{LabelSelector, LabelSelectorRequirement, SelectorProblem, SelectorProblemKind};

/// Metadata of a Kubernetes object (`metadata`), with Kubernetes' JSON field names.
///
/// Every field is optional and omitted from JSON when absent; timestamps are kept as the
/// RFC 3339 text the apiserver wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name, unique per kind (and namespace, for namespaced kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace of a namespaced object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Unique id assigned by the apiserver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Opaque version used for optimistic concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Sequence number of the desired state (spec) generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Creation time (RFC 3339 text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Time the object was asked to be deleted (RFC 3339 text); set means "terminating".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Finalizers that must be removed before the object goes away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
    /// Objects this one depends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<Vec<OwnerReference>>,
    /// Every other metadata field, kept verbatim so it round-trips.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ObjectMeta {
    /// Metadata with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(String::as_str)
    }

    /// The value of annotation `key`, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// Sets label `key` to `value`, creating the map if needed.
    pub fn set_label(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
    }

    /// Sets annotation `key` to `value`, creating the map if needed.
    pub fn set_annotation(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
    }

    /// Whether `finalizer` is present.
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == finalizer))
    }

    /// Adds `finalizer` unless already present; returns whether it was added.
    pub fn add_finalizer(&mut self, finalizer: &str) -> bool {
        if self.has_finalizer(finalizer) {
            return false;
        }
        self.finalizers
            .get_or_insert_with(Vec::new)
            .push(finalizer.to_owned());
        true
    }

    /// Removes every occurrence of `finalizer`; returns whether one was removed. An emptied
    /// list becomes absent, as the apiserver would report it.
    pub fn remove_finalizer(&mut self, finalizer: &str) -> bool {
        let Some(list) = self.finalizers.as_mut() else {
            return false;
        };
        let before = list.len();
        list.retain(|f| f != finalizer);
        let removed = list.len() != before;
        if list.is_empty() {
            self.finalizers = None;
        }
        removed
    }

    /// Whether the object is terminating (has a deletion timestamp).
    pub fn is_terminating(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    /// The owner reference marked `controller: true`, if any.
    pub fn controller_owner(&self) -> Option<&OwnerReference> {
        self.owner_references
            .as_ref()?
            .iter()
            .find(|o| o.controller == Some(true))
    }
}

/// A reference from an object to its owner (`metadata.ownerReferences[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    /// API version of the owner, e.g. `spiderpool.spidernet.io/v2beta1`.
    pub api_version: String,
    /// Kind of the owner.
    pub kind: String,
    /// Name of the owner.
    pub name: String,
    /// UID of the owner.
    pub uid: String,
    /// Whether the owner is the managing controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Whether foreground deletion of the owner waits for this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_unknown_fields_round_trip() {
        let input = serde_json::json!({
            "name": "p",
            "generateName": "p-",
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            "labels": {"a": "b"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "x", "uid": "u",
                                 "controller": true, "futureField": 1}],
        });
        let meta: ObjectMeta = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(meta.name.as_deref(), Some("p"));
        assert_eq!(meta.label("a"), Some("b"));
        assert!(meta.extra.contains_key("managedFields"));
        assert_eq!(
            meta.controller_owner().map(|o| o.kind.as_str()),
            Some("Pod")
        );
        assert_eq!(serde_json::to_value(&meta).unwrap(), input);
    }

    #[test]
    fn meta_empty_serializes_to_empty_object() {
        assert_eq!(
            serde_json::to_value(ObjectMeta::default()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn meta_finalizers() {
        let mut m = ObjectMeta::named("x");
        assert!(m.add_finalizer("spiderpool.spidernet.io"));
        assert!(!m.add_finalizer("spiderpool.spidernet.io"));
        assert!(m.has_finalizer("spiderpool.spidernet.io"));
        assert!(m.remove_finalizer("spiderpool.spidernet.io"));
        assert_eq!(m.finalizers, None);
        assert!(!m.remove_finalizer("spiderpool.spidernet.io"));
    }
}
