//! `spiderpool-controller clean` (spec §7.5): the chart's pre-delete hook, so that
//! `helm uninstall` leaves nothing of Spiderpool behind.
//!
//! Steps, in this order (each tolerates "not found", so running it twice is fine):
//! 1. delete the Mutating- and ValidatingWebhookConfiguration (`--mutating`, `--validate`):
//!    first, or a webhook pointing at a dying controller would refuse the deletes below;
//! 2. delete every object of the six Spiderpool kinds and remove its finalizers. The delete
//!    comes first: once an object is being deleted nobody can add a finalizer again (a live
//!    controller or agent would re-add one removed before the delete);
//! 3. delete the six Spiderpool CRDs and wait until they are gone;
//! 4. delete the `spiderpool-init` Job (`SPIDERPOOL_POD_NAMESPACE` / `SPIDERPOOL_INIT_NAME`),
//!    its pods with it;
//! 5. delete the webhook configurations once more (a controller restarting meanwhile
//!    registers them again).
//!
//! A failing step does not stop the others: every failure is reported at the end.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;
use spiderpool_core::objects::{GROUP, KIND_INFOS, KindInfo};
use spiderpool_k8s::kinds::api_resource;

use crate::error::is_not_found;
use crate::ippool::parse_secs;
use crate::webhook::DEFAULT_NAME;

/// Flags and environment of `spiderpool-controller clean` (upstream's names).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "clean")]
pub struct Args {
    /// Name of the ValidatingWebhookConfiguration to delete.
    #[arg(long = "validate", default_value = DEFAULT_NAME, value_name = "NAME")]
    pub validate: String,
    /// Name of the MutatingWebhookConfiguration to delete.
    #[arg(long = "mutating", default_value = DEFAULT_NAME, value_name = "NAME")]
    pub mutating: String,
    /// Namespace of the init Job (the release namespace); without it the Job is left alone.
    #[arg(
        long = "init-namespace",
        env = "SPIDERPOOL_POD_NAMESPACE",
        value_name = "NS"
    )]
    pub init_namespace: Option<String>,
    /// Name of the init Job.
    #[arg(
        long = "init-name",
        env = "SPIDERPOOL_INIT_NAME",
        default_value = "spiderpool-init",
        value_name = "NAME"
    )]
    pub init_name: String,
    /// How long to wait for the CRDs to be gone (seconds).
    #[arg(long = "timeout", default_value = "120", value_parser = parse_secs, value_name = "SECONDS")]
    pub timeout: Duration,
}

/// The clean-up ran to the end but some steps failed; each entry says which and why.
#[derive(Debug, thiserror::Error)]
#[error("clean-up incomplete, {} failure(s): {}", .0.len(), .0.join("; "))]
pub struct Incomplete(pub Vec<String>);

/// What was deleted, for the log and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Webhook configurations deleted (0 to 2 per pass).
    pub webhook_configurations: usize,
    /// Spiderpool objects deleted, by kind, in [`KIND_INFOS`] order.
    pub objects: Vec<(&'static str, usize)>,
    /// CRDs deleted.
    pub crds: usize,
    /// Whether the init Job was found and deleted.
    pub init_job: bool,
}

/// Objects deleted at once.
const PARALLEL: usize = 16;
/// Page size of the lists.
const PAGE: u32 = 500;

/// The names of the CRDs the chart installs for the six kinds.
pub fn crd_names() -> Vec<String> {
    KIND_INFOS
        .iter()
        .map(|k| format!("{}.{GROUP}", k.plural))
        .collect()
}

/// Runs every step; `Err` lists what failed (after trying everything).
pub async fn run(client: &Client, args: &Args) -> Result<Summary, Incomplete> {
    let mut failures = Vec::new();
    let mut summary = Summary {
        webhook_configurations: delete_webhooks(client, args, &mut failures).await,
        ..Summary::default()
    };
    for info in &KIND_INFOS {
        let n = delete_all(client, info, &mut failures).await;
        summary.objects.push((info.kind, n));
    }
    summary.crds = delete_crds(client, args.timeout, &mut failures).await;
    summary.init_job = delete_init_job(client, args, &mut failures).await;
    summary.webhook_configurations += delete_webhooks(client, args, &mut failures).await;
    log::info!("clean: {summary:?}");
    if failures.is_empty() {
        Ok(summary)
    } else {
        Err(Incomplete(failures))
    }
}

