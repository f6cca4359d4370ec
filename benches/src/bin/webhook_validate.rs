//! `webhook_validate`: the validating webhook's cost for one new SpiderIPPool against 1000
//! existing pools, through our rule set (`spiderpool_core::admission`, what the controller's
//! webhook runs on its watch-cache snapshot) beside a pairwise baseline in the manner of
//! upstream's webhook (every existing pool's CIDR parsed and compared; for pools of the same
//! CIDR, every range expanded to its addresses and the sets intersected).
//!
//! Usage: `webhook_validate [--iterations N] [--pools N]`; results in docs/benchmarks.md,
//! "Webhook validation".

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipnet::Ipv4Net;
use serde_json::json;
use spiderpool_core::admission::{self, ClusterState, Operation, Switches};
use spiderpool_core::manifest::SpiderObject;

fn pool(name: &str, subnet: &str, ips: &[String], gateway: Option<&str>) -> Result<SpiderObject> {
    let mut spec = json!({"ipVersion": 4, "subnet": subnet, "ips": ips});
    if let Some(gw) = gateway {
        spec["gateway"] = json!(gw);
    }
    let cidr_label = subnet.replace(['.', '/'], "-");
    Ok(SpiderObject::from_value(json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1",
        "kind": "SpiderIPPool",
        "metadata": {"name": name, "labels": {"ipam.spidernet.io/ippool-cidr": cidr_label}},
        "spec": spec,
    }))?)
}

fn range(a: u32, b: u32) -> String {
    format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b))
}

/// `n` existing pools and one new pool. `same_cidr`: all in 10.6.0.0/16 with 50 addresses
/// each (the range check runs against every one); else each in a /24 of its own (only the
/// CIDR check runs).
fn scenario(n: u32, same_cidr: bool) -> Result<(ClusterState, SpiderObject)> {
    let mut state = ClusterState::default();
    let base = u32::from(Ipv4Addr::new(10, 6, 0, 0));
    for i in 0..n {
        let obj = if same_cidr {
            let lo = base + 256 + i * 50;
            pool(
                &format!("p{i}"),
                "10.6.0.0/16",
                &[range(lo, lo + 49)],
                Some("10.6.0.1"),
            )?
        } else {
            let net = u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (i << 8);
            let subnet = format!("{}/24", Ipv4Addr::from(net));
            pool(
                &format!("p{i}"),
                &subnet,
                &[range(net + 10, net + 59)],
                None,
            )?
        };
        state.pools.push(match obj {
            SpiderObject::IPPool(p) => p,
            _ => bail!("not a pool"),
        });
    }
    let new = if same_cidr {
        let lo = base + 256 + n * 50;
        pool(
            "new",
            "10.6.0.0/16",
            &[range(lo, lo + 49)],
            Some("10.6.0.1"),
        )?
    } else {
        pool(
            "new",
            "10.250.0.0/24",
            &[range(
                u32::from(Ipv4Addr::new(10, 250, 0, 10)),
                u32::from(Ipv4Addr::new(10, 250, 0, 59)),
            )],
            None,
        )?
    };
    Ok((state, new))
}

/// The baseline: per existing pool, parse its CIDR and compare; for one of the same CIDR,
/// expand both pools' ranges to addresses and intersect (upstream's `ParseIPRanges` and
/// set difference).
fn baseline(new: &SpiderObject, existing: &ClusterState) -> Result<bool> {
    let SpiderObject::IPPool(new) = new else {
        bail!("not a pool")
    };
    let cidr: Ipv4Net = new.spec.subnet.parse()?;
    let expand = |ips: &Option<Vec<String>>| -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for r in ips.iter().flatten() {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            let (a, b) = (
                u32::from(a.parse::<Ipv4Addr>()?),
                u32::from(b.parse::<Ipv4Addr>()?),
            );
            out.extend(a..=b);
        }
        Ok(out)
    };
    let mine: HashSet<u32> = expand(&new.spec.ips)?.into_iter().collect();
    for other in &existing.pools {
        let theirs: Ipv4Net = other.spec.subnet.parse()?;
        if theirs == cidr {
            if expand(&other.spec.ips)?.iter().any(|ip| mine.contains(ip)) {
                return Ok(false);
            }
        } else if theirs.contains(&cidr) || cidr.contains(&theirs) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn time(iterations: usize, mut f: impl FnMut() -> Result<bool>) -> Result<(Duration, Duration)> {
    // One warm-up run, which must admit.
    if !f()? {
        bail!("the new pool was refused");
    }
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t0 = Instant::now();
        std::hint::black_box(f()?);
        times.push(t0.elapsed());
    }
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

fn main() -> Result<()> {
    let mut iterations = 200usize;
    let mut pools = 1000u32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iterations" => iterations = args.next().context("--iterations N")?.parse()?,
            "--pools" => pools = args.next().context("--pools N")?.parse()?,
            "--help" | "-h" => {
                println!("webhook_validate [--iterations N] [--pools N]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    let switches = Switches::default();
    println!("one new SpiderIPPool against {pools} existing pools, {iterations} runs each");
    println!("{:<34} {:>12} {:>12}", "", "median", "p99");
    for (label, same) in [
        ("each pool in its own /24", false),
        ("all pools in 10.6.0.0/16", true),
    ] {
        let (state, new) = scenario(pools, same)?;
        let ours = time(iterations, || {
            Ok(admission::validate(Operation::Create, &new, None, &state, &switches).is_empty())
        })?;
        // The webhook also decodes the object from the review's JSON.
        let value = new.to_value()?;
        let ours_decoded = time(iterations, || {
            let obj = SpiderObject::from_value(value.clone())?;
            Ok(admission::validate(Operation::Create, &obj, None, &state, &switches).is_empty())
        })?;
        let base = time(iterations, || baseline(&new, &state))?;
        println!("{label}:");
        for (what, (p50, p99)) in [
            ("  ours (admission::validate)", ours),
            ("  ours + JSON decode", ours_decoded),
            ("  pairwise baseline", base),
        ] {
            println!(
                "{what:<34} {:>10.1}µs {:>10.1}µs",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
        }
    }
    Ok(())
}
