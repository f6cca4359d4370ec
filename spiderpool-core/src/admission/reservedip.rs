//! Admission of SpiderReservedIP objects (spec §1.4; upstream
//! `pkg/reservedipmanager/reservedip_*.go`).
//!
//! Mutation: `ipVersion` from `ips[0]`, merged `ips`. Validation: version, and every entry a
//! range of that version. Deletion is always allowed.

use super::common::{
    IPS, aliases_ipv4_message, check_name, check_version, merge_in_place, not_changeable,
    parse_range_entry, terminating,
};
use super::{FieldError, Operation, Switches};
use crate::ip::IpRange;
use crate::objects::SpiderReservedIP;

/// Upstream's message when the mutating webhook could not derive `ipVersion`.
const VERSION_UNSET: &str =
    "is not generated correctly, 'spec.ips' is empty or 'spec.ips[0]' may be invalid";

/// Mutating webhook (upstream `mutateReservedIP`); skipped steps are reported by the
/// validator.
pub(super) fn mutate(obj: &mut SpiderReservedIP) {
    if obj.metadata.is_terminating() {
        return;
    }
    let Some(first) = obj.spec.ips.as_ref().and_then(|ips| ips.first()) else {
        return;
    };
    if obj.spec.ip_version.is_none() {
        let Ok(range) = IpRange::parse(first) else {
            return;
        };
        obj.spec.ip_version = Some(i64::from(range.family().version()));
    }
    let Some(family) = obj
        .spec
        .ip_version
        .and_then(crate::ip::IpFamily::from_version)
    else {
        return;
    };
    merge_in_place(family, &mut obj.spec.ips);
}

/// Validating webhook (upstream `ValidateCreate`/`ValidateUpdate`; DELETE is always allowed).
pub(super) fn validate(
    op: Operation,
    obj: &SpiderReservedIP,
    old: Option<&SpiderReservedIP>,
    switches: &Switches,
) -> Vec<FieldError> {
    if op == Operation::Delete {
        return Vec::new();
    }
    let mut errs = check_name(&obj.metadata);
    if op == Operation::Update {
        if obj.metadata.is_terminating() {
            // The update that starts the deletion passes; later ones are refused (reserved
            // IPs have no finalizer, so there is nothing left to change).
            if old.is_some_and(|o| o.metadata.is_terminating()) {
                errs.push(terminating("cannot update a terminating ReservedIP"));
            }
            return errs;
        }
        if let Some(old) = old
            && let (Some(new_v), Some(old_v)) = (obj.spec.ip_version, old.spec.ip_version)
            && new_v != old_v
        {
            errs.push(not_changeable("spec.ipVersion"));
            return errs;
        }
    }
    let family = match check_version(obj.spec.ip_version, switches, VERSION_UNSET) {
        Ok(f) => f,
        Err(e) => {
            errs.push(e);
            return errs;
        }
    };
    // Every bad entry, each on its index as written.
    for (i, entry) in obj.spec.ips.iter().flatten().enumerate() {
        match parse_range_entry(family, IPS, i, entry) {
            Ok(r) if r.aliases_ipv4() => errs.push(FieldError::invalid(
                format!("{IPS}[{i}]"),
                aliases_ipv4_message(entry),
            )),
            Ok(_) => {}
            Err(e) => errs.push(e),
        }
    }
    errs
}
