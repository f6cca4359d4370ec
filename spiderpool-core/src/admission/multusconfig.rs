//! Admission of SpiderMultusConfig objects (being written).

use super::{ClusterState, FieldError, Operation};
use crate::objects::SpiderMultusConfig;

/// Mutating webhook.
pub(super) fn mutate(_obj: &mut SpiderMultusConfig) {}

/// Validating webhook.
pub(super) fn validate(
    _op: Operation,
    _obj: &SpiderMultusConfig,
    _old: Option<&SpiderMultusConfig>,
    _cluster: &ClusterState,
) -> Vec<FieldError> {
    Vec::new()
}
