//! The errors of [`crate::ipam`], and the store contract's own: a commit fails with a
//! conflict ([`CommitError::Conflict`], re-plan) or a store failure ([`StoreError`]).

use thiserror::Error;

/// Why an allocation, a release or a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IpamError {
    /// A pod or namespace annotation read by the IPAM (`ipam.spidernet.io/ippools`, ...) is
    /// malformed.
    #[error("annotation {key}: {reason}")]
    Annotation {
        /// The annotation key, e.g. `ipam.spidernet.io/ippools`.
        key: String,
        /// What is wrong (the JSON parser's message with line and column, or the rule broken).
        reason: String,
    },
    /// No pool source applies to the NIC and no cluster default pool exists.
    #[error("no IPPool available for NIC {nic}, no pool selection rules of any type are specified")]
    NoPoolRules {
        /// The NIC being added.
        nic: String,
    },
    /// A pool is named twice for one NIC and family.
    #[error("wrong input, duplicate IPPool {pool} specified for NIC {nic}")]
    DuplicatePool {
        /// The pool name.
        pool: String,
        /// The NIC.
        nic: String,
    },
    /// A pool named by an annotation, a namespace default or the NAD does not exist.
    #[error("failed to get original IPPool {pool} (NIC {nic}): not found")]
    PoolNotFound {
        /// The pool name.
        pool: String,
        /// The NIC.
        nic: String,
    },
    /// Every candidate pool of a family was removed by the filters (affinity, disabled, ...).
    #[error(
        "no IPPool available, all {family} IPPools [{}] of NIC {nic} filtered out: {}",
        crate::ipam::rejected_names(rejections),
        crate::ipam::rejection_reasons(rejections)
    )]
    AllPoolsFiltered {
        /// The NIC.
        nic: String,
        /// The family.
        family: crate::ip::IpFamily,
        /// Each candidate and why it was removed.
        rejections: Vec<crate::ipam::PoolRejection>,
    },
    /// Every eligible pool of a family failed to give an address (exhausted, ...).
    #[error(
        "failed to allocate any {family} IP address to NIC {nic} from IPPools [{}]: {}",
        crate::ipam::rejected_names(rejections),
        crate::ipam::rejection_reasons(rejections)
    )]
    AllocationFailed {
        /// The NIC.
        nic: String,
        /// The family.
        family: crate::ip::IpFamily,
        /// Each pool tried and why it gave nothing.
        rejections: Vec<crate::ipam::PoolRejection>,
    },
    /// A pool's spec cannot be used for allocation (admission would have refused it).
    #[error("IPPool {pool}: invalid spec: {reason}")]
    InvalidPool {
        /// The pool name.
        pool: String,
        /// What is wrong.
        reason: String,
    },
    /// The request itself cannot be served (auto-pool rules, orphan pod, NIC not listed...).
    #[error("cannot allocate for pod {pod} NIC {nic}: {reason}")]
    Request {
        /// `namespace/name` of the pod.
        pod: String,
        /// The NIC.
        nic: String,
        /// Why.
        reason: String,
    },
    /// The pod's application has no auto-created pool for this NIC, family and subnet yet:
    /// the subnet controller creates it (an agent on Kubernetes waits for it).
    #[error(
        "cannot allocate for pod {pod} NIC {nic}: no matching auto-created {family} IPPool candidate from SpiderSubnet {subnet} yet"
    )]
    AutoPoolNotReady {
        /// `namespace/name` of the pod.
        pod: String,
        /// The NIC.
        nic: String,
        /// `IPv4` or `IPv6`.
        family: String,
        /// The SpiderSubnet.
        subnet: String,
    },
    /// A pool record and the endpoint disagree (StatefulSet/KubeVirt re-adoption).
    #[error("IPPool {pool}: record of {ip}: {reason}")]
    RecordMismatch {
        /// The pool name.
        pool: String,
        /// The address.
        ip: String,
        /// What disagrees.
        reason: String,
    },
    /// A compare-and-swap commit found an object changed since the snapshot; re-plan.
    #[error(
        "conflict: {object} changed since the snapshot (expected version {expected}, found {found})"
    )]
    Conflict {
        /// The object, e.g. `SpiderIPPool/pool1` or `SpiderEndpoint/ns/name`.
        object: String,
        /// The version the plan was based on (`none` = absent).
        expected: String,
        /// The version found in the store (`none` = absent).
        found: String,
    },
    /// Conflicts persisted through every retry.
    #[error("gave up after {attempts} conflicting attempts: {last}")]
    RetriesExhausted {
        /// How many plans were committed without success.
        attempts: u32,
        /// The last conflict.
        last: Box<IpamError>,
    },
    /// A store failed for a reason other than a conflict.
    #[error("IPAM store: {reason}")]
    Store {
        /// What failed.
        reason: String,
    },
    /// An address, range or CIDR (of a pool, an annotation, ...) is invalid.
    #[error(transparent)]
    Ip(#[from] crate::ip::IpError),
}

/// A store failed for a reason other than a conflict (I/O, the apiserver, a corrupt record).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("IPAM store: {reason}")]
pub struct StoreError {
    /// What failed.
    pub reason: String,
}

impl StoreError {
    /// A store failure with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Why [`IpamStore::commit`](super::IpamStore::commit) wrote nothing: a conflict (re-plan and
/// retry) or any other store failure (give up).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommitError {
    /// A compare-and-swap commit found an object changed since the snapshot; re-plan.
    #[error(
        "conflict: {object} changed since the snapshot (expected version {expected}, found {found})"
    )]
    Conflict {
        /// The object, e.g. `SpiderIPPool/pool1` or `SpiderEndpoint/ns/name`.
        object: String,
        /// The version the plan was based on (`none` = absent).
        expected: String,
        /// The version found in the store (`none` = absent).
        found: String,
    },
    /// The change set does not apply to the stored state (an address to allocate is not
    /// free, one to re-adopt has no record): a planner bug, not a race; retrying will not help.
    #[error(transparent)]
    Rejected(Box<IpamError>),
    /// The store failed for another reason.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CommitError {
    /// A conflict on `object`: the plan read `expected`, the store has `found` (`None`:
    /// absent, written `none`).
    pub fn conflict(object: String, expected: Option<u64>, found: Option<u64>) -> Self {
        let v = |x: Option<u64>| x.map_or_else(|| "none".to_owned(), |v| v.to_string());
        Self::Conflict {
            object,
            expected: v(expected),
            found: v(found),
        }
    }

    /// A store failure with this reason.
    pub fn store(reason: impl Into<String>) -> Self {
        Self::Store(StoreError::new(reason))
    }

    /// Whether this is a conflict (the plan is stale; re-plan and retry).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

impl From<StoreError> for IpamError {
    fn from(e: StoreError) -> Self {
        Self::Store { reason: e.reason }
    }
}

impl From<CommitError> for IpamError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Conflict {
                object,
                expected,
                found,
            } => Self::Conflict {
                object,
                expected,
                found,
            },
            CommitError::Rejected(e) => *e,
            CommitError::Store(e) => e.into(),
        }
    }
}
