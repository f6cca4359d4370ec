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
    /// IPv4 pools, subnets and reserved IPs are admitted (upstream's ConfigMap `enableIPv4`).
    #[arg(
        id = "webhook_enable_ipv4",
        long = "enable-ipv4",
        env = "SPIDERPOOL_ENABLE_IPV4",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub enable_ipv4: bool,
    /// IPv6 pools, subnets and reserved IPs are admitted (upstream's ConfigMap `enableIPv6`).
    #[arg(
        id = "webhook_enable_ipv6",
        long = "enable-ipv6",
        env = "SPIDERPOOL_ENABLE_IPV6",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub enable_ipv6: bool,
    /// Refuse deleting pools and subnets still in use (upstream's ConfigMap
    /// `enableValidatingResourcesDeletedWebhook`).
    #[arg(
        id = "webhook_validate_deletion",
        long = "enable-validating-resources-deleted-webhook",
        env = "SPIDERPOOL_ENABLE_VALIDATING_RESOURCES_DELETED_WEBHOOK",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub validate_deletion: bool,
    /// The SpiderSubnet feature, as the subnet controller's `--enable-spider-subnet` (set by
    /// the binary); when unset, `$SPIDERPOOL_ENABLE_SPIDER_SUBNET`, else true.
    #[arg(skip)]
    pub enable_spider_subnet: Option<bool>,
}

impl Args {
    /// The admission switches these flags give.
    pub fn switches(&self) -> Switches {
        let subnet = self.enable_spider_subnet.unwrap_or_else(|| {
            std::env::var("SPIDERPOOL_ENABLE_SPIDER_SUBNET")
                .ok()
                .and_then(|v| match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" | "y" => Some(true),
                    "0" | "false" | "no" | "off" | "n" => Some(false),
                    _ => None,
                })
                .unwrap_or(true)
        });
        Switches {
            enable_ipv4: self.enable_ipv4,
            enable_ipv6: self.enable_ipv6,
            enable_spider_subnet: subnet,
            validate_deletion: self.validate_deletion,
        }
    }
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
    let switches = args.switches();
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
        // A passing apiserver hiccup should not end the process; a lasting refusal (RBAC)
        // does, after about a minute, with the apiserver's reason.
        let mut wait = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match register::apply(
                &ctx.client,
                &args.config_name,
                &target,
                serving.ca_pem.as_deref(),
            )
            .await
            {
                Ok(()) => break,
                Err(e) if attempt < 8 => {
                    log::warn!(
                        "webhook registration (attempt {attempt}): {e}; retrying in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(15));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        log::info!(
            "registered MutatingWebhookConfiguration and ValidatingWebhookConfiguration {}",
            args.config_name
        );
    }
    std::future::pending().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        webhook: Args,
    }

    #[test]
    fn flags_give_the_switches_and_the_placement() {
        let cli = Cli::try_parse_from([
            "x",
            "--enable-ipv4",
            "false",
            "--enable-validating-resources-deleted-webhook=true",
            "--webhook-service",
            "spider/ctl",
        ])
        .unwrap();
        let mut args = cli.webhook;
        args.enable_spider_subnet = Some(false);
        let s = args.switches();
        assert!(!s.enable_ipv4 && s.enable_ipv6 && !s.enable_spider_subnet && s.validate_deletion);
        let (target, names) = placement(&args, "0.0.0.0:5722".parse().unwrap()).unwrap();
        assert!(matches!(
            target,
            Target::Service { ref namespace, ref name, port: 5722 } if namespace == "spider" && name == "ctl"
        ));
        assert!(names.contains(&"ctl.spider.svc".to_owned()));
        args.service = Some("no-slash".into());
        assert!(placement(&args, "0.0.0.0:5722".parse().unwrap()).is_err());
        args.listen = Some("0.0.0.0:0".parse().unwrap());
        let (target, _) = placement(&args, "0.0.0.0:4443".parse().unwrap()).unwrap();
        assert!(matches!(target, Target::Url(ref u) if u == "127.0.0.1:4443"));
        // Supplied files come as a pair.
        assert!(Cli::try_parse_from(["x", "--tls-cert", "a"]).is_err());
        assert!(
            Cli::try_parse_from(["x", "--tls-server-cert", "a", "--tls-server-key", "b"]).is_ok()
        );
    }
}
