//! Watches of pools, reserved IPs and endpoints, applied to the store's view by one
//! maintenance thread (not a runtime thread: it takes the store's lock, which commits hold
//! while they wait for the apiserver).

use std::collections::BTreeSet;
use std::sync::mpsc::Sender;

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use spiderpool_core::ipam::EndpointKey;
use spiderpool_core::objects::crd::ENDPOINT_NODE_FIELD_PATH;
use spiderpool_core::objects::{ENDPOINT, IPPOOL, RESERVEDIP, SpiderEndpoint, SpiderIPPool};

use super::index::key_of;
use super::inner::Inner;
use crate::kinds::{RawObject, api_resource};

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
pub type FeedEvent = (Feed, Event<RawObject>);

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
        let api: Api<RawObject> = Api::all_with(client.clone(), &api_resource(&info));
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
    buffers: [Option<Vec<RawObject>>; 3],
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

/// Objects at a version the view already has are not decoded: this agent's own writes come
/// back through its watches after the store put what the apiserver answered.
fn apply_one(inner: &mut Inner, feed: Feed, obj: &RawObject) {
    let v = obj.version();
    match feed {
        Feed::Pools => {
            if inner.pools.get(obj.name()).is_some_and(|e| e.version >= v) {
                return;
            }
            match obj.decode::<SpiderIPPool>() {
                Ok(p) => {
                    inner.put_pool(v, p);
                }
                Err(e) => {
                    inner.broken.insert(obj.display_name(), e.to_string());
                }
            }
        }
        Feed::Endpoints => {
            let key = EndpointKey::new(obj.namespace().unwrap_or_default(), obj.name());
            if inner.index.get(&key).is_some_and(|e| e.version >= v) {
                return;
            }
            match obj.decode::<SpiderEndpoint>() {
                Ok(ep) => inner.put_endpoint(v, ep),
                Err(e) => log::warn!("ignoring SpiderEndpoint {}: {e}", obj.display_name()),
            }
        }
        Feed::Reserved => {
            let name = obj.display_name();
            if inner.reserved.get(&name).is_some_and(|(old, _)| *old >= v) {
                return;
            }
            match obj.decode() {
                Ok(r) => {
                    inner.reserved.insert(name, (v, r));
                    if let Err(e) = inner.set_reserved() {
                        log::warn!("SpiderReservedIP {}: {e}", obj.display_name());
                    }
                }
                Err(e) => log::warn!("ignoring SpiderReservedIP {}: {e}", obj.display_name()),
            }
        }
    }
}

fn delete_one(inner: &mut Inner, feed: Feed, obj: &RawObject) {
    let version = obj.version();
    let v = Some(version);
    match feed {
        Feed::Pools => inner.remove_pool(&obj.display_name(), v),
        Feed::Endpoints => {
            if let Ok(ep) = obj.decode::<SpiderEndpoint>() {
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
            if inner.reserved.remove(&obj.display_name()).is_some()
                && let Err(e) = inner.set_reserved()
            {
                log::warn!("SpiderReservedIP {}: {e}", obj.display_name());
            }
        }
    }
}

/// A fresh list: objects in it are put (if newer than what is held); objects held but not
/// listed are removed when their version is not above the newest listed one (a newer one was
/// written after the list, by this agent, and its event is still coming).
fn relist(inner: &mut Inner, feed: Feed, list: Vec<RawObject>) {
    let newest = list.iter().map(RawObject::version).max().unwrap_or(0);
    let listed: BTreeSet<String> = list.iter().map(RawObject::display_name).collect();
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
