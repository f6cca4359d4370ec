//! The one error type of `spiderpool-core`.
//!
//! Admission (validation) failures are not errors of this kind: they are data
//! (lists of field errors) because a webhook reports all of them at once.

use thiserror::Error;

/// Everything that can go wrong in `spiderpool-core`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    // --- ip: addresses, ranges, CIDRs (owned by src/ip) ---
    /// Text that should be an IP address is not one.
    #[error("invalid IP address {input:?}: {reason}")]
    InvalidIp {
        /// The text as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    // --- end ip ---

    // --- manifest / objects (owned by src/manifest, src/objects) ---
    // --- end manifest ---

    // --- multus rendering (owned by src/multus) ---
    // --- end multus ---

    // --- coordinator planning (owned by src/coordinator) ---
    // --- end coordinator ---
}
