//! Reading manifest files and running admission over them in order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use spiderpool_core::admission::{self, ClusterState, FieldError, Operation, Switches};
use spiderpool_core::manifest::{SpiderObject, parse_documents};

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

/// Reads every object of one file.
pub fn read_file(path: &Path) -> Result<Vec<SpiderObject>, BadInput> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("{}: cannot read: {e}", path.display())))?;
    parse_documents(&text).map_err(|e| BadInput(format!("{}: {e}", path.display())))
}

/// Reads all files (so a bad file fails before anything is admitted), then admits each
/// object in order against the cluster file's objects plus those accepted before it.
pub fn admit_files(
    files: &[PathBuf],
    cluster: Option<&Path>,
    switches: &Switches,
) -> Result<Admitted, BadInput> {
    let mut state = ClusterState::default();
    if let Some(path) = cluster {
        for obj in read_file(path)? {
            state.upsert(obj);
        }
    }
    // Where each input object came from, to name the first copy of a duplicate.
    let mut objects = Vec::new();
    for f in files {
        for (i, obj) in read_file(f)?.into_iter().enumerate() {
            objects.push((format!("{} document {}", f.display(), i + 1), obj));
        }
    }
    let mut out = Admitted {
        accepted: Vec::new(),
        rejected: Vec::new(),
    };
    // The same object twice in the input is a mistake (two `kubectl apply` of different
    // specs under one name): refuse the second copy instead of applying it as an update.
    let mut seen: HashMap<(String, Option<String>, String), String> = HashMap::new();
    for (origin, obj) in objects {
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
