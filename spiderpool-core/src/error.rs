//! The umbrella error of `spiderpool-core`. Each module has its own error type, returned by
//! the functions that can only fail that way: [`IpError`], [`ManifestError`] (manifests and
//! objects), [`RenderError`], [`CoordinatorError`], [`IpamError`] (with the store contract's
//! [`CommitError`] and [`StoreError`]) and the CNI's [`CniError`](crate::cni::CniError).
//! [`Error`](enum@Error) holds any of them and converts from each, so `?` works across modules.
//!
//! Admission (validation) failures are not errors of this kind: they are data
//! (lists of field errors) because a webhook reports all of them at once.

use thiserror::Error;

use crate::coordinator::CoordinatorError;
use crate::ip::IpError;
use crate::ipam::{CommitError, IpamError, StoreError};
use crate::manifest::ManifestError;
use crate::multus::RenderError;

/// Anything that can go wrong in `spiderpool-core`: one module's error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// An address, range or CIDR ([`crate::ip`]).
    #[error(transparent)]
    Ip(#[from] IpError),
    /// A manifest or object ([`crate::manifest`], [`crate::objects`]).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Rendering a SpiderMultusConfig ([`crate::multus`]).
    #[error(transparent)]
    Multus(#[from] RenderError),
    /// Coordinator settings and planning ([`crate::coordinator`]).
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// A CNI protocol failure (environment, network configuration, version negotiation or
    /// result conversion), carrying its CNI error code.
    #[error("CNI error {}: {}", .0.code, .0)]
    Cni(Box<crate::cni::CniError>),
    /// The IPAM and its store ([`crate::ipam`]).
    #[error(transparent)]
    Ipam(#[from] IpamError),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Ipam(e.into())
    }
}

impl From<CommitError> for Error {
    fn from(e: CommitError) -> Self {
        Self::Ipam(e.into())
    }
}
