//! The local-mode configuration directory: the Spiderpool objects one would `kubectl apply`.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file of the directory is read in name order. The
//! objects of a file are admitted in order, as CREATEs, by the admission webhooks as functions
//! (defaulting, then validation against the objects accepted before them). A file with any
//! problem (unreadable, bad syntax, an unknown kind, a rejected object, a name defined twice)
//! is skipped whole and reported by name with its field errors: never half-loaded.
//!
//! * A file that holds no Spiderpool object is ignored ([`FileOutcome::Ignored`]): one that
//!   parses but holds only objects of other API groups (a Deployment, a ConfigMap), or is
//!   empty, and one that does not parse as a manifest and names neither the
//!   `spiderpool.spidernet.io` group nor a `Spider...` kind outside comments (a topology
//!   file for `spiderpoolctl plan` beside the pools). Objects of other API groups inside a
//!   Spiderpool file are skipped too.
//! * On a reload ([`reload_dir`]), a file that is rejected now but was loaded before keeps
//!   its last good objects ([`FileOutcome::Kept`]): a typo must not take a pool out of
//!   service. Deleting the file, or emptying it, removes its objects.
//!
//! SpiderEndpoints are refused: the agent owns them. A SpiderIPPool's `status` is dropped (the
//! store owns allocations); a SpiderCoordinator's `status` is kept as written, since no
//! controller fills it in local mode.

use std::path::{Path, PathBuf};

use spiderpool_core::admission::{self, ClusterState, Operation, Switches};
use spiderpool_core::manifest::{SpiderObject, parse_manifest};
use spiderpool_core::objects::SpiderCoordinator;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Every object was admitted: `kind/name` of each.
    Loaded(Vec<String>),
    /// The file was skipped; one line per problem.
    Rejected(Vec<String>),
    /// The file was rejected (one line per problem), and the objects it held at the last
    /// load (`kind/name` of each) are kept instead.
    Kept {
        /// What is wrong with the file now.
        problems: Vec<String>,
        /// The objects kept from the last good version of the file.
        kept: Vec<String>,
    },
    /// The file holds no Spiderpool object; why it was taken for none.
    Ignored(String),
}

/// One file of the directory and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Loaded, rejected, kept or ignored.
    pub outcome: FileOutcome,
    /// The admitted objects this file contributes (loaded or kept), defaulted.
    pub objects: Vec<SpiderObject>,
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

    /// The rejected files (also those whose last good objects are kept), with their
    /// problems.
    pub fn rejected(&self) -> impl Iterator<Item = (&Path, &[String])> {
        self.files.iter().filter_map(|f| match &f.outcome {
            FileOutcome::Rejected(lines)
            | FileOutcome::Kept {
                problems: lines, ..
            } => Some((f.path.as_path(), lines.as_slice())),
            FileOutcome::Loaded(_) | FileOutcome::Ignored(_) => None,
        })
    }

    /// The files that hold no Spiderpool object, with the reason.
    pub fn ignored(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.files.iter().filter_map(|f| match &f.outcome {
            FileOutcome::Ignored(why) => Some((f.path.as_path(), why.as_str())),
            _ => None,
        })
    }

    fn file(&self, path: &Path) -> Option<&FileReport> {
        self.files.iter().find(|f| f.path == path)
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
    reload_dir(dir, switches, &LoadedConfig::default())
}

/// Loads `dir` again: as [`load_dir`], except that a file rejected now whose objects were
/// loaded (or kept) in `previous` keeps those objects ([`FileOutcome::Kept`]), when they are
/// still admitted beside the others.
pub fn reload_dir(
    dir: &Path,
    switches: &Switches,
    previous: &LoadedConfig,
) -> std::io::Result<LoadedConfig> {
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
        let before = previous.file(&path).map(|f| f.objects.as_slice());
        let report = load_file(path, before, &mut loaded.objects, switches);
        loaded.files.push(report);
    }
    Ok(loaded)
}

