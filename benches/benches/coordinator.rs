//! Coordinator planning: `spiderpool_core::coordinator::plan_add` for the seed's overlay `net1`,
//! the same pod with `default-route-nic: net1`, and the underlay first NIC
//! (`spiderpool_benches::coordinator_cases`).
//!
//! Beside each plan: the same ADD's netlink requests (read pod, read node, apply pod plan,
//! apply node plan) sent through `spiderpool_netlink`'s recording fake, so the pure planning
//! can be set against the cost of the requests it turns into. The counts are printed once
//! before timing. The baseline for the plan's time is the coordinator's wall time in the real
//! chain (`cni_chain`); results: docs/benchmarks.md, "Coordinator plan".
#![allow(missing_docs)] // criterion macros generate undocumented items
#![allow(clippy::unwrap_used)] // fixed, valid inputs

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use spiderpool_benches::coordinator_cases::{cases, count_add};
use spiderpool_core::coordinator::{plan_add, render_plan};

fn coordinator(c: &mut Criterion) {
    let cases = cases().unwrap();
    eprintln!(
        "netlink requests per ADD (read + apply): case: pod = read + apply, node = read + apply; \
         steps pod/node; sysctl writes; nft runs"
    );
    for case in &cases {
        let plan = plan_add(&case.config, &case.request, &case.pod, &case.host).unwrap();
        let n = count_add(case, &plan).unwrap();
        eprintln!(
            "  {}: pod {} = {} + {}, node {} = {} + {}; steps {}/{}; sysctl {}; nft {}",
            case.name,
            n.pod_total(),
            n.pod_read,
            n.pod_apply,
            n.node_total(),
            n.node_read,
            n.node_apply,
            n.pod_steps,
            n.node_steps,
            n.pod_sysctl_writes,
            n.nft_runs
        );
    }

    let mut g = c.benchmark_group("coordinator");
    for case in &cases {
        g.bench_function(format!("{}/plan_add", case.name), |b| {
            b.iter(|| {
                plan_add(
                    black_box(&case.config),
                    black_box(&case.request),
                    black_box(&case.pod),
                    black_box(&case.host),
                )
            })
        });
        let plan = plan_add(&case.config, &case.request, &case.pod, &case.host).unwrap();
        // The same ADD through the recording fake: building and encoding every request
        // (no kernel), for scale.
        g.bench_function(format!("{}/netlink_fake", case.name), |b| {
            b.iter(|| count_add(black_box(case), black_box(&plan)).unwrap())
        });
        // Rendering the plan as `ip` commands (what the plugin's debug log prints).
        g.bench_function(format!("{}/render_commands", case.name), |b| {
            b.iter(|| render_plan(black_box(&plan)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = coordinator
}
criterion_main!(benches);
