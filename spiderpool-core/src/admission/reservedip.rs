//! Admission of SpiderReservedIP objects (being written).

use super::{FieldError, Operation, Switches};
use crate::objects::SpiderReservedIP;

/// Mutating webhook.
pub(super) fn mutate(_obj: &mut SpiderReservedIP) {}

/// Validating webhook.
pub(super) fn validate(
    _op: Operation,
    _obj: &SpiderReservedIP,
    _old: Option<&SpiderReservedIP>,
    _switches: &Switches,
) -> Vec<FieldError> {
    Vec::new()
}
