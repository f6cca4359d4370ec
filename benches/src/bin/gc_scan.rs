//! `gc_scan`: the controller's full GC scan, decision phase, over watch caches of N
//! SpiderEndpoints and N Pods held in memory (`spiderpool_controller::gc::Caches`, the very
//! code the scan runs; the caches are filled with the events a watch would deliver), beside
//! upstream's way of judging every record: one GET of its pod from the apiserver, measured on
//! a sample of real GETs against `$KUBECONFIG`'s apiserver and scaled to N.
//!
//! ```text
//! gc_scan [--endpoints 10000] [--gone 100] [--iterations 5] [--get-sample 0]
//! ```
//!
//! Of the N endpoints, `--gone` have no pod (the scan's candidates), a tenth belong to 10
//! StatefulSets that want them (their pods exist), the rest have running pods. With
//! `--get-sample K > 0`, K pods are created in a fresh namespace of the apiserver, each is
//! read with one GET (sequentially, as upstream's scan reads a pool's records), and the pods
//! are deleted again. Results are in docs/benchmarks.md ("GC full scan").

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::json;
use spiderpool_controller::gc::{Args as GcArgs, Caches};
use spiderpool_core::objects::ENDPOINT;
use spiderpool_k8s::kinds::api_resource;

struct Args {
    endpoints: usize,
    gone: usize,
    iterations: usize,
    get_sample: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        endpoints: 10_000,
        gone: 100,
        iterations: 5,
        get_sample: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v: usize = it
            .next()
            .with_context(|| format!("{flag} needs a value"))?
            .parse()
            .with_context(|| format!("{flag}: not a number"))?;
        match flag.as_str() {
            "--endpoints" => a.endpoints = v,
            "--gone" => a.gone = v,
            "--iterations" => a.iterations = v.max(1),
            "--get-sample" => a.get_sample = v,
            _ => bail!("unknown flag {flag}"),
        }
    }
    if a.gone > a.endpoints {
        bail!("--gone must not exceed --endpoints");
    }
    Ok(a)
}

fn fill<K>(w: &mut Writer<K>, items: Vec<K>)
where
    K: kube::Resource + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    w.apply_watcher_event(&Event::Init);
    for o in items {
        w.apply_watcher_event(&Event::InitApply(o));
    }
    w.apply_watcher_event(&Event::InitDone);
}

fn caches(a: &Args) -> Result<Caches> {
    const NODES: usize = 100;
    const STS: usize = 10;
    let ns = "bench";
    let sts_members = a.endpoints / 10;
    let per_sts = sts_members.div_ceil(STS).max(1);
    let mut pods = Vec::new();
    let mut eps = Vec::new();
    for i in 0..a.endpoints {
        let node = format!("node-{}", i % NODES);
        let (name, owner_kind, owner) = if i < sts_members {
            let s = i / per_sts;
            (
                format!("sts{s}-{}", i % per_sts),
                "StatefulSet",
                format!("sts{s}"),
            )
        } else {
            (format!("pod-{i}"), "Pod", format!("pod-{i}"))
        };
        let uid = format!("uid-{i}");
        let ip = format!("10.{}.{}.{}", 6 + i / 65536, (i / 256) % 256, i % 256);
        eps.push(serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderEndpoint",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": format!("{}", 1000 + i),
                "finalizers": ["spiderpool.spidernet.io"]},
            "status": {"current": {"uid": uid, "node": node, "containerID": format!("c{i}"),
                "ips": [{"interface": "eth0", "ipv4": format!("{ip}/8"), "ipv4Pool": "pool",
                    "ipv4Gateway": "10.0.0.1", "vlan": 0}]},
                "ownerControllerType": owner_kind, "ownerControllerName": owner},
        }))?);
        // The last `gone` endpoints have no pod.
        if i >= a.endpoints - a.gone {
            continue;
        }
        let mut meta = json!({"name": name, "namespace": ns, "uid": uid});
        if owner_kind == "StatefulSet" {
            meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet",
                "name": owner, "uid": format!("sts-uid-{owner}"), "controller": true}]);
        }
        pods.push(serde_json::from_value::<Pod>(json!({
            "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "pause"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
        }))?);
    }
    let nodes: Vec<Node> = (0..NODES)
        .map(|n| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("node-{n}")},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }))
        })
        .collect::<Result<_, _>>()?;
    let sts: Vec<StatefulSet> = (0..STS)
        .map(|s| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("sts{s}"), "namespace": ns},
                "spec": {"replicas": per_sts, "selector": {}, "serviceName": "s", "template": {}},
            }))
        })
        .collect::<Result<_, _>>()?;
    let mut pw = Writer::<Pod>::default();
    let mut nw = Writer::<Node>::default();
    let mut sw = Writer::<StatefulSet>::default();
    let mut ew = Writer::<DynamicObject>::new(api_resource(&ENDPOINT));
    let c = Caches {
        pods: pw.as_reader(),
        nodes: nw.as_reader(),
        statefulsets: sw.as_reader(),
        endpoints: ew.as_reader(),
    };
    fill(&mut pw, pods);
    fill(&mut nw, nodes);
    fill(&mut sw, sts);
    fill(&mut ew, eps);
    Ok(c)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn get_sample(k: usize) -> Result<Duration> {
    let client = kube::Client::try_default().await?;
    let ns = format!("gc-scan-bench-{}", std::process::id());
    let nsapi: Api<Namespace> = Api::all(client.clone());
    nsapi
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for i in 0..k {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("p{i}")},
            "spec": {"containers": [{"name": "c", "image": "pause"}]},
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    let t = Instant::now();
    for i in 0..k {
        pods.get(&format!("p{i}")).await?;
    }
    let took = t.elapsed();
    for i in 0..k {
        // Unscheduled pods go at once; the namespace stays (no controller-manager to empty it).
        let _ = pods
            .delete(&format!("p{i}"), &DeleteParams::default())
            .await;
    }
    Ok(took)
}

fn main() -> Result<()> {
    let a = args()?;
    let t = Instant::now();
    let c = caches(&a)?;
    println!(
        "caches: {} endpoints, {} pods, filled in {:.0} ms",
        a.endpoints,
        a.endpoints - a.gone,
        ms(t.elapsed())
    );
    let gc_args = GcArgs::default();
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..a.iterations {
        let t = Instant::now();
        let (judged, keys) = c.scan_candidates(&gc_args);
        times.push(t.elapsed());
        found = keys.len();
        if judged != a.endpoints {
            bail!("judged {judged} endpoints, expected {}", a.endpoints);
        }
    }
    if found != a.gone {
        bail!("{found} candidates, expected {}", a.gone);
    }
    times.sort();
    println!(
        "ours: decision phase over the caches: median {:.1} ms, min {:.1} ms ({} runs); {found} candidates -> {found} GETs to confirm",
        ms(times[times.len() / 2]),
        ms(times[0]),
        a.iterations
    );
    if a.get_sample > 0 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let took = rt.block_on(get_sample(a.get_sample))?;
        let per = took.as_secs_f64() / a.get_sample as f64;
        println!(
            "baseline: one GET per endpoint: {:.2} ms per GET ({} sequential GETs), {:.1} s for {} endpoints",
            per * 1000.0,
            a.get_sample,
            per * a.endpoints as f64,
            a.endpoints
        );
    }
    Ok(())
}
