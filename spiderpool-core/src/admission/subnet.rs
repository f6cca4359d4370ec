//! Admission of subnet objects (being written).

use super::{ClusterState, FieldError, Operation, Switches};
use crate::objects::SpiderSubnet;

/// Mutating webhook.
pub(super) fn mutate(_obj: &mut SpiderSubnet, _cluster: &ClusterState, _switches: &Switches) {}

/// Validating webhook.
pub(super) fn validate(
    _op: Operation,
    _obj: &SpiderSubnet,
    _old: Option<&SpiderSubnet>,
    _cluster: &ClusterState,
    _switches: &Switches,
) -> Vec<FieldError> {
    Vec::new()
}
