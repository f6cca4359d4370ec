//! The seed's Calico quick start, offline half: admit the seed's SpiderIPPool and
//! SpiderMultusConfig exactly as the webhooks would, then print the defaulted pool and the
//! NetworkAttachmentDefinition that Multus will use for `net1`.
//!
//! Run with `cargo run -p spiderpool-examples --example quickstart`.

use std::process::ExitCode;

use spiderpool_core::admission::{self, ClusterState, Operation, Switches};
use spiderpool_core::manifest::{SpiderObject, parse_documents, to_yaml};
use spiderpool_core::multus::render_nad;

/// The seed's manifests, as a user would `kubectl apply` them.
const SEED: [(&str, &str); 2] = [
    ("ippool.yaml", include_str!("ippool.yaml")),
    ("multusconfig.yaml", include_str!("multusconfig.yaml")),
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let switches = Switches::default();
    let mut cluster = ClusterState::default();
    for (file, text) in SEED {
        for obj in parse_documents(text).map_err(|e| format!("{file}: {e}"))? {
            let name = format!("{}/{}", obj.kind(), obj.name());
            let admitted = admission::admit(Operation::Create, obj, None, &cluster, &switches)
                .map_err(|errs| {
                    let lines: Vec<String> = errs.iter().map(|e| format!("{name}: {e}")).collect();
                    lines.join("\n")
                })?;
            println!("# {name} admitted ({file})");
            match &admitted {
                SpiderObject::MultusConfig(smc) => {
                    let nad = render_nad(smc).map_err(|e| format!("{name}: {e}"))?;
                    println!("# the NetworkAttachmentDefinition it becomes:");
                    let yaml = serde_saphyr::to_string(&nad).map_err(|e| e.to_string())?;
                    println!("{yaml}");
                }
                other => println!("{}", to_yaml(other).map_err(|e| e.to_string())?),
            }
            cluster.upsert(admitted);
        }
    }
    Ok(())
}
