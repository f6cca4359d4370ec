//! Admission of SpiderCoordinator objects (being written).

use super::{FieldError, Operation};
use crate::objects::SpiderCoordinator;

/// Mutating webhook.
pub(super) fn mutate(_obj: &mut SpiderCoordinator) {}

/// Validating webhook.
pub(super) fn validate(_op: Operation, _obj: &SpiderCoordinator) -> Vec<FieldError> {
    Vec::new()
}
