//! The MutatingWebhookConfiguration and ValidatingWebhookConfiguration, as upstream's chart
//! writes them (names, rules, `failurePolicy: Fail`, `sideEffects: None`, v1 reviews, the
//! apiserver's default 10 s timeout), applied with server-side apply so a restart updates
//! them in place.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use spiderpool_core::objects::{GROUP, IPPOOL, KindInfo, SUBNET};

use super::review::{Hook, KINDS, path};
use crate::{Error, Result};

/// Where the apiserver calls the webhooks.
#[derive(Debug, Clone)]
pub enum Target {
    /// `clientConfig.url`: `https://<addr>` (out of cluster, e.g. `127.0.0.1:PORT`).
    Url(String),
    /// `clientConfig.service`.
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its port.
        port: u16,
    },
}

/// The webhook timeout: upstream's chart sets none, so the apiserver's default.
pub const TIMEOUT_SECONDS: i32 = 10;

fn operations(hook: Hook, kind: &KindInfo) -> Vec<&'static str> {
    // Deletion is validated for pools and subnets only (and refused only when the
    // ConfigMap asks for it).
    if hook == Hook::Validate && (kind.kind == IPPOOL.kind || kind.kind == SUBNET.kind) {
        vec!["CREATE", "UPDATE", "DELETE"]
    } else {
        vec!["CREATE", "UPDATE"]
    }
}

fn webhooks(hook: Hook, target: &Target, ca_pem: Option<&[u8]>) -> Vec<Value> {
    KINDS
        .iter()
        .map(|kind| {
            let p = path(hook, kind);
            let mut client = match target {
                Target::Url(base) => json!({"url": format!("https://{base}{p}")}),
                Target::Service {
                    namespace,
                    name,
                    port,
                } => json!({"service": {"namespace": namespace, "name": name, "path": p, "port": port}}),
            };
            if let Some(ca) = ca_pem {
                client["caBundle"] =
                    serde_json::to_value(k8s_openapi::ByteString(ca.to_vec())).unwrap_or(Value::Null);
            }
            json!({
                "name": format!("{}.{GROUP}", kind.singular),
                "admissionReviewVersions": ["v1"],
                "clientConfig": client,
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "timeoutSeconds": TIMEOUT_SECONDS,
                "rules": [{
                    "apiGroups": [GROUP],
                    "apiVersions": ["v2beta1"],
                    "operations": operations(hook, kind),
                    "resources": [kind.plural],
                }],
            })
        })
        .collect()
}

/// The two configurations named `name`, as JSON.
pub fn configurations(name: &str, target: &Target, ca_pem: Option<&[u8]>) -> (Value, Value) {
    let m = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": webhooks(Hook::Mutate, target, ca_pem),
    });
    let v = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": webhooks(Hook::Validate, target, ca_pem),
    });
    (m, v)
}

/// Creates or updates both configurations.
pub async fn apply(
    client: &kube::Client,
    name: &str,
    target: &Target,
    ca_pem: Option<&[u8]>,
) -> Result<()> {
    let (m, v) = configurations(name, target, ca_pem);
    let pp = PatchParams::apply("spiderpool-controller").force();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(name, &pp, &Patch::Apply(&m))
        .await
        .map_err(|e| Error::api(format!("applying MutatingWebhookConfiguration {name}"), e))?;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(name, &pp, &Patch::Apply(&v))
        .await
        .map_err(|e| Error::api(format!("applying ValidatingWebhookConfiguration {name}"), e))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn configurations_as_upstreams_chart() {
        let t = Target::Service {
            namespace: "kube-system".into(),
            name: "spiderpool-controller".into(),
            port: 5722,
        };
        let (m, v) = configurations("spiderpool-controller", &t, Some(b"PEM"));
        let hooks = m["webhooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 5);
        let pool = hooks
            .iter()
            .find(|h| h["name"] == "spiderippool.spiderpool.spidernet.io")
            .unwrap();
        assert_eq!(
            pool["clientConfig"]["service"]["path"],
            "/mutate-spiderpool-spidernet-io-v2beta1-spiderippool"
        );
        assert_eq!(pool["clientConfig"]["service"]["port"], 5722);
        assert_eq!(pool["clientConfig"]["caBundle"], "UEVN");
        assert_eq!(pool["failurePolicy"], "Fail");
        assert_eq!(pool["rules"][0]["operations"], json!(["CREATE", "UPDATE"]));
        let vpool = v["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "spiderippool.spiderpool.spidernet.io")
            .unwrap();
        assert_eq!(
            vpool["rules"][0]["operations"],
            json!(["CREATE", "UPDATE", "DELETE"])
        );
        // The typed API reads them.
        let _: MutatingWebhookConfiguration = serde_json::from_value(m).unwrap();
        let _: ValidatingWebhookConfiguration = serde_json::from_value(v).unwrap();
    }
}
