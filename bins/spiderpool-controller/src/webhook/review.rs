//! One AdmissionReview (`admission.k8s.io/v1`) in, one out: the routes, the mutating answer
//! (a JSONPatch of what core's `mutate` changed) and the validating answer (core's
//! `validate`), against a [`ClusterState`] the caller takes from the watch caches.

use serde_json::{Map, Value, json};
use spiderpool_core::admission::{self, ClusterState, FieldError, Operation, Reason, Switches};
use spiderpool_core::manifest::SpiderObject;
use spiderpool_core::objects::{
    COORDINATOR, GROUP, IPPOOL, KindInfo, MULTUSCONFIG, RESERVEDIP, SUBNET,
};

/// The kinds with webhooks, in upstream's registration order.
pub const KINDS: [&KindInfo; 5] = [&SUBNET, &IPPOOL, &RESERVEDIP, &MULTUSCONFIG, &COORDINATOR];

/// Which of the two webhooks of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Defaulting: answers with a JSONPatch.
    Mutate,
    /// Checking: allows or refuses.
    Validate,
}

impl Hook {
    fn prefix(self) -> &'static str {
        match self {
            Hook::Mutate => "mutate",
            Hook::Validate => "validate",
        }
    }
}

/// Upstream's path of a webhook, e.g. `/mutate-spiderpool-spidernet-io-v2beta1-spiderippool`.
pub fn path(hook: Hook, kind: &KindInfo) -> String {
    format!(
        "/{}-spiderpool-spidernet-io-v2beta1-{}",
        hook.prefix(),
        kind.kind.to_ascii_lowercase()
    )
}

/// The webhook served at `path`, if any.
pub fn route(path_: &str) -> Option<(Hook, &'static KindInfo)> {
    KINDS.iter().find_map(|kind| {
        [Hook::Mutate, Hook::Validate]
            .into_iter()
            .find(|hook| path(*hook, kind) == path_)
            .map(|hook| (hook, *kind))
    })
}

/// Why a request body is not an AdmissionReview we can answer (the server answers 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON.
    #[error("the body is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not an `admission.k8s.io/v1` AdmissionReview with a request.
    #[error("not an admission.k8s.io/v1 AdmissionReview: {0}")]
    Shape(String),
}

/// Answers the AdmissionReview `body` for `hook` of `kind`.
pub fn answer(
    hook: Hook,
    kind: &KindInfo,
    body: &[u8],
    cluster: &ClusterState,
    switches: &Switches,
) -> Result<Value, ReviewError> {
    let review: Value = serde_json::from_slice(body)?;
    let shape = |what: &str| ReviewError::Shape(what.to_owned());
    if review.get("apiVersion").and_then(Value::as_str) != Some("admission.k8s.io/v1") {
        return Err(shape("apiVersion must be admission.k8s.io/v1"));
    }
    if review.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err(shape("kind must be AdmissionReview"));
    }
    let request = review
        .get("request")
        .and_then(Value::as_object)
        .ok_or_else(|| shape("no request"))?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .ok_or_else(|| shape("request.uid is missing"))?;
    let op = request
        .get("operation")
        .and_then(Value::as_str)
        .ok_or_else(|| shape("request.operation is missing"))?;
    let response = match decide(hook, kind, op, request, cluster, switches) {
        Ok(None) => json!({"uid": uid, "allowed": true}),
        Ok(Some(patch)) => {
            // k8s-openapi's ByteString serialises as base64, as `patch` must be.
            let bytes = serde_json::to_vec(&patch).unwrap_or_default();
            let encoded =
                serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap_or(Value::Null);
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": encoded})
        }
        Err(status) => json!({"uid": uid, "allowed": false, "status": status}),
    };
    Ok(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }))
}

