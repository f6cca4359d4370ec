//! Admission webhooks over HTTPS (§1, §1.8): a mutating and a validating webhook for every
//! Spiderpool kind with one (SpiderSubnet, SpiderIPPool, SpiderReservedIP,
//! SpiderMultusConfig, SpiderCoordinator; SpiderEndpoint has none upstream), on upstream's
//! paths, plus `GET /webhook-health-check`. The rules are core's [`admission`] functions, the
//! same ones `spiderpoolctl validate` runs; the existing objects they compare against come
//! from watch caches ([`cache`]).
//!
//! - [`review`]: one AdmissionReview in, one out (routes, JSONPatch, refusals);
//! - [`server`]: rustls on worker threads with plugin-support's bounded HTTP framing;
//! - [`certs`]: the serving certificate, from files or generated with its CA;
//! - [`register`]: the Mutating/ValidatingWebhookConfiguration, by URL or by Service.
//!
//! [`admission`]: spiderpool_core::admission

pub mod cache;
pub mod certs;
pub mod register;
pub mod review;
pub mod server;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spiderpool_core::admission::Switches;
use spiderpool_plugin_support::http::{Request, Response};

use self::cache::Cache;
use self::register::Target;
use self::server::{Bounds, Handler};
use crate::{Ctx, Error, Result};

/// Upstream's webhook port.
pub const DEFAULT_WEBHOOK_PORT: u16 = 5722;
/// The health check path.
pub const PATH_HEALTH: &str = "/webhook-health-check";
/// Upstream's name of the controller's Service and of both webhook configurations.
pub const DEFAULT_NAME: &str = "spiderpool-controller";

/// Flags and environment of the webhook server.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "webhook")]
pub struct Args {
    /// Port of the webhooks on every address, when `--webhook-listen` is not given.
    #[arg(
        id = "webhook_port",
        long = "webhook-port",
        env = "SPIDERPOOL_WEBHOOK_PORT",
        default_value_t = DEFAULT_WEBHOOK_PORT,
        value_name = "PORT"
    )]
    pub port: u16,
    /// Out of cluster: listen here and register the webhooks with
    /// `clientConfig.url: https://ADDR/<path>` (e.g. `127.0.0.1:9443`; port 0 picks one).
    #[arg(id = "webhook_listen", long = "webhook-listen", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Serving certificate (PEM chain); without it one is generated at start-up.
    #[arg(
        id = "tls_cert",
        long = "tls-cert",
        alias = "tls-server-cert",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// Key of `--tls-cert` (PEM).
    #[arg(
        id = "tls_key",
        long = "tls-key",
        alias = "tls-server-key",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// CA of `--tls-cert` (PEM), written as the configurations' `caBundle` when registering.
    #[arg(
        id = "tls_ca",
        long = "tls-ca",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_ca: Option<PathBuf>,
    /// In cluster: the Service the apiserver calls, `namespace/name`; default
    /// `$SPIDERPOOL_POD_NAMESPACE/spiderpool-controller` (else `kube-system`).
    #[arg(
        id = "webhook_service",
        long = "webhook-service",
        value_name = "NS/NAME"
    )]
    pub service: Option<String>,
    /// Name of the Mutating- and ValidatingWebhookConfiguration.
    #[arg(
        id = "webhook_config_name",
        long = "webhook-config-name",
        default_value = DEFAULT_NAME,
        value_name = "NAME"
    )]
    pub config_name: String,
    /// Create or update the webhook configurations (`false` when the chart owns them).
    #[arg(
        id = "webhook_register",
        long = "webhook-register",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub register: bool,
    /// Connections served at once.
    #[arg(
        id = "webhook_workers",
        long = "webhook-workers",
        default_value_t = 4,
        value_name = "N"
    )]
    pub workers: usize,
    /// Time for one whole exchange (TLS handshake, request, answer).
    #[arg(
        id = "webhook_request_timeout",
        long = "webhook-request-timeout",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub request_timeout: u64,
}

