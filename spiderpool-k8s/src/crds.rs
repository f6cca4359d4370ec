//! The CustomResourceDefinitions we install: the six Spiderpool kinds, generated from core's
//! Rust types, and Multus's NetworkAttachmentDefinition (which upstream's chart ships too).
//!
//! The chart keeps them as files under `charts/spiderpool/crds/` ([`crd_files`] gives each
//! file's name and text; a test checks that the committed files are exactly this output).

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};
use spiderpool_core::objects::crd::custom_resource_definitions;

use crate::error::{Error, Result};

/// Field manager of everything this crate applies.
pub const FIELD_MANAGER: &str = "spiderpool";

/// Multus's NetworkAttachmentDefinition CRD (`k8s.cni.cncf.io/v1`): `spec.config` holds the
/// CNI configuration as a JSON string.
pub fn network_attachment_definition_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
        "spec": {
            "group": "k8s.cni.cncf.io",
            "scope": "Namespaced",
            "names": {
                "plural": "network-attachment-definitions",
                "singular": "network-attachment-definition",
                "kind": "NetworkAttachmentDefinition",
                "shortNames": ["net-attach-def"]
            },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "description": "A network a pod can be attached to (Network Plumbing \
                                    Working Group multi-network specification).",
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {
                            "description": "How to attach to the network.",
                            "type": "object",
                            "properties": {
                                "config": {
                                    "description": "The CNI configuration, as JSON text.",
                                    "type": "string"
                                }
                            }
                        }
                    }
                }}
            }]
        }
    })
}

/// Every CRD we install, Spiderpool's six first.
pub fn all_crds() -> Vec<Value> {
    let mut crds = custom_resource_definitions();
    crds.push(network_attachment_definition_crd());
    crds
}

/// `(file name, YAML text)` for each CRD, as committed under `charts/spiderpool/crds/`.
/// File names follow `<group>_<plural>.yaml`, as upstream's chart names them.
pub fn crd_files() -> Result<Vec<(String, String)>> {
    all_crds()
        .into_iter()
        .map(|crd| {
            let group = crd["spec"]["group"].as_str().unwrap_or_default().to_owned();
            let plural = crd["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let text = serde_saphyr::to_string(&crd).map_err(|e| Error::Decode {
                kind: "CustomResourceDefinition".to_owned(),
                name: format!("{plural}.{group}"),
                reason: e.to_string(),
            })?;
            Ok((format!("{group}_{plural}.yaml"), text))
        })
        .collect()
}

/// Applies every CRD (server-side apply, forced: we own these definitions) and waits until
/// each is Established, so objects of the kinds can be created right after.
pub async fn install(client: &Client, timeout: Duration) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for crd in all_crds() {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|e| Error::api(format!("apply CRD {name}"), e))?;
        names.push(name);
    }
    for name in names {
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Error::Timeout(format!("CRD {name}: {e}"))),
            Err(_) => {
                return Err(Error::Timeout(format!(
                    "CRD {name} not Established after {timeout:?}"
                )));
            }
        }
    }
    Ok(())
}
