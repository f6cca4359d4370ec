//! Admission of ippool objects (being written).

use super::{ClusterState, FieldError, Operation, Switches};
use crate::objects::SpiderIPPool;

/// Mutating webhook.
pub(super) fn mutate(_obj: &mut SpiderIPPool, _cluster: &ClusterState, _switches: &Switches) {}

/// Validating webhook.
pub(super) fn validate(
    _op: Operation,
    _obj: &SpiderIPPool,
    _old: Option<&SpiderIPPool>,
    _cluster: &ClusterState,
    _switches: &Switches,
) -> Vec<FieldError> {
    Vec::new()
}