/// Reads and admits one file; `before` are its objects at the last load.
fn load_file(
    path: PathBuf,
    before: Option<&[SpiderObject]>,
    cluster: &mut ClusterState,
    switches: &Switches,
) -> FileReport {
    let had_objects = before.is_some_and(|b| !b.is_empty());
    let (outcome, objects) = match std::fs::read_to_string(&path) {
        Err(e) => (
            FileOutcome::Rejected(vec![format!("cannot read: {e}")]),
            Vec::new(),
        ),
        Ok(text) => read_and_admit(&text, had_objects, cluster, switches),
    };
    let (outcome, objects) = match outcome {
        FileOutcome::Rejected(problems) if had_objects => {
            keep(problems, before.unwrap_or_default(), cluster, switches)
        }
        outcome => (outcome, objects),
    };
    FileReport {
        path,
        outcome,
        objects,
    }
}

/// A rejected file's last good objects, admitted again beside the others.
fn keep(
    mut problems: Vec<String>,
    before: &[SpiderObject],
    cluster: &mut ClusterState,
    switches: &Switches,
) -> (FileOutcome, Vec<SpiderObject>) {
    match admit_objects(before.to_vec(), cluster, switches) {
        Ok(objects) => {
            let kept = objects.iter().map(object_id).collect();
            (FileOutcome::Kept { problems, kept }, objects)
        }
        Err(errors) => {
            problems.extend(
                errors
                    .into_iter()
                    .map(|e| format!("its last good version cannot be kept either: {e}")),
            );
            (FileOutcome::Rejected(problems), Vec::new())
        }
    }
}

/// Parses `text` and admits its Spiderpool objects into `cluster` (all or nothing), or
/// tells why the file holds none.
fn read_and_admit(
    text: &str,
    had_objects: bool,
    cluster: &mut ClusterState,
    switches: &Switches,
) -> (FileOutcome, Vec<SpiderObject>) {
    let manifest = match parse_manifest(text) {
        Ok(m) => m,
        Err(e) if !had_objects && !names_spiderpool(text) => {
            let why = format!("holds no Spiderpool object (not a Kubernetes manifest: {e})");
            return (FileOutcome::Ignored(why), Vec::new());
        }
        Err(e) => return (FileOutcome::Rejected(vec![e.to_string()]), Vec::new()),
    };
    if manifest.objects.is_empty() {
        let why = if manifest.skipped.is_empty() {
            "holds no object".to_owned()
        } else {
            let kinds: Vec<&str> = manifest.skipped.iter().map(|f| f.kind.as_str()).collect();
            format!(
                "holds no Spiderpool object, only {} of other API groups ({})",
                manifest.skipped.len(),
                kinds.join(", ")
            )
        };
        return (FileOutcome::Ignored(why), Vec::new());
    }
    match admit_objects(manifest.objects, cluster, switches) {
        Ok(objects) => (
            FileOutcome::Loaded(objects.iter().map(object_id).collect()),
            objects,
        ),
        Err(errors) => (FileOutcome::Rejected(errors), Vec::new()),
    }
}

/// Whether `text` names the Spiderpool API group or a `Spider...` kind outside comments: a
/// file meant to hold Spiderpool objects, whose parse errors must be reported.
fn names_spiderpool(text: &str) -> bool {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .any(|l| l.contains("spidernet.io") || l.contains("Spider"))
}

/// Admits every object of one file's `text` into `cluster`, all or nothing.
pub fn admit_file(text: &str, cluster: &mut ClusterState, switches: &Switches) -> FileOutcome {
    read_and_admit(text, true, cluster, switches).0
}

/// Admits `objects` into `cluster`, all or nothing; returns them defaulted, or one line per
/// problem.
fn admit_objects(
    objects: Vec<SpiderObject>,
    cluster: &mut ClusterState,
    switches: &Switches,
) -> Result<Vec<SpiderObject>, Vec<String>> {
    // Admit into a copy so that a later rejection leaves `cluster` untouched.
    let mut trial = cluster.clone();
    let mut admitted = Vec::new();
    let mut errors = Vec::new();
    for obj in objects {
        let id = object_id(&obj);
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
                trial.upsert(obj.clone());
                admitted.push(obj);
            }
            Err(field_errors) => {
                errors.extend(field_errors.iter().map(|e| format!("{id}: {e}")));
            }
        }
    }
    if errors.is_empty() {
        *cluster = trial;
        Ok(admitted)
    } else {
        Err(errors)
    }
}

