//! Watch caches of what admission compares against: every Spiderpool kind with a webhook
//! and the metadata of the Multus NetworkAttachmentDefinitions. A request takes a snapshot
//! ([`ClusterState`]) instead of listing the apiserver; the snapshot is rebuilt only after
//! a change, so a burst of reviews against 1000 pools shares one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use spiderpool_core::admission::ClusterState;
use spiderpool_core::manifest::SpiderObject;
use spiderpool_core::meta::ObjectMeta;
use spiderpool_core::objects::{KindInfo, MULTUSCONFIG};

use super::review::KINDS;

/// Which list an object goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    /// One of [`KINDS`], by index.
    Kind(usize),
    /// NetworkAttachmentDefinitions (metadata only).
    Nad,
}

impl Slot {
    fn bit(self) -> u32 {
        match self {
            Slot::Kind(i) => 1 << i,
            Slot::Nad => 1 << KINDS.len(),
        }
    }
}

const ALL_SYNCED: u32 = (1 << (KINDS.len() + 1)) - 1;

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<(Slot, String), Entry>,
    snapshot: Option<Arc<ClusterState>>,
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per object; boxing buys nothing here
enum Entry {
    Object(SpiderObject),
    Nad(ObjectMeta),
}

/// The caches; cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Cache {
    inner: Mutex<Inner>,
    synced: AtomicU32,
}

impl Cache {
    /// Whether every watch has listed once.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire) == ALL_SYNCED
    }

    /// The objects as they are now.
    pub fn snapshot(&self) -> Arc<ClusterState> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = &inner.snapshot {
            return s.clone();
        }
        let mut state = ClusterState::default();
        for entry in inner.objects.values() {
            match entry {
                Entry::Object(o) => push(&mut state, o.clone()),
                Entry::Nad(m) => state.nads.push(m.clone()),
            }
        }
        let state = Arc::new(state);
        inner.snapshot = Some(state.clone());
        state
    }

    fn edit(&self, f: impl FnOnce(&mut BTreeMap<(Slot, String), Entry>)) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut inner.objects);
        inner.snapshot = None;
    }

    /// Adds objects as if watched (tests, benchmarks).
    pub fn insert(&self, obj: SpiderObject) {
        if let Some(i) = KINDS.iter().position(|k| k.kind == obj.kind()) {
            let key = (Slot::Kind(i), key_of(obj.metadata()));
            self.edit(|m| {
                m.insert(key, Entry::Object(obj));
            });
        }
    }
}

/// Appends without `ClusterState::upsert`'s search: keys are unique already.
fn push(state: &mut ClusterState, obj: SpiderObject) {
    match obj {
        SpiderObject::IPPool(o) => state.pools.push(o),
        SpiderObject::Subnet(o) => state.subnets.push(o),
        SpiderObject::ReservedIP(o) => state.reserved_ips.push(o),
        SpiderObject::MultusConfig(o) => state.multus_configs.push(o),
        SpiderObject::Coordinator(o) => state.coordinators.push(o),
        SpiderObject::Endpoint(_) => {}
    }
}

fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// The Multus NetworkAttachmentDefinition resource.
fn nad_resource() -> ApiResource {
    ApiResource {
        group: "k8s.cni.cncf.io".to_owned(),
        version: "v1".to_owned(),
        api_version: "k8s.cni.cncf.io/v1".to_owned(),
        kind: "NetworkAttachmentDefinition".to_owned(),
        plural: "network-attachment-definitions".to_owned(),
    }
}

/// Reads one watched object; `None` (logged) for one core cannot read, e.g. a broken spec
/// written while no webhook ran: it cannot take part in the checks.
fn entry(slot: Slot, obj: &DynamicObject) -> Option<((Slot, String), Entry)> {
    let mut value = serde_json::to_value(obj).ok()?;
    if matches!(slot, Slot::Kind(i) if KINDS.get(i).is_some_and(|k| k.kind == MULTUSCONFIG.kind)) {
        // Stored before the webhook ran: maybe in an older spelling.
        crate::multusconfig::normalize_legacy(&mut value);
    }
    let parsed = match slot {
        Slot::Nad => serde_json::from_value::<ObjectMeta>(value["metadata"].clone())
            .map(Entry::Nad)
            .map_err(|e| e.to_string()),
        Slot::Kind(_) => SpiderObject::from_value(value)
            .map(Entry::Object)
            .map_err(|e| e.to_string()),
    };
    match parsed {
        Ok(e) => {
            let meta = match &e {
                Entry::Object(o) => o.metadata().clone(),
                Entry::Nad(m) => m.clone(),
            };
            Some(((slot, key_of(&meta)), e))
        }
        Err(e) => {
            log::warn!(
                "webhook cache: skipping {}/{}: {e}",
                obj.metadata.namespace.as_deref().unwrap_or(""),
                obj.metadata.name.as_deref().unwrap_or("")
            );
            None
        }
    }
}

/// Starts one watch per kind on the current tokio runtime; they run (and retry with
/// backoff) until the process ends.
pub fn start(client: kube::Client) -> Arc<Cache> {
    let cache = Arc::new(Cache::default());
    let mut watches: Vec<(Slot, ApiResource)> = KINDS
        .iter()
        .enumerate()
        .map(|(i, k): (usize, &&KindInfo)| (Slot::Kind(i), spiderpool_k8s::kinds::api_resource(k)))
        .collect();
    watches.push((Slot::Nad, nad_resource()));
    for (slot, ar) in watches {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let cache = cache.clone();
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            let mut buffer: Vec<((Slot, String), Entry)> = Vec::new();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Init) => buffer.clear(),
                    Ok(watcher::Event::InitApply(o)) => buffer.extend(entry(slot, &o)),
                    Ok(watcher::Event::InitDone) => {
                        let fresh = std::mem::take(&mut buffer);
                        cache.edit(|m| {
                            m.retain(|(s, _), _| *s != slot);
                            m.extend(fresh);
                        });
                        cache.synced.fetch_or(slot.bit(), Ordering::AcqRel);
                    }
                    Ok(watcher::Event::Apply(o)) => {
                        if let Some((k, e)) = entry(slot, &o) {
                            cache.edit(|m| {
                                m.insert(k, e);
                            });
                        }
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        let meta = ObjectMeta {
                            name: o.metadata.name.clone(),
                            namespace: o.metadata.namespace.clone(),
                            ..ObjectMeta::default()
                        };
                        cache.edit(|m| {
                            m.remove(&(slot, key_of(&meta)));
                        });
                    }
                    Err(e) => {
                        // Without the Multus CRD there are no NADs to compare against.
                        if slot == Slot::Nad {
                            cache.synced.fetch_or(slot.bit(), Ordering::AcqRel);
                        }
                        log::warn!("webhook cache: watching {}: {e}", ar.plural);
                    }
                }
            }
        });
    }
    cache
}