/// `Ok(None)`: allowed unchanged; `Ok(Some(patch))`: allowed with a JSONPatch; `Err`: the
/// refusal's `Status`.
fn decide(
    hook: Hook,
    kind: &KindInfo,
    op: &str,
    request: &Map<String, Value>,
    cluster: &ClusterState,
    switches: &Switches,
) -> Result<Option<Vec<Value>>, Value> {
    let op = match op {
        "CREATE" => Operation::Create,
        "UPDATE" => Operation::Update,
        "DELETE" => Operation::Delete,
        // CONNECT is never registered; nothing to check.
        _ => return Ok(None),
    };
    let object = |key: &str| -> Result<Option<SpiderObject>, Value> {
        match request.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let mut v = v.clone();
                if kind.kind == MULTUSCONFIG.kind {
                    // The apiserver may have defaulted a current field next to an older
                    // spelling (`mode: auto` beside `tuneMode`): core reads one or the other.
                    crate::multusconfig::normalize_legacy(&mut v);
                }
                let obj = SpiderObject::from_value(v)
                    .map_err(|e| status(400, "BadRequest", format!("cannot read {key}: {e}")))?;
                if obj.kind() != kind.kind {
                    return Err(status(
                        400,
                        "BadRequest",
                        format!("this webhook admits {}, not {}", kind.kind, obj.kind()),
                    ));
                }
                Ok(Some(obj))
            }
        }
    };
    let old = object("oldObject")?;
    match hook {
        Hook::Mutate => {
            if op == Operation::Delete {
                return Ok(None);
            }
            // The patch is taken against the object as received, older spellings included.
            let raw = request.get("object").unwrap_or(&Value::Null);
            let Some(mut obj) = object("object")? else {
                return Err(status(
                    400,
                    "BadRequest",
                    "request.object is missing".into(),
                ));
            };
            admission::mutate(&mut obj, cluster, switches);
            let after = obj.to_value().map_err(|e| {
                status(
                    500,
                    "InternalError",
                    format!("cannot encode the object: {e}"),
                )
            })?;
            let patch = patch_of(raw, &after);
            Ok((!patch.is_empty()).then_some(patch))
        }
        Hook::Validate => {
            let obj = match op {
                Operation::Delete => old.clone(),
                _ => object("object")?,
            };
            let Some(obj) = obj else {
                return Err(status(
                    400,
                    "BadRequest",
                    "request.object is missing".into(),
                ));
            };
            let errors = admission::validate(op, &obj, old.as_ref(), cluster, switches);
            if errors.is_empty() {
                Ok(None)
            } else {
                Err(refusal(kind, obj.name(), &errors))
            }
        }
    }
}

fn status(code: u16, reason: &str, message: String) -> Value {
    json!({"status": "Failure", "code": code, "reason": reason, "message": message})
}