/// Where to listen, where the apiserver calls, and the names the certificate is for.
fn placement(args: &Args, bound: SocketAddr) -> Result<(Target, Vec<String>)> {
    if args.listen.is_some() {
        let ip = if bound.ip().is_unspecified() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            bound.ip()
        };
        let addr = SocketAddr::new(ip, bound.port());
        return Ok((
            Target::Url(addr.to_string()),
            vec![ip.to_string(), "localhost".to_owned()],
        ));
    }
    let (namespace, name) = match &args.service {
        Some(s) => match s.split_once('/') {
            Some((ns, n)) if !ns.is_empty() && !n.is_empty() => (ns.to_owned(), n.to_owned()),
            _ => {
                return Err(Error::Config(format!(
                    "--webhook-service {s:?}: expected namespace/name"
                )));
            }
        },
        None => (
            std::env::var("SPIDERPOOL_POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "kube-system".to_owned()),
            DEFAULT_NAME.to_owned(),
        ),
    };
    let names = vec![
        "spidernet.io".to_owned(),
        name.clone(),
        format!("{name}.{namespace}"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.cluster.local"),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    Ok((
        Target::Service {
            namespace,
            name,
            port: bound.port(),
        },
        names,
    ))
}

/// Answers one request: the health check, or a review on a webhook path.
pub fn handle(req: &Request, cache: &Cache, switches: &Switches) -> Response {
    if req.path == PATH_HEALTH {
        return match req.method.as_str() {
            "GET" | "HEAD" => Response::empty(200),
            _ => Response::error(405, "GET only"),
        };
    }
    let Some((hook, kind)) = review::route(&req.path) else {
        return Response::error(404, &format!("no webhook at {}", req.path));
    };
    if req.method != "POST" {
        return Response::error(405, "POST an AdmissionReview");
    }
    if !cache.synced() {
        // The overlap checks need every existing object: failing the call lets the
        // apiserver apply the failure policy (Fail) instead of admitting unchecked.
        return Response::error(503, "the webhook's caches have not synced yet");
    }
    match review::answer(hook, kind, &req.body, &cache.snapshot(), switches) {
        Ok(review) => Response::json(200, &review),
        Err(e) => Response::error(400, &e.to_string()),
    }
}

/// Serves the webhooks (and registers them) until the process ends.
pub async fn serve(ctx: Ctx, args: Args) -> Result<()> {
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, args.port)));
    let listener = TcpListener::bind(listen)
        .map_err(|e| Error::io(format!("webhook: cannot listen on {listen}"), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("webhook: local address", e))?;
    let (target, names) = placement(&args, bound)?;
    let serving = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => certs::from_files(cert, key, args.tls_ca.as_deref()),
        _ => certs::generate(&names),
    }
    .map_err(|e| Error::Config(format!("webhook: {e}")))?;
    let cache = cache::start(ctx.client.clone());
    // TODO(issue 8): read the switches from the spiderpool-conf ConfigMap.
    let switches = Switches::default();
    let handler: Handler = {
        let cache = cache.clone();
        Arc::new(move |req: &Request| handle(req, &cache, &switches))
    };
    let bounds = Bounds {
        workers: args.workers.max(1),
        deadline: Duration::from_secs(args.request_timeout.max(1)),
        ..Bounds::default()
    };
    server::spawn(listener, serving.config.clone(), handler, bounds)
        .map_err(|e| Error::io("webhook: cannot start the server", e))?;
    log::info!("webhooks on https://{bound} ({target:?})");
    while !cache.synced() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ctx.health.webhook_serving.store(true, Ordering::Relaxed);
    if args.register {
        register::apply(
            &ctx.client,
            &args.config_name,
            &target,
            serving.ca_pem.as_deref(),
        )
        .await?;
        log::info!(
            "registered MutatingWebhookConfiguration and ValidatingWebhookConfiguration {}",
            args.config_name
        );
    }
    std::future::pending().await
}
