//! Spiderpool kinds as seen by the client: their [`ApiResource`]s and the conversion between
//! the apiserver's dynamic objects and `spiderpool-core`'s typed objects.
//!
//! Core keeps its own object model (no kube in its tree), so the Kubernetes side talks
//! [`DynamicObject`] and converts through serde: the JSON on the wire is the same. The
//! Kubernetes store, on every agent's hot path, keeps objects as their JSON text instead
//! ([`RawObject`]) and decodes them straight into core's types.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use kube::core::DynamicResourceScope;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
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
    version_of(&obj.metadata)
}

/// `namespace/name` (or `name`) of a dynamic object, for messages.
pub fn display_name(obj: &DynamicObject) -> String {
    name_of(&obj.metadata)
}

fn version_of(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn name_of(meta: &ObjectMeta) -> String {
    match (&meta.namespace, &meta.name) {
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

/// A Spiderpool object as the store reads and writes it: the JSON text as it came off the
/// wire (or as it goes on it), with only its identity read at once. [`RawObject::decode`]
/// makes core's typed object from the text in one pass when it is needed.
///
/// The store's watches and writes use it instead of [`DynamicObject`], which decodes every
/// object into a tree of JSON values that [`from_dynamic`] then serialises and decodes
/// again: three passes and their allocations for each event, on every agent, for every
/// pool status write of every node. With the text kept, an event the store already has
/// (its own writes come back through its watches) costs a scan of the text.
#[derive(Clone, Debug)]
pub struct RawObject {
    /// Name, namespace, resourceVersion and uid; nothing else (what kube's watcher and
    /// messages need).
    metadata: ObjectMeta,
    json: Box<RawValue>,
}

/// The part of `metadata` a [`RawObject`] reads at once.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Identity {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    uid: Option<String>,
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    metadata: Identity,
}

impl RawObject {
    fn from_json(json: Box<RawValue>) -> serde_json::Result<Self> {
        let head: Head = serde_json::from_str(json.get())?;
        let Identity {
            name,
            namespace,
            resource_version,
            uid,
        } = head.metadata;
        Ok(RawObject {
            metadata: ObjectMeta {
                name,
                namespace,
                resource_version,
                uid,
                ..ObjectMeta::default()
            },
            json,
        })
    }

    /// `obj` as it goes on the wire.
    pub fn encode<T: SpiderResource + Serialize>(obj: &T) -> Result<Self> {
        let encode = |e: serde_json::Error| Error::Decode {
            kind: T::INFO.kind.to_owned(),
            name: obj.name().to_owned(),
            reason: e.to_string(),
        };
        let json = serde_json::value::to_raw_value(obj).map_err(encode)?;
        RawObject::from_json(json).map_err(encode)
    }

    /// The typed core object, `managedFields` dropped (field-manager bookkeeping, not part of
    /// the object model, and large).
    pub fn decode<T: SpiderResource + DeserializeOwned>(&self) -> Result<T> {
        let mut obj: T = serde_json::from_str(self.json.get()).map_err(|e| Error::Decode {
            kind: T::INFO.kind.to_owned(),
            name: self.display_name(),
            reason: e.to_string(),
        })?;
        obj.metadata_mut().extra.remove("managedFields");
        Ok(obj)
    }

    /// `metadata.resourceVersion` as a number (0 when absent), as [`resource_version`].
    pub fn version(&self) -> u64 {
        version_of(&self.metadata)
    }

    /// `metadata.name` (`""` when absent).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace`, for namespaced kinds.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata.namespace.as_deref()
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> Option<&str> {
        self.metadata.uid.as_deref()
    }

    /// `namespace/name` (or `name`), for messages, as [`display_name`].
    pub fn display_name(&self) -> String {
        name_of(&self.metadata)
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Needs serde_json's own deserializer (kube decodes responses and watch lines with
        // it; the apiserver writes a watch event's "type" before its "object", so serde
        // hands the object over without buffering it).
        let json = Box::<RawValue>::deserialize(d)?;
        RawObject::from_json(json).map_err(serde::de::Error::custom)
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

/// Like [`DynamicObject`]'s: the kind comes from the [`ApiResource`] the `Api` is made with.
/// `meta_mut` edits do not reach the JSON text (kube's `Api` and watcher only read them).
impl Resource for RawObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kube::api::WatchEvent;
    use spiderpool_core::objects::{SpiderIPPool, SpiderIPPoolSpec};

    fn pool_json(status: &str) -> String {
        format!(
            r#"{{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool",
            "metadata":{{"name":"p1","resourceVersion":"42","uid":"u-1","labels":{{"a":"b"}},
            "managedFields":[{{"manager":"spiderpool-agent","operation":"Update"}}]}},
            "spec":{{"subnet":"10.6.0.0/16","ips":["10.6.212.100-10.6.212.200"]}},
            "status":{status}}}"#
        )
    }

    #[test]
    fn k8s_raw_object_reads_a_watch_line_as_kube_decodes_it() {
        let line = format!(
            r#"{{"type":"MODIFIED","object":{}}}"#,
            pool_json(r#"{"blocks":[{"node":"n1","ips":["10.6.212.100-10.6.212.115"]}]}"#)
        );
        let WatchEvent::Modified(obj) =
            serde_json::from_str::<WatchEvent<RawObject>>(&line).unwrap()
        else {
            panic!("not a MODIFIED event");
        };
        assert_eq!(
            (obj.name(), obj.namespace(), obj.version(), obj.uid()),
            ("p1", None, 42, Some("u-1"))
        );
        assert_eq!(obj.meta().resource_version.as_deref(), Some("42"));
        let pool: SpiderIPPool = obj.decode().unwrap();
        assert_eq!(pool.spec.subnet, "10.6.0.0/16");
        let blocks = pool.status.unwrap().blocks.unwrap();
        assert_eq!(blocks[0].ips, vec!["10.6.212.100-10.6.212.115".to_owned()]);
        assert!(!pool.metadata.extra.contains_key("managedFields"));
        assert_eq!(pool.metadata.labels.unwrap()["a"], "b");
    }

    #[test]
    fn k8s_raw_object_of_a_misshapen_object_names_it_when_decoded() {
        let obj: RawObject = serde_json::from_str(&pool_json(r#"{"blocks":"n1"}"#)).unwrap();
        // Its identity is read (the watch goes on); the typed object is refused, by name.
        assert_eq!(obj.version(), 42);
        let err = obj.decode::<SpiderIPPool>().unwrap_err().to_string();
        assert!(err.starts_with("SpiderIPPool p1: invalid type"), "{err}");
    }

    #[test]
    fn k8s_raw_object_encodes_what_it_decodes() {
        let mut pool = SpiderIPPool::new(
            "p2",
            SpiderIPPoolSpec {
                subnet: "10.7.0.0/16".into(),
                ..Default::default()
            },
        );
        pool.metadata.resource_version = Some("7".into());
        let raw = RawObject::encode(&pool).unwrap();
        assert_eq!((raw.name(), raw.version()), ("p2", 7));
        assert_eq!(
            serde_json::to_value(&raw).unwrap(),
            serde_json::to_value(&pool).unwrap()
        );
        assert_eq!(raw.decode::<SpiderIPPool>().unwrap(), pool);
    }
}