/// `Kind/name` (`Kind/namespace/name` for namespaced objects).
fn object_id(obj: &SpiderObject) -> String {
    format!("{}/{}", obj.kind(), qualified_name(obj))
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
    fn files_without_spiderpool_objects_are_ignored_not_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-pool.yaml"), POOL).unwrap();
        // The quick start's topology file (no kind, no apiVersion), a Deployment only, an
        // empty file.
        let topology = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/quickstart/topology-overlay.yaml"),
        )
        .unwrap();
        std::fs::write(dir.path().join("topology.yaml"), topology).unwrap();
        std::fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("empty.yaml"), "# nothing yet\n").unwrap();
        // A pool file with a typo in `kind:` is still a pool file: rejected.
        let typo = POOL.replace("kind: SpiderIPPool", "kin: SpiderIPPool");
        std::fs::write(dir.path().join("typo.yaml"), typo).unwrap();
        let loaded = load_dir(dir.path(), &Switches::default()).unwrap();
        let ignored: Vec<(String, String)> = loaded
            .ignored()
            .map(|(p, why)| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    why.to_owned(),
                )
            })
            .collect();
        let names: Vec<&str> = ignored.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["empty.yaml", "topology.yaml", "web.yaml"],
            "{ignored:?}"
        );
        assert!(ignored[2].1.contains("Deployment"), "{ignored:?}");
        let rejected: Vec<_> = loaded.rejected().collect();
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(rejected[0].0.ends_with("typo.yaml"));
        assert!(rejected[0].1[0].contains("kind"), "{rejected:?}");
        assert_eq!(loaded.objects.pools.len(), 1);
    }

    #[test]
    fn a_rejected_file_keeps_its_last_good_objects_on_reload() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pool.yaml");
        let sw = Switches::default();
        std::fs::write(&file, POOL).unwrap();
        let first = load_dir(dir.path(), &sw).unwrap();
        assert_eq!(first.objects.pools.len(), 1);

        for broken in [
            POOL.replace("gateway: 10.6.0.1", "gateway: 10.6.0.1x"),
            POOL.replace("spec: {", "spec: {{"),
            "garbage: [".to_owned(),
        ] {
            std::fs::write(&file, &broken).unwrap();
            let again = reload_dir(dir.path(), &sw, &first).unwrap();
            match &again.files[0].outcome {
                FileOutcome::Kept { problems, kept } => {
                    assert!(!problems.is_empty());
                    assert_eq!(kept, &["SpiderIPPool/10-6-v4".to_owned()]);
                }
                other => panic!("{broken}: {other:?}"),
            }
            assert_eq!(again.objects.pools, first.objects.pools, "{broken}");
            assert_eq!(again.rejected().count(), 1);
            // Still broken at the next reload: still kept.
            let third = reload_dir(dir.path(), &sw, &again).unwrap();
            assert_eq!(third.objects.pools, first.objects.pools, "{broken}");
        }

        // A kept pool that now overlaps a new file's pool cannot be kept either.
        std::fs::write(&file, POOL.replace("gateway: 10.6.0.1", "gateway: x")).unwrap();
        let rival = POOL.replace("10-6-v4", "a-rival");
        std::fs::write(dir.path().join("a-rival.yaml"), rival).unwrap();
        let fourth = reload_dir(dir.path(), &sw, &first).unwrap();
        assert!(matches!(fourth.files[1].outcome, FileOutcome::Rejected(_)));
        std::fs::remove_file(dir.path().join("a-rival.yaml")).unwrap();

        // Deleting or emptying the file removes its objects.
        std::fs::write(&file, "").unwrap();
        assert!(
            reload_dir(dir.path(), &sw, &first)
                .unwrap()
                .objects
                .pools
                .is_empty()
        );
        std::fs::remove_file(&file).unwrap();
        assert!(
            reload_dir(dir.path(), &sw, &first)
                .unwrap()
                .objects
                .pools
                .is_empty()
        );
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
