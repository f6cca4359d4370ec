//! The controller's umbrella error.

use thiserror::Error;

/// Anything a controller component can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// From the Kubernetes layer (client, CRDs, conversions).
    #[error(transparent)]
    K8s(#[from] spiderpool_k8s::Error),
    /// A call to the apiserver failed; `what` says which.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Bad flags, environment or files.
    #[error("{0}")]
    Config(String),
    /// A socket, file or certificate could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An apiserver error with what was being done.
    pub fn api(what: impl Into<String>, source: kube::Error) -> Self {
        Error::Api {
            what: what.into(),
            source,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether the apiserver answered 404 (the object, or the resource itself, does not exist).
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
