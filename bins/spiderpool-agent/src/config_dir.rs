//! The local-mode configuration directory: the Spiderpool objects one would `kubectl apply`.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file of the directory is read in name order. The
//! objects of a file are admitted in order, as CREATEs, by the admission webhooks as functions
//! (defaulting, then validation against the objects accepted before them). A file with any
//! problem (unreadable, bad syntax, an unknown kind, a rejected object, a name defined twice)
//! is skipped whole and reported by name with its field errors: never half-loaded.
//!
//! SpiderEndpoints are refused: the agent owns them. A SpiderIPPool's `status` is dropped (the
//! store owns allocations); a SpiderCoordinator's `status` is kept as written, since no
//! controller fills it in local mode.

use std::path::{Path, PathBuf};

use spiderpool_core::admission::{self, ClusterState, Operation, Switches};
use spiderpool_core::manifest::{SpiderObject, parse_documents};
use spiderpool_core::objects::SpiderCoordinator;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Every object was admitted: `kind/name` of each.
    Loaded(Vec<String>),
    /// The file was skipped; one line per problem.
    Rejected(Vec<String>),
}

/// One file of the directory and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Loaded or rejected.
    pub outcome: FileOutcome,
}

/// The admitted objects of a directory and a report per file.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    /// The admitted objects (defaulted), in load order.
    pub objects: ClusterState,
    /// One report per file read, in name order.
    pub files: Vec<FileReport>,
}

impl LoadedConfig {
    /// The SpiderCoordinator the agent answers from: the first by name, as a Kubernetes list
    /// returns them.
    pub fn coordinator(&self) -> Option<&SpiderCoordinator> {
        self.objects
            .coordinators
            .iter()
            .min_by(|a, b| a.metadata.name.cmp(&b.metadata.name))
    }

    /// The rejected files.
    pub fn rejected(&self) -> impl Iterator<Item = (&Path, &[String])> {
        self.files.iter().filter_map(|f| match &f.outcome {
            FileOutcome::Rejected(lines) => Some((f.path.as_path(), lines.as_slice())),
            FileOutcome::Loaded(_) => None,
        })
    }
}

/// Whether `path` is read as a config file.
pub fn is_config_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    ) && !path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Loads `dir`. Fails only when the directory itself cannot be listed.
pub fn load_dir(dir: &Path, switches: &Switches) -> std::io::Result<LoadedConfig> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if is_config_file(&path) && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut loaded = LoadedConfig::default();
    for path in paths {
        let outcome = match std::fs::read_to_string(&path) {
            Err(e) => FileOutcome::Rejected(vec![format!("cannot read: {e}")]),
            Ok(text) => admit_file(&text, &mut loaded.objects, switches),
        };
        loaded.files.push(FileReport { path, outcome });
    }
    Ok(loaded)
}

/// Admits every object of one file's `text` into `cluster`, all or nothing.
pub fn admit_file(text: &str, cluster: &mut ClusterState, switches: &Switches) -> FileOutcome {
    let objects = match parse_documents(text) {
        Ok(o) => o,
        Err(e) => return FileOutcome::Rejected(vec![e.to_string()]),
    };
    // Admit into a copy so that a later rejection leaves `cluster` untouched.
    let mut trial = cluster.clone();
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for obj in objects {
        let id = format!("{}/{}", obj.kind(), qualified_name(&obj));
        if matches!(obj, SpiderObject::Endpoint(_)) {
            errors.push(format!(
                "{id}: SpiderEndpoints are recorded by the agent, not configured"
            ));
            continue;
        }
        if trial.find(&obj).is_some() {
            errors.push(format!(
                "{id}: metadata.name: AlreadyExists: defined earlier in this or another file"
            ));
            continue;
        }
        match admission::admit(Operation::Create, obj, None, &trial, switches) {
            Ok(mut obj) => {
                if let SpiderObject::IPPool(p) = &mut obj {
                    p.status = None;
                }
                names.push(id);
                trial.upsert(obj);
            }
            Err(field_errors) => {
                errors.extend(field_errors.iter().map(|e| format!("{id}: {e}")));
            }
        }
    }
    if errors.is_empty() {
        *cluster = trial;
        FileOutcome::Loaded(names)
    } else {
        FileOutcome::Rejected(errors)
    }
}

fn qualified_name(obj: &SpiderObject) -> String {
    match obj.namespace() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", obj.name()),
        _ => obj.name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: 10-6-v4}
spec: {gateway: 10.6.0.1, ips: [10.6.212.100-10.6.212.200], subnet: 10.6.0.0/16}
";

    #[test]
    fn a_bad_file_is_skipped_whole_with_its_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-pool.yaml"), POOL).unwrap();
        // One good pool and one overlapping it: nothing of this file is kept.
        let other = POOL.replace("10-6-v4", "other").replace("10.6.", "10.7.");
        let broken = POOL
            .replace("10-6-v4", "broken")
            .replace("10.6.", "10.8.")
            .replace("gateway: 10.8.0.1", "gateway: nope");
        let bad = format!("{other}---\n{broken}");
        std::fs::write(dir.path().join("b-bad.yml"), bad).unwrap();
        std::fs::write(dir.path().join("c.txt"), "ignored").unwrap();
        let loaded = load_dir(dir.path(), &Switches::default()).unwrap();
        assert_eq!(loaded.files.len(), 2);
        assert_eq!(
            loaded.files[0].outcome,
            FileOutcome::Loaded(vec!["SpiderIPPool/10-6-v4".into()])
        );
        let rejected: Vec<_> = loaded.rejected().collect();
        assert_eq!(rejected.len(), 1);
        assert!(rejected[0].0.ends_with("b-bad.yml"));
        assert!(
            rejected[0]
                .1
                .iter()
                .any(|l| l.starts_with("SpiderIPPool/broken: spec.gateway")),
            "{:?}",
            rejected[0].1
        );
        assert_eq!(loaded.objects.pools.len(), 1);
    }

    #[test]
    fn duplicates_and_endpoints_are_refused() {
        let mut cluster = ClusterState::default();
        let sw = Switches::default();
        assert!(matches!(
            admit_file(POOL, &mut cluster, &sw),
            FileOutcome::Loaded(_)
        ));
        match admit_file(POOL, &mut cluster, &sw) {
            FileOutcome::Rejected(e) => assert!(e[0].contains("AlreadyExists"), "{e:?}"),
            other => panic!("{other:?}"),
        }
        match admit_file("{ nonsense", &mut cluster, &sw) {
            FileOutcome::Rejected(e) => assert_eq!(e.len(), 1),
            other => panic!("{other:?}"),
        }
    }
}
