//! Watches of pools, reserved IPs and endpoints, applied to the store's view by one
//! maintenance thread (not a runtime thread: it takes the store's lock, which commits hold
//! while they wait for the apiserver).

use std::collections::BTreeSet;
use std::sync::mpsc::Sender;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use spiderpool_core::objects::crd::ENDPOINT_NODE_FIELD_PATH;
use spiderpool_core::objects::{ENDPOINT, IPPOOL, RESERVEDIP, SpiderEndpoint, SpiderIPPool};

use super::index::key_of;
use super::inner::Inner;
use crate::kinds::{api_resource, display_name, from_dynamic, resource_version};

/// Which watch an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feed {
    /// SpiderIPPools.
    Pools,
    /// SpiderReservedIPs.
    Reserved,
    /// SpiderEndpoints.
    Endpoints,
}

/// One watch event.
pub type FeedEvent = (Feed, Event<DynamicObject>);

/// Starts the three watches on `rt`; events go to `tx`.
/// The endpoint watch is scoped to `node`'s endpoints (a field selector on the CRD's
/// selectable field `status.current.node`): an agent needs to know who holds the addresses of
/// its own block only, and decoding every endpoint event of the cluster would cost every agent
/// CPU and memory in proportion to the cluster.
pub fn spawn(rt: &tokio::runtime::Handle, client: &Client, node: &str, tx: Sender<FeedEvent>) {
    for (feed, info) in [
        (Feed::Pools, IPPOOL),
        (Feed::Reserved, RESERVEDIP),
        (Feed::Endpoints, ENDPOINT),
    ] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(&info));
        let tx = tx.clone();
        let config = match feed {
            Feed::Endpoints => watcher::Config::default().fields(&format!(
                "{}={node}",
                ENDPOINT_NODE_FIELD_PATH.trim_start_matches('.')
            )),
            _ => watcher::Config::default(),
        };
        rt.spawn(async move {
            let mut stream = watcher::watcher(api, config).default_backoff().boxed();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        if tx.send((feed, ev)).is_err() {
                            return; // the store is gone
                        }
                    }
                    Err(e) => log::warn!("watch of {}: {e}", info.plural),
                }
            }
        });
    }
}

/// Relist buffers: a watch (re)started lists everything before going on with events.
#[derive(Debug, Default)]
pub struct Relists {
    buffers: [Option<Vec<DynamicObject>>; 3],
    /// Feeds that finished their first list.
    pub synced: BTreeSet<Feed>,
}

fn slot(feed: Feed) -> usize {
    match feed {
        Feed::Pools => 0,
        Feed::Reserved => 1,
        Feed::Endpoints => 2,
    }
}

impl Relists {
    /// Applies one event to `inner`.
    pub fn apply(&mut self, inner: &mut Inner, (feed, ev): FeedEvent) {
        match ev {
            Event::Init => self.buffers[slot(feed)] = Some(Vec::new()),
            Event::InitApply(obj) => self.buffers[slot(feed)].get_or_insert_default().push(obj),
            Event::InitDone => {
                let list = self.buffers[slot(feed)].take().unwrap_or_default();
                relist(inner, feed, list);
                self.synced.insert(feed);
            }
            Event::Apply(obj) => apply_one(inner, feed, &obj),
            Event::Delete(obj) => delete_one(inner, feed, &obj),
        }
    }
}

fn apply_one(inner: &mut Inner, feed: Feed, obj: &DynamicObject) {
    let v = resource_version(obj);
    match feed {
        Feed::Pools => match from_dynamic::<SpiderIPPool>(obj) {
            Ok(p) => {
                inner.put_pool(v, p);
            }
            Err(e) => {
                inner.broken.insert(display_name(obj), e.to_string());
            }
        },
        Feed::Endpoints => match from_dynamic::<SpiderEndpoint>(obj) {
            Ok(ep) => inner.put_endpoint(v, ep),
            Err(e) => log::warn!("ignoring SpiderEndpoint {}: {e}", display_name(obj)),
        },
        Feed::Reserved => match from_dynamic(obj) {
            Ok(r) => {
                let name = display_name(obj);
                if inner.reserved.get(&name).is_some_and(|(old, _)| *old >= v) {
                    return;
                }
                inner.reserved.insert(name, (v, r));
                if let Err(e) = inner.set_reserved() {
                    log::warn!("SpiderReservedIP {}: {e}", display_name(obj));
                }
            }
            Err(e) => log::warn!("ignoring SpiderReservedIP {}: {e}", display_name(obj)),
        },
    }
}

fn delete_one(inner: &mut Inner, feed: Feed, obj: &DynamicObject) {
    let version = resource_version(obj);
    let v = Some(version);
    match feed {
        Feed::Pools => inner.remove_pool(&display_name(obj), v),
        Feed::Endpoints => {
            if let Ok(ep) = from_dynamic::<SpiderEndpoint>(obj) {
                let moved = ep
                    .status
                    .as_ref()
                    .is_some_and(|s| s.current.node != inner.node);
                if moved {
                    // It left this node's watch (a StatefulSet pod re-adopted elsewhere): its
                    // addresses are still held, by another node now. Keep them held here until
                    // the pool status shows them out of this node's block.
                    inner.put_endpoint(version, ep);
                } else {
                    inner.remove_endpoint(&key_of(&ep), v);
                }
            }
        }
        Feed::Reserved => {
            if inner.reserved.remove(&display_name(obj)).is_some()
                && let Err(e) = inner.set_reserved()
            {
                log::warn!("SpiderReservedIP {}: {e}", display_name(obj));
            }
        }
    }
}

/// A fresh list: objects in it are put (if newer than what is held); objects held but not
/// listed are removed when their version is not above the newest listed one (a newer one was
/// written after the list, by this agent, and its event is still coming).
fn relist(inner: &mut Inner, feed: Feed, list: Vec<DynamicObject>) {
    let newest = list.iter().map(resource_version).max().unwrap_or(0);
    let listed: BTreeSet<String> = list.iter().map(display_name).collect();
    for obj in &list {
        apply_one(inner, feed, obj);
    }
    match feed {
        Feed::Pools => {
            let gone: Vec<String> = inner
                .pools
                .iter()
                .filter(|(n, e)| !listed.contains(*n) && e.version <= newest)
                .map(|(n, _)| n.clone())
                .collect();
            for n in gone {
                inner.remove_pool(&n, None);
            }
        }
        Feed::Reserved => {
            let before = inner.reserved.len();
            inner
                .reserved
                .retain(|n, (v, _)| listed.contains(n) || *v > newest);
            if inner.reserved.len() != before
                && let Err(e) = inner.set_reserved()
            {
                log::warn!("SpiderReservedIPs: {e}");
            }
        }
        Feed::Endpoints => {
            let gone = inner.index.keys_not_in(&listed, newest);
            for key in gone {
                inner.remove_endpoint(&key, None);
            }
        }
    }
}