/// Deletes one object by name; `Ok(true)` when it existed.
async fn delete_named<K>(api: &Api<K>, name: &str, dp: &DeleteParams) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, dp).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn delete_webhooks(client: &Client, args: &Args, failures: &mut Vec<String>) -> usize {
    let dp = DeleteParams::default();
    let mut n = 0;
    let m: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    match delete_named(&m, &args.mutating, &dp).await {
        Ok(found) => n += usize::from(found),
        Err(e) => failures.push(format!(
            "delete MutatingWebhookConfiguration {}: {e}",
            args.mutating
        )),
    }
    let v: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    match delete_named(&v, &args.validate, &dp).await {
        Ok(found) => n += usize::from(found),
        Err(e) => failures.push(format!(
            "delete ValidatingWebhookConfiguration {}: {e}",
            args.validate
        )),
    }
    n
}

/// Deletes every object of `info`'s kind (all namespaces) and removes its finalizers.
async fn delete_all(client: &Client, info: &KindInfo, failures: &mut Vec<String>) -> usize {
    let ar = api_resource(info);
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let mut deleted = 0;
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = match all.list(&lp).await {
            Ok(p) => p,
            // No CRD: nothing of this kind exists.
            Err(e) if is_not_found(&e) => return deleted,
            Err(e) => {
                failures.push(format!("list {}s: {e}", info.kind));
                return deleted;
            }
        };
        let outcomes: Vec<Result<bool, String>> = futures::stream::iter(page.items)
            .map(|obj| delete_object(client, &ar, info, obj))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for o in outcomes {
            match o {
                Ok(found) => deleted += usize::from(found),
                Err(e) => failures.push(e),
            }
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return deleted;
        }
    }
}

async fn delete_object(
    client: &Client,
    ar: &kube::api::ApiResource,
    info: &KindInfo,
    obj: DynamicObject,
) -> Result<bool, String> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let (api, shown): (Api<DynamicObject>, String) = match &obj.metadata.namespace {
        Some(ns) => (
            Api::namespaced_with(client.clone(), ns, ar),
            format!("{} {ns}/{name}", info.kind),
        ),
        None => (
            Api::all_with(client.clone(), ar),
            format!("{} {name}", info.kind),
        ),
    };
    let still_there = match api.delete(&name, &DeleteParams::background()).await {
        // The apiserver answers with the object while finalizers hold it.
        Ok(either) => either.left(),
        Err(e) if is_not_found(&e) => return Ok(false),
        Err(e) => return Err(format!("delete {shown}: {e}")),
    };
    let held = still_there.is_some_and(|o| o.metadata.finalizers.is_some_and(|f| !f.is_empty()));
    if held {
        let patch = json!({"metadata": {"finalizers": null}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(format!("remove the finalizers of {shown}: {e}")),
        }
    }
    log::debug!("deleted {shown}");
    Ok(true)
}

/// Deletes the Spiderpool CRDs and waits until the apiserver has removed them (it deletes
/// their remaining objects first).
async fn delete_crds(client: &Client, timeout: Duration, failures: &mut Vec<String>) -> usize {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dp = DeleteParams::background();
    let mut deleted = 0;
    let mut pending = Vec::new();
    for name in crd_names() {
        match delete_named(&api, &name, &dp).await {
            Ok(true) => {
                deleted += 1;
                pending.push(name);
            }
            Ok(false) => {}
            Err(e) => failures.push(format!("delete CustomResourceDefinition {name}: {e}")),
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    while !pending.is_empty() {
        let mut left = Vec::new();
        for name in pending {
            match api.get_opt(&name).await {
                Ok(None) => {}
                Ok(Some(_)) => left.push(name),
                Err(e) => {
                    failures.push(format!("get CustomResourceDefinition {name}: {e}"));
                }
            }
        }
        pending = left;
        if pending.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            failures.push(format!(
                "CustomResourceDefinitions still there after {timeout:?}: {}",
                pending.join(", ")
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    deleted
}

async fn delete_init_job(client: &Client, args: &Args, failures: &mut Vec<String>) -> bool {
    let Some(ns) = args.init_namespace.as_deref().filter(|n| !n.is_empty()) else {
        log::warn!(
            "SPIDERPOOL_POD_NAMESPACE is not set: the Job {} is not looked for (--init-namespace)",
            args.init_name
        );
        return false;
    };
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    // Background: the Job's pods go with it (a Job's default is to orphan them).
    match delete_named(&api, &args.init_name, &DeleteParams::background()).await {
        Ok(found) => found,
        Err(e) => {
            failures.push(format!("delete Job {ns}/{}: {e}", args.init_name));
            false
        }
    }
}
