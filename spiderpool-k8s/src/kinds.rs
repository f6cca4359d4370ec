//! Spiderpool kinds as seen by the client: their [`ApiResource`]s and the conversion between
//! the apiserver's dynamic objects and `spiderpool-core`'s typed objects.
//!
//! Core keeps its own object model (no kube in its tree), so the Kubernetes side talks
//! [`DynamicObject`] and converts through serde: the JSON on the wire is the same.

use kube::api::{ApiResource, DynamicObject};
use serde::Serialize;
use serde::de::DeserializeOwned;
use spiderpool_core::objects::{API_VERSION, GROUP, KindInfo, SpiderResource, VERSION};

use crate::error::{Error, Result};

/// The [`ApiResource`] of a Spiderpool kind.
pub fn api_resource(info: &KindInfo) -> ApiResource {
    ApiResource {
        group: GROUP.to_owned(),
        version: VERSION.to_owned(),
        api_version: API_VERSION.to_owned(),
        kind: info.kind.to_owned(),
        plural: info.plural.to_owned(),
    }
}

/// The [`ApiResource`] of `T`.
pub fn api_resource_of<T: SpiderResource>() -> ApiResource {
    api_resource(&T::INFO)
}

/// `metadata.resourceVersion` as a number (0 when absent). kube-apiserver on etcd writes the
/// etcd revision there; the store compares them to drop stale watch events.
pub fn resource_version(obj: &DynamicObject) -> u64 {
    obj.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `namespace/name` (or `name`) of a dynamic object, for messages.
pub fn display_name(obj: &DynamicObject) -> String {
    match (&obj.metadata.namespace, &obj.metadata.name) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (None, Some(n)) => n.clone(),
        _ => "<unnamed>".to_owned(),
    }
}

/// A dynamic object as the typed core object `T`.
pub fn from_dynamic<T: SpiderResource + DeserializeOwned>(obj: &DynamicObject) -> Result<T> {
    let decode = |reason: String| Error::Decode {
        kind: T::INFO.kind.to_owned(),
        name: display_name(obj),
        reason,
    };
    let mut value = serde_json::to_value(obj).map_err(|e| decode(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        // Field-manager bookkeeping is not part of the object model (and is large).
        if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.remove("managedFields");
        }
        map.entry("apiVersion")
            .or_insert_with(|| API_VERSION.into());
        map.entry("kind").or_insert_with(|| T::INFO.kind.into());
    }
    serde_json::from_value(value).map_err(|e| decode(e.to_string()))
}

/// A typed core object as a dynamic object for the client.
pub fn to_dynamic<T: SpiderResource + Serialize>(obj: &T) -> Result<DynamicObject> {
    let value = serde_json::to_value(obj).map_err(|e| Error::Decode {
        kind: T::INFO.kind.to_owned(),
        name: obj.metadata().name.clone().unwrap_or_default(),
        reason: e.to_string(),
    })?;
    serde_json::from_value(value).map_err(|e| Error::Decode {
        kind: T::INFO.kind.to_owned(),
        name: obj.metadata().name.clone().unwrap_or_default(),
        reason: e.to_string(),
    })
}
