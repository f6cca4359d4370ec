//! The crate's error type.

/// What can go wrong talking to Kubernetes or converting its objects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig / in-cluster configuration.
    #[error("kubernetes client configuration: {0}")]
    Config(String),
    /// A request to the apiserver failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done, e.g. `create SpiderEndpoint ns/name`.
        action: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// An object from the apiserver does not have the shape of its kind.
    #[error("{kind} {name}: {reason}")]
    Decode {
        /// The kind.
        kind: String,
        /// `namespace/name` or `name`.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A condition was not reached in time (CRD establishment, cache sync...).
    #[error("timed out: {0}")]
    Timeout(String),
    /// An error of the pure core (planning, validation).
    #[error(transparent)]
    Core(#[from] spiderpool_core::Error),
}

impl Error {
    /// Wraps a client error with what was being done.
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Api {
            action: action.into(),
            source: Box::new(source),
        }
    }

    /// Whether the apiserver answered 409 Conflict (stale resourceVersion).
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }

    /// Whether the apiserver answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }

    /// The HTTP status the apiserver answered with, if this is an API error.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Error::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(s) => Some(s.code),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether retrying later may help: the apiserver was unreachable, overloaded or timed out.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
                kube::Error::HyperError(_)
                | kube::Error::Service(_)
                | kube::Error::HttpError(_) => true,
                _ => false,
            },
            Error::Timeout(_) => true,
            _ => false,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
