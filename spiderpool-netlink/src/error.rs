//! The crate's one error type.

use std::io;

/// Everything that can go wrong talking to the kernel.
///
/// Variants carry the operation they were part of (`op`, e.g. `add route 10.6.0.0/16 dev net1
/// table 101`), filled in by the typed operations through [`Error::during`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused a request (`NLMSG_ERROR` with a negative errno).
    #[error("{op}: {}{}", io::Error::from_raw_os_error(*errno), ext_ack.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel {
        /// What was being done.
        op: String,
        /// The positive errno (17 = EEXIST, 2 = ENOENT, 3 = ESRCH, 19 = ENODEV...).
        errno: i32,
        /// The kernel's extended-ack message, when it sent one.
        ext_ack: Option<String>,
    },
    /// A socket, file or thread operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A reply could not be parsed, or did not fit the request (wrong sequence, unexpected type).
    #[error("{op}: netlink protocol error: {message}")]
    Protocol {
        /// What was being done.
        op: String,
        /// What was wrong.
        message: String,
    },
    /// A dump kept being interrupted (`NLM_F_DUMP_INTR`) by concurrent changes.
    #[error(
        "{op}: dump interrupted by concurrent changes {attempts} times in a row; results would be inconsistent"
    )]
    DumpInterrupted {
        /// What was being dumped.
        op: String,
        /// How many attempts were made.
        attempts: usize,
    },
    /// Something named in a request does not exist (a link name, a netns path).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `link "net1"`.
        what: String,
    },
    /// The input cannot be turned into a request.
    #[error("invalid input: {what}")]
    Invalid {
        /// What is wrong.
        what: String,
    },
    /// A program the adapter runs (e.g. `nft`) is missing or failed.
    #[error("{program}: {message}")]
    Command {
        /// The program.
        program: String,
        /// Why it failed (missing binary, exit status and stderr).
        message: String,
    },
    /// A plan step failed; everything the plan had added before it was rolled back.
    #[error(
        "step {index} ({step}) failed: {source}{}",
        rollback_summary(rollback_errors)
    )]
    Step {
        /// Index of the failed step in the plan.
        index: usize,
        /// The step, in `ip` command form.
        step: String,
        /// Why it failed.
        #[source]
        source: Box<Error>,
        /// Errors met while rolling back (empty when the rollback was clean).
        rollback_errors: Vec<Error>,
    },
    /// Several independent failures (best-effort teardown).
    #[error("{} errors: {}", .0.len(), join_errors(.0))]
    Many(Vec<Error>),
}

/// Why [`apply_plan`](crate::apply_plan) failed. Either way the plan was rolled back in both
/// namespaces, except what `rollback_errors` and `pod_undo_errors` list.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A pod step failed ([`Error::Step`]); the pod steps before it were undone and the node
    /// was not touched.
    #[error("applying the pod plan (rolled back): {0}")]
    Pod(#[source] Error),
    /// A node step failed ([`Error::Step`]); the node steps before it were undone, and then
    /// the whole pod plan.
    #[error(
        "applying the node plan (rolled back): {source}{}",
        pod_undo_summary(pod_undo_errors)
    )]
    Node {
        /// The node step's failure.
        #[source]
        source: Error,
        /// What could not be undone of the pod plan (empty when its undo was clean).
        pod_undo_errors: Vec<Error>,
    },
}

fn pod_undo_summary(errs: &[Error]) -> String {
    if errs.is_empty() {
        "; the pod plan was rolled back".into()
    } else {
        format!(
            "; rolling back the pod plan also failed: {}",
            join_errors(errs)
        )
    }
}

fn rollback_summary(errs: &[Error]) -> String {
    if errs.is_empty() {
        String::new()
    } else {
        format!("; rollback also failed: {}", join_errors(errs))
    }
}

fn join_errors(errs: &[Error]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// EEXIST.
pub(crate) const EEXIST: i32 = 17;
/// ENOENT.
pub(crate) const ENOENT: i32 = 2;
/// ESRCH (route or rule not found).
pub(crate) const ESRCH: i32 = 3;
/// ENODEV (no such link).
pub(crate) const ENODEV: i32 = 19;
/// EADDRNOTAVAIL (address not on the link).
pub(crate) const EADDRNOTAVAIL: i32 = 99;

impl Error {
    /// The kernel's errno, for [`Error::Kernel`] (and a [`Error::Step`] wrapping one).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Step { source, .. } => source.errno(),
            _ => None,
        }
    }

    /// True when the thing being added already exists (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(EEXIST)
    }

    /// True when the thing being read, changed or deleted does not exist (ENOENT, ESRCH,
    /// ENODEV, EADDRNOTAVAIL, or [`Error::NotFound`]).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Step { source, .. } => source.is_not_found(),
            _ => matches!(self.errno(), Some(ENOENT | ESRCH | ENODEV | EADDRNOTAVAIL)),
        }
    }

    /// Sets the operation description on errors that do not have one yet.
    pub fn during(mut self, what: impl FnOnce() -> String) -> Error {
        match &mut self {
            Error::Kernel { op, .. }
            | Error::Io { op, .. }
            | Error::Protocol { op, .. }
            | Error::DumpInterrupted { op, .. }
                if op.is_empty() =>
            {
                *op = what();
            }
            _ => {}
        }
        self
    }

    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Error {
        Error::Protocol {
            op: String::new(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Error {
        Error::Invalid { what: what.into() }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Error {
        Error::NotFound { what: what.into() }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_and_context() {
        let e = Error::Kernel {
            op: String::new(),
            errno: EEXIST,
            ext_ack: None,
        }
        .during(|| "add rule".into());
        assert!(e.is_exists());
        assert!(!e.is_not_found());
        assert!(e.to_string().starts_with("add rule: File exists"), "{e}");
        let e = Error::Kernel {
            op: "del route".into(),
            errno: ESRCH,
            ext_ack: Some("no such route".into()),
        };
        assert!(e.is_not_found());
        assert!(e.to_string().ends_with("(no such route)"), "{e}");
        assert!(Error::not_found("link \"net1\"").is_not_found());
        let many = Error::Many(vec![Error::invalid("a"), Error::invalid("b")]);
        assert_eq!(
            many.to_string(),
            "2 errors: invalid input: a; invalid input: b"
        );
    }
}
