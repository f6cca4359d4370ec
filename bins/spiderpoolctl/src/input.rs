//! Reading manifest files and running admission over them in order.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use spiderpool_core::admission::{self, ClusterState, FieldError, Operation, Switches};
use spiderpool_core::manifest::{SpiderObject, parse_manifest};

use crate::SwitchArgs;

/// Input that could not be read: the file and the reader's message (with document number).
pub struct BadInput(pub String);

/// One object rejected by admission, with every problem found.
pub struct Rejection {
    /// `Kind/name`.
    pub object: String,
    /// What admission refused.
    pub errors: Vec<FieldError>,
}

impl Rejection {
    /// One line per problem: `<Kind>/<name>: <field.path>: <Reason>: <message>`.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.errors.iter().map(|e| format!("{}: {e}", self.object))
    }
}

/// What admitting a set of files produced.
pub struct Admitted {
    /// Defaulted objects that were accepted, in input order.
    pub accepted: Vec<SpiderObject>,
    /// Objects that were refused, in input order.
    pub rejected: Vec<Rejection>,
    /// Objects of other kinds that were skipped.
    pub skipped: usize,
}

impl Admitted {
    /// The one-line summary printed on stderr: `3 objects accepted (SpiderIPPool 2,
    /// SpiderSubnet 1), 2 other objects skipped`, or with the rejected count first.
    pub fn summary(&self) -> String {
        let mut by_kind: Vec<(&str, usize)> = Vec::new();
        for obj in &self.accepted {
            match by_kind.iter_mut().find(|(k, _)| *k == obj.kind()) {
                Some((_, n)) => *n += 1,
                None => by_kind.push((obj.kind(), 1)),
            }
        }
        let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let mut parts = Vec::new();
        if !self.rejected.is_empty() {
            parts.push(format!("{} rejected", count(self.rejected.len(), "object")));
        }
        let accepted = match (self.rejected.is_empty(), kinds.is_empty()) {
            (true, false) => format!(
                "{} accepted ({})",
                count(self.accepted.len(), "object"),
                kinds.join(", ")
            ),
            (true, true) => format!("{} accepted", count(0, "object")),
            (false, false) => format!("{} accepted ({})", self.accepted.len(), kinds.join(", ")),
            (false, true) => "0 accepted".to_owned(),
        };
        parts.push(accepted);
        if self.skipped > 0 {
            parts.push(format!("{} skipped", count(self.skipped, "other object")));
        }
        parts.join(", ")
    }
}

/// `1 object`, `2 objects`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl From<&SwitchArgs> for Switches {
    fn from(a: &SwitchArgs) -> Self {
        Switches {
            enable_ipv4: a.ipv4,
            enable_ipv6: a.ipv6,
            enable_spider_subnet: a.spider_subnet,
            ..Switches::default()
        }
    }
}

/// The objects read from the input, and what was skipped.
pub struct Input {
    /// Each Spiderpool object with where it came from (`FILE document N`).
    pub objects: Vec<(String, SpiderObject)>,
    /// Objects of other API groups that were skipped (Deployments, ConfigMaps...).
    pub skipped: usize,
}

/// The name `-f -` stands for.
const STDIN: &str = "-";

/// The files `-f DIR` reads: every `*.yaml`, `*.yml` and `*.json` regular file directly in
/// it (not recursive, as `kubectl apply -f DIR`), in name order.
fn files_of_dir(dir: &Path) -> Result<Vec<PathBuf>, BadInput> {
    let bad = |e: std::io::Error| BadInput(format!("{}: cannot read: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(bad)? {
        let path = entry.map_err(bad)?.path();
        let manifest = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["yaml", "yml", "json"].contains(&e));
        if manifest && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(BadInput(format!(
            "{}: no *.yaml, *.yml or *.json file in the directory",
            dir.display()
        )));
    }
    files.sort();
    Ok(files)
}

/// The text of one input: a file, or standard input for `-`.
fn read_text(path: &Path) -> Result<String, BadInput> {
    if path.as_os_str() == STDIN {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| BadInput(format!("<stdin>: cannot read: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("{}: cannot read: {e}", path.display())))
}

/// How an input is named in messages.
fn display(path: &Path) -> String {
    if path.as_os_str() == STDIN {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Reads the Spiderpool objects of one file (or stdin), skipping other kinds.
fn read_one(path: &Path, input: &mut Input) -> Result<(), BadInput> {
    let name = display(path);
    let manifest =
        parse_manifest(&read_text(path)?).map_err(|e| BadInput(format!("{name}: {e}")))?;
    for (i, obj) in manifest.objects.into_iter().enumerate() {
        input
            .objects
            .push((format!("{name} document {}", i + 1), obj));
    }
    input.skipped += manifest.skipped.len();
    Ok(())
}

/// Reads every `-f` argument as kubectl does: a file, `-` for standard input (once), or a
/// directory.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Input, BadInput> {
    let mut input = Input {
        objects: Vec::new(),
        skipped: 0,
    };
    if paths.iter().filter(|p| p.as_os_str() == STDIN).count() > 1 {
        return Err(BadInput(
            "-f - (standard input) given more than once".to_owned(),
        ));
    }
    for path in paths {
        if path.as_os_str() != STDIN && path.is_dir() {
            for file in files_of_dir(path)? {
                read_one(&file, &mut input)?;
            }
        } else {
            read_one(path, &mut input)?;
        }
    }
    Ok(input)
}

/// Reads all inputs (so a bad file fails before anything is admitted; other kinds are
/// skipped and counted), then admits each object in order against the cluster file's objects plus those accepted before it.
pub fn admit_files(
    files: &[PathBuf],
    cluster: Option<&Path>,
    switches: &Switches,
) -> Result<Admitted, BadInput> {
    let mut state = ClusterState::default();
    if let Some(path) = cluster {
        let path = path.to_path_buf();
        if path.as_os_str() == STDIN && files.contains(&path) {
            return Err(BadInput(
                "standard input (-) cannot be both --cluster and -f".to_owned(),
            ));
        }
        for (_, obj) in read_inputs(std::slice::from_ref(&path))?.objects {
            state.upsert(obj);
        }
    }
    let input = read_inputs(files)?;
    let mut out = Admitted {
        accepted: Vec::new(),
        rejected: Vec::new(),
        skipped: input.skipped,
    };
    // The same object twice in the input is a mistake (two `kubectl apply` of different
    // specs under one name): refuse the second copy instead of applying it as an update.
    let mut seen: HashMap<(String, Option<String>, String), String> = HashMap::new();
    // `origin` names the first copy of a duplicate.
    for (origin, obj) in input.objects {
        let object = format!("{}/{}", obj.kind(), obj.name());
        let key = (
            obj.kind().to_owned(),
            obj.namespace().map(str::to_owned),
            obj.name().to_owned(),
        );
        if let Some(first) = seen.get(&key) {
            out.rejected.push(Rejection {
                object,
                errors: vec![FieldError::already_exists(
                    "metadata.name",
                    format!("defined twice in the input: first in {first}, again in {origin}"),
                )],
            });
            continue;
        }
        seen.insert(key, origin);
        // Only objects of the cluster file are updated; earlier input objects take part in
        // the checks of later ones as existing objects.
        let old = state.find(&obj);
        let op = if old.is_some() {
            Operation::Update
        } else {
            Operation::Create
        };
        match admission::admit(op, obj, old.as_ref(), &state, switches) {
            Ok(defaulted) => {
                state.upsert(defaulted.clone());
                out.accepted.push(defaulted);
            }
            Err(errors) => out.rejected.push(Rejection { object, errors }),
        }
    }
    Ok(out)
}