/// A refusal as the apiserver's own errors read (`NewInvalid`, `NewForbidden`,
/// `NewAlreadyExists`): `<plural>.<group> "<name>" is invalid: <errors>`.
fn refusal(kind: &KindInfo, name: &str, errors: &[FieldError]) -> Value {
    let all = |r: Reason| errors.iter().all(|e| e.reason == r);
    let list = match errors {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let resource = format!("{}.{GROUP} {name:?}", kind.plural);
    let (code, reason, message) = if all(Reason::Forbidden) {
        (403, "Forbidden", format!("{resource} is forbidden: {list}"))
    } else if all(Reason::AlreadyExists) {
        (
            409,
            "AlreadyExists",
            format!("{resource} already exists: {list}"),
        )
    } else {
        (422, "Invalid", format!("{resource} is invalid: {list}"))
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": format!("Field{}", e.reason), "message": e.message, "field": e.path}))
        .collect();
    json!({
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": {"name": name, "group": GROUP, "kind": kind.plural, "causes": causes},
    })
}

/// The JSONPatch that turns the object as received (`raw`) into the defaulted one (`after`,
/// core's typed serialisation). `spec` is compared in full, so spellings core reads as
/// aliases (`spiderpoolConfigPools.IPv4IPPool`, `tuneMode`) are moved to the current fields;
/// of `metadata` only what the mutating webhooks set (labels, annotations, finalizers, owner
/// references) is added or replaced, never removed; `status` and the rest stay as sent.
pub fn patch_of(raw: &Value, after: &Value) -> Vec<Value> {
    let mut ops = Vec::new();
    let empty = Value::Object(Map::new());
    let raw_meta = raw.get("metadata").unwrap_or(&empty);
    let new_meta = after.get("metadata").unwrap_or(&empty);
    for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
        if let Some(new) = new_meta.get(key) {
            let path = format!("/metadata/{key}");
            match raw_meta.get(key) {
                None if raw.get("metadata").is_none() => {
                    ops.push(json!({"op": "add", "path": "/metadata", "value": {}}));
                    ops.push(json!({"op": "add", "path": path, "value": new}));
                }
                None => ops.push(json!({"op": "add", "path": path, "value": new})),
                Some(old) => diff(&path, old, new, false, &mut ops),
            }
        }
    }
    match (raw.get("spec"), after.get("spec")) {
        (Some(old), Some(new)) => diff("/spec", old, new, true, &mut ops),
        (None, Some(new)) => ops.push(json!({"op": "add", "path": "/spec", "value": new})),
        // Core never drops a spec it was given.
        _ => {}
    }
    ops
}

/// JSON pointer escaping of one key (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn diff(path: &str, old: &Value, new: &Value, remove: bool, ops: &mut Vec<Value>) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            if remove {
                for key in o.keys().filter(|k| !n.contains_key(*k)) {
                    ops.push(json!({"op": "remove", "path": format!("{path}/{}", escape(key))}));
                }
            }
            for (key, value) in n {
                let sub = format!("{path}/{}", escape(key));
                match o.get(key) {
                    Some(was) => diff(&sub, was, value, remove, ops),
                    None => ops.push(json!({"op": "add", "path": sub, "value": value})),
                }
            }
        }
        (o, n) if o != n => ops.push(json!({"op": "replace", "path": path, "value": n})),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn review(op: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u-1", "operation": op, "object": object},
        }))
        .unwrap()
    }

    fn decode_patch(resp: &Value) -> Vec<Value> {
        let b: k8s_openapi::ByteString =
            serde_json::from_value(resp["response"]["patch"].clone()).unwrap();
        serde_json::from_slice(&b.0).unwrap()
    }

    #[test]
    fn routes_are_upstreams_paths() {
        assert_eq!(
            route("/mutate-spiderpool-spidernet-io-v2beta1-spiderippool"),
            Some((Hook::Mutate, &IPPOOL))
        );
        assert_eq!(
            route("/validate-spiderpool-spidernet-io-v2beta1-spidermultusconfig"),
            Some((Hook::Validate, &MULTUSCONFIG))
        );
        assert_eq!(
            route("/validate-spiderpool-spidernet-io-v2beta1-spiderendpoint"),
            None
        );
    }

    #[test]
    fn mutating_a_pool_patches_its_defaults() {
        let pool = json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
            "metadata": {"name": "p"},
            "spec": {"subnet": "10.6.0.0/16", "ips": ["10.6.0.20-10.6.0.30", "10.6.0.10-10.6.0.19"]},
        });
        let out = answer(
            Hook::Mutate,
            &IPPOOL,
            &review("CREATE", pool.clone()),
            &ClusterState::default(),
            &Switches::default(),
        )
        .unwrap();
        assert_eq!(out["response"]["uid"], "u-1");
        assert_eq!(out["response"]["allowed"], true);
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let ops = decode_patch(&out);
        let find = |p: &str| ops.iter().find(|o| o["path"] == p).cloned();
        assert_eq!(find("/spec/ipVersion").unwrap()["value"], 4);
        assert_eq!(
            find("/spec/ips").unwrap()["value"],
            json!(["10.6.0.10-10.6.0.30"])
        );
        assert_eq!(
            find("/metadata/finalizers").unwrap()["value"],
            json!(["spiderpool.spidernet.io"])
        );
        assert_eq!(
            find("/metadata/labels").unwrap()["value"]["ipam.spidernet.io/ippool-cidr"],
            "10-6-0-0-16"
        );
    }

    #[test]
    fn mutating_an_smc_moves_the_old_spellings() {
        let smc = json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderMultusConfig",
            "metadata": {"name": "macvlan-ens192", "namespace": "default"},
            "spec": {"cniType": "macvlan", "enableCoordinator": true,
                "coordinator": {"podCIDRType": "cluster", "tuneMode": "overlay", "mode": "auto"},
                "macvlan": {"master": ["ens192"], "spiderpoolConfigPools": {"IPv4IPPool": ["10-6-v4"]}, "vlanID": 0}},
        });
        let out = answer(
            Hook::Mutate,
            &MULTUSCONFIG,
            &review("CREATE", smc.clone()),
            &ClusterState::default(),
            &Switches::default(),
        )
        .unwrap();
        let ops = decode_patch(&out);
        let patch: json_patch_apply::Patch = ops.clone();
        let patched = json_patch_apply::apply(smc, &patch);
        assert_eq!(
            patched["spec"]["macvlan"]["ippools"]["ipv4"],
            json!(["10-6-v4"])
        );
        assert!(
            patched["spec"]["macvlan"]
                .get("spiderpoolConfigPools")
                .is_none()
        );
        assert_eq!(patched["spec"]["coordinator"]["mode"], "overlay");
        assert!(patched["spec"]["coordinator"].get("tuneMode").is_none());
    }

    #[test]
    fn validating_refuses_a_gateway_inside_ips_with_upstreams_reason() {
        let pool = json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
            "metadata": {"name": "gw"},
            "spec": {"ipVersion": 4, "subnet": "10.7.0.0/16", "gateway": "10.7.0.1", "ips": ["10.7.0.1-10.7.0.9"]},
        });
        let out = answer(
            Hook::Validate,
            &IPPOOL,
            &review("CREATE", pool),
            &ClusterState::default(),
            &Switches::default(),
        )
        .unwrap();
        let r = &out["response"];
        assert_eq!(r["allowed"], false);
        assert_eq!(r["status"]["code"], 422);
        let msg = r["status"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("spiderippools.spiderpool.spidernet.io \"gw\" is invalid: spec.ips[0]"),
            "{msg}"
        );
        assert!(msg.contains("conflicts with 'spec.gateway'"), "{msg}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let st = ClusterState::default();
        let sw = Switches::default();
        assert!(matches!(
            answer(Hook::Mutate, &IPPOOL, b"{nope", &st, &sw),
            Err(ReviewError::Json(_))
        ));
        assert!(matches!(
            answer(Hook::Mutate, &IPPOOL, br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#, &st, &sw),
            Err(ReviewError::Shape(_))
        ));
        // A wrong kind, or an object core cannot read, is a refusal with the uid.
        let out = answer(Hook::Validate, &SUBNET, &review("CREATE", json!({"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool", "metadata": {"name": "x"}, "spec": {}})), &st, &sw).unwrap();
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 400);
        let out = answer(Hook::Mutate, &IPPOOL, &review("CREATE", json!({"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool", "metadata": {"name": "x"}, "spec": {"ips": 7}})), &st, &sw).unwrap();
        assert_eq!(out["response"]["allowed"], false);
    }

    /// A minimal RFC 6902 applier for the ops `patch_of` emits (add, remove, replace).
    mod json_patch_apply {
        use serde_json::Value;

        pub type Patch = Vec<Value>;

        pub fn apply(mut doc: Value, patch: &Patch) -> Value {
            for op in patch {
                let path = op["path"].as_str().unwrap();
                let mut parts: Vec<String> = path
                    .split('/')
                    .skip(1)
                    .map(|p| p.replace("~1", "/").replace("~0", "~"))
                    .collect();
                let last = parts.pop().unwrap();
                let mut at = &mut doc;
                for p in &parts {
                    at = at.get_mut(p.as_str()).unwrap();
                }
                let map = at.as_object_mut().unwrap();
                match op["op"].as_str().unwrap() {
                    "remove" => {
                        map.remove(&last).unwrap();
                    }
                    _ => {
                        map.insert(last, op["value"].clone());
                    }
                }
            }
            doc
        }
    }
}
