//! `spiderpool-init` (spec §7.6, §6.5): creates the cluster's default Spiderpool objects from
//! upstream's environment variables, as the chart's post-install Job does.
//!
//! 1. Every variable is read and checked first ([`plan`]): an invalid value ends the run
//!    before anything is created, with a message naming the variable.
//! 2. Wait until the controller Service (`SPIDERPOOL_NAMESPACE` / `SPIDERPOOL_CONTROLLER_NAME`)
//!    has a ready address (its Endpoints, or an EndpointSlice of it), so that the webhooks
//!    default and check what is created (`--skip-controller-wait` when there is no Service,
//!    e.g. out of cluster).
//! 3. Create, in this order: the SpiderCoordinator, the SpiderSubnets, the SpiderIPPools, the
//!    default-CNI SpiderMultusConfig. Each create is retried every `--retry-interval` (2 s)
//!    until it succeeds or the object exists; what exists is never modified. Everything must
//!    be done within `--timeout` (300 s, as upstream).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde::Serialize;
use serde_json::Value;
use spiderpool_core::ip::{Cidr, IpFamily, IpRange, parse_ip_in, parse_ip_or_cidr};
use spiderpool_core::objects::keys::ANNO_MULTUS_CR_NAME;
use spiderpool_core::objects::{
    CoordinatorSpec, Route, SpiderCoordinator, SpiderIPPool, SpiderIPPoolSpec, SpiderMultusConfig,
    SpiderMultusConfigSpec, SpiderResource, SpiderSubnet, SpiderSubnetSpec,
};
use spiderpool_k8s::kinds::{api_resource_of, to_dynamic};

use crate::ippool::parse_secs;
use crate::{Ctx, Error, Result};

/// Flags and environment of `spiderpool-init` (upstream's variable names).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "init")]
pub struct Args {
    /// Namespace of the release: the controller Service, and the default SpiderMultusConfig
    /// unless `SPIDERPOOL_INIT_DEFAULT_CNI_NAMESPACE` is set.
    #[arg(long = "namespace", env = "SPIDERPOOL_NAMESPACE", value_name = "NS")]
    pub namespace: Option<String>,
    /// Name of the controller Service whose Endpoints are waited for.
    #[arg(
        long = "controller-name",
        env = "SPIDERPOOL_CONTROLLER_NAME",
        value_name = "NAME"
    )]
    pub controller_name: Option<String>,
    /// Name of the agent DaemonSet (accepted for upstream's chart; not used).
    #[arg(
        long = "agent-name",
        env = "SPIDERPOOL_AGENT_NAME",
        value_name = "NAME"
    )]
    pub agent_name: Option<String>,
    /// Do not wait for the controller Service's Endpoints (no Service: out of cluster, tests).
    #[arg(long = "skip-controller-wait")]
    pub skip_controller_wait: bool,
    /// Everything must be done within this many seconds.
    #[arg(long = "timeout", default_value = "300", value_parser = parse_secs, value_name = "SECONDS")]
    pub timeout: Duration,
    /// Pause between two attempts of a create, and between two looks at the Endpoints
    /// (seconds).
    #[arg(long = "retry-interval", default_value = "2", value_parser = parse_secs, value_name = "SECONDS")]
    pub retry_interval: Duration,

    /// Name of the default SpiderCoordinator (none created when unset).
    #[arg(
        long = "coordinator-name",
        env = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME"
    )]
    pub coordinator_name: Option<String>,
    /// Its `mode` (default `auto`).
    #[arg(
        long = "coordinator-mode",
        env = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_MODE"
    )]
    pub coordinator_mode: Option<String>,
    /// Its `podCIDRType` (default `auto`).
    #[arg(
        long = "coordinator-pod-cidr-type",
        env = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_POD_CIDR_TYPE"
    )]
    pub coordinator_pod_cidr_type: Option<String>,
    /// Its `tunePodRoutes` (`true` / `false`).
    #[arg(
        long = "coordinator-tune-pod-routes",
        env = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_TUNE_POD_ROUTES"
    )]
    pub coordinator_tune_pod_routes: Option<String>,
    /// Its `hijackCIDR`: a list (`["10.0.0.0/8","169.254.0.0/16"]`, or separated by commas or
    /// spaces); a bare address becomes a /32 or /128.
    #[arg(
        long = "coordinator-hijack-cidr",
        env = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR"
    )]
    pub coordinator_hijack_cidr: Option<String>,
    /// Its `policyRoutes`, as JSON (`[{"dst":"10.0.0.0/8","gw":"172.18.0.1"}]`).
    #[arg(
        long = "coordinator-policy-routes",
        env = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_POLICY_ROUTES"
    )]
    pub coordinator_policy_routes: Option<String>,
    /// Its `vethLinkAddress`.
    #[arg(
        long = "coordinator-veth-link-address",
        env = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_VETH_LINK_ADDRESS"
    )]
    pub coordinator_veth_link_address: Option<String>,
    /// Its `vethMTU` (default 1500).
    #[arg(
        long = "coordinator-veth-mtu",
        env = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_VETH_MTU"
    )]
    pub coordinator_veth_mtu: Option<String>,
    /// Passed by upstream's chart, ignored (as upstream: the field is gone from the CRD).
    #[arg(
        long = "coordinator-detect-gateway",
        env = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_DETECT_GATEWAY",
        hide = true
    )]
    pub coordinator_detect_gateway: Option<String>,
    /// Passed by upstream's chart, ignored (as upstream: the field is gone from the CRD).
    #[arg(
        long = "coordinator-detect-ip-conflict",
        env = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_DETECT_IP_CONFLICT",
        hide = true
    )]
    pub coordinator_detect_ip_conflict: Option<String>,

    /// Name of the default IPv4 SpiderSubnet (none when unset).
    #[arg(
        long = "ipv4-subnet-name",
        env = "SPIDERPOOL_INIT_DEFAULT_IPV4_SUBNET_NAME"
    )]
    pub v4_subnet_name: Option<String>,
    /// Name of the default IPv4 SpiderIPPool (none when unset; created with `default: true`).
    #[arg(
        long = "ipv4-ippool-name",
        env = "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME"
    )]
    pub v4_ippool_name: Option<String>,
    /// CIDR of the default IPv4 subnet and pool (required with either name).
    #[arg(
        long = "ipv4-subnet",
        env = "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET"
    )]
    pub v4_cidr: Option<String>,
    /// Their IP ranges (a list like `["10.6.0.10-10.6.0.20"]`, or separated by commas or
    /// spaces).
    #[arg(
        long = "ipv4-ip-ranges",
        env = "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_IPRANGES"
    )]
    pub v4_ip_ranges: Option<String>,
    /// Their gateway.
    #[arg(
        long = "ipv4-gateway",
        env = "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY"
    )]
    pub v4_gateway: Option<String>,
    /// Name of the default IPv6 SpiderSubnet (none when unset).
    #[arg(
        long = "ipv6-subnet-name",
        env = "SPIDERPOOL_INIT_DEFAULT_IPV6_SUBNET_NAME"
    )]
    pub v6_subnet_name: Option<String>,
    /// Name of the default IPv6 SpiderIPPool (none when unset; created with `default: true`).
    #[arg(
        long = "ipv6-ippool-name",
        env = "SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_NAME"
    )]
    pub v6_ippool_name: Option<String>,
    /// CIDR of the default IPv6 subnet and pool (required with either name).
    #[arg(
        long = "ipv6-subnet",
        env = "SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_SUBNET"
    )]
    pub v6_cidr: Option<String>,
    /// Their IP ranges.
    #[arg(
        long = "ipv6-ip-ranges",
        env = "SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_IPRANGES"
    )]
    pub v6_ip_ranges: Option<String>,
    /// Their gateway.
    #[arg(
        long = "ipv6-gateway",
        env = "SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_GATEWAY"
    )]
    pub v6_gateway: Option<String>,

    /// Create the SpiderMultusConfig of the cluster's default CNI (`true` / `false`).
    #[arg(
        long = "enable-multus-config",
        env = "SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG"
    )]
    pub enable_multus_config: Option<String>,
    /// The default CNI's name (`multus.multusCNI.defaultCniCRName`): the SMC gets this name
    /// and type `custom`. When unset, the CNI directory is looked at.
    #[arg(long = "default-cni-name", env = "SPIDERPOOL_INIT_DEFAULT_CNI_NAME")]
    pub default_cni_name: Option<String>,
    /// Where the node's CNI configuration files are (default `/etc/cni/net.d`).
    #[arg(long = "default-cni-dir", env = "SPIDERPOOL_INIT_DEFAULT_CNI_DIR")]
    pub default_cni_dir: Option<PathBuf>,
    /// Namespace of the default SpiderMultusConfig (default: `SPIDERPOOL_NAMESPACE`).
    #[arg(
        long = "default-cni-namespace",
        env = "SPIDERPOOL_INIT_DEFAULT_CNI_NAMESPACE"
    )]
    pub default_cni_namespace: Option<String>,
    /// Passed by upstream's chart (Multus installation), ignored.
    #[arg(
        long = "install-multus",
        env = "SPIDERPOOL_INIT_INSTALL_MULTUS",
        hide = true
    )]
    pub install_multus: Option<String>,
    /// Passed by upstream's chart (Multus ConfigMap), ignored.
    #[arg(
        long = "multus-configmap",
        env = "SPIDERPOOL_INIT_MULTUS_CONFIGMAP",
        hide = true
    )]
    pub multus_configmap: Option<String>,
    /// A file written once everything is created (upstream's readiness file); none when
    /// unset.
    #[arg(long = "readiness-file", env = "SPIDERPOOL_INIT_READINESS_FILE")]
    pub readiness_file: Option<PathBuf>,
}

impl Default for Args {
    /// No variable set; the flags' defaults (300 s timeout, 2 s retries).
    fn default() -> Self {
        Args {
            namespace: None,
            controller_name: None,
            agent_name: None,
            skip_controller_wait: false,
            timeout: Duration::from_secs(300),
            retry_interval: Duration::from_secs(2),
            coordinator_name: None,
            coordinator_mode: None,
            coordinator_pod_cidr_type: None,
            coordinator_tune_pod_routes: None,
            coordinator_hijack_cidr: None,
            coordinator_policy_routes: None,
            coordinator_veth_link_address: None,
            coordinator_veth_mtu: None,
            coordinator_detect_gateway: None,
            coordinator_detect_ip_conflict: None,
            v4_subnet_name: None,
            v4_ippool_name: None,
            v4_cidr: None,
            v4_ip_ranges: None,
            v4_gateway: None,
            v6_subnet_name: None,
            v6_ippool_name: None,
            v6_cidr: None,
            v6_ip_ranges: None,
            v6_gateway: None,
            enable_multus_config: None,
            default_cni_name: None,
            default_cni_dir: None,
            default_cni_namespace: None,
            install_multus: None,
            multus_configmap: None,
            readiness_file: None,
        }
    }
}

/// Upstream's default CNI configuration directory.
pub const DEFAULT_CNI_DIR: &str = "/etc/cni/net.d";
/// Calico's legacy network name, and the SMC name it becomes (its NAD keeps the old name
/// through `multus.spidernet.io/cr-name`).
const LEGACY_CALICO: (&str, &str) = ("k8s-pod-network", "calico");

/// What one run creates, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The default SpiderCoordinator.
    pub coordinator: Option<SpiderCoordinator>,
    /// The default subnets (v4, then v6).
    pub subnets: Vec<SpiderSubnet>,
    /// The default pools (v4, then v6).
    pub pools: Vec<SpiderIPPool>,
    /// The default CNI's SpiderMultusConfig.
    pub multus_config: Option<SpiderMultusConfig>,
}

/// A variable's value with upstream's clean-up (quotes removed, surrounding blanks trimmed);
/// `None` when unset or empty.
fn value(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(|s| s.replace('"', "").trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn bad(var: &str, val: &str, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("{var}={val:?}: {why}"))
}

fn parse_bool(var: &str, v: &Option<String>, default: bool) -> Result<bool> {
    match value(v) {
        None => Ok(default),
        Some(s) => match s.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => Ok(true),
            "0" | "f" | "false" => Ok(false),
            _ => Err(bad(var, &s, "not a boolean (true or false)")),
        },
    }
}

/// A list written as `["a","b"]`, `a,b` or `a b` (upstream strips quotes, backslashes and
/// brackets, then splits on commas and blanks).
fn list(v: &str) -> Vec<String> {
    v.replace(['"', '\\', '[', ']'], "")
        .replace(',', " ")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Reads and checks every variable; nothing is contacted.
pub fn plan(args: &Args) -> Result<Plan> {
    let namespace = value(&args.namespace).ok_or_else(|| {
        Error::Config("SPIDERPOOL_NAMESPACE (--namespace) is required".to_owned())
    })?;
    if !args.skip_controller_wait && value(&args.controller_name).is_none() {
        return Err(Error::Config(
            "SPIDERPOOL_CONTROLLER_NAME (--controller-name) is required, or pass \
             --skip-controller-wait"
                .to_owned(),
        ));
    }
    let mut out = Plan {
        coordinator: coordinator(args)?,
        ..Plan::default()
    };
    for fam in [IpFamily::V4, IpFamily::V6] {
        let (subnet_name, pool_name, net) = family(args, fam)?;
        if let (Some(name), Some((cidr, ips, gw))) = (subnet_name, &net) {
            out.subnets.push(SpiderSubnet::new(
                name,
                SpiderSubnetSpec {
                    ip_version: Some(i64::from(fam.version())),
                    subnet: cidr.clone(),
                    ips: Some(ips.clone()),
                    gateway: gw.clone(),
                    ..SpiderSubnetSpec::default()
                },
            ));
        }
        if let (Some(name), Some((cidr, ips, gw))) = (pool_name, net) {
            out.pools.push(SpiderIPPool::new(
                name,
                SpiderIPPoolSpec {
                    ip_version: Some(i64::from(fam.version())),
                    subnet: cidr,
                    ips: Some(ips),
                    gateway: gw,
                    default: Some(true),
                    ..SpiderIPPoolSpec::default()
                },
            ));
        }
    }
    let subnet_names: Vec<String> = out.subnets.iter().map(|s| name_of(&s.metadata)).collect();
    let pool_names: Vec<String> = out.pools.iter().map(|p| name_of(&p.metadata)).collect();
    for (kind, names, tag) in [
        ("Subnet", subnet_names, "SUBNET_NAME"),
        ("IPPool", pool_names, "IPPOOL_NAME"),
    ] {
        if names.len() == 2 && names[0] == names[1] {
            return Err(Error::Config(format!(
                "SPIDERPOOL_INIT_DEFAULT_IPV4_{tag} and SPIDERPOOL_INIT_DEFAULT_IPV6_{tag} are \
                 both {:?}: the default IPv4 {kind} name cannot be the same as the IPv6 one",
                names[0]
            )));
        }
    }
    if parse_bool(
        "SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG",
        &args.enable_multus_config,
        false,
    )? {
        let ns = value(&args.default_cni_namespace).unwrap_or(namespace);
        out.multus_config = Some(default_multus_config(args, &ns)?);
    }
    Ok(out)
}

fn name_of(meta: &spiderpool_core::meta::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn coordinator(args: &Args) -> Result<Option<SpiderCoordinator>> {
    let Some(name) = value(&args.coordinator_name) else {
        return Ok(None);
    };
    let mut spec = CoordinatorSpec {
        mode: Some(value(&args.coordinator_mode).unwrap_or_else(|| "auto".to_owned())),
        // Required by the CRD; `auto` (the chart's default) when unset.
        pod_cidr_type: Some(
            value(&args.coordinator_pod_cidr_type).unwrap_or_else(|| "auto".to_owned()),
        ),
        tune_pod_routes: Some(parse_bool(
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_TUNE_POD_ROUTES",
            &args.coordinator_tune_pod_routes,
            true,
        )?),
        pod_default_route_nic: Some(String::new()),
        pod_mac_prefix: Some(String::new()),
        veth_link_address: value(&args.coordinator_veth_link_address),
        ..CoordinatorSpec::default()
    };
    let v = |var: &str, s: Option<String>| (var.to_owned(), s.unwrap_or_default());
    if let Err(e) = spec.mode() {
        let (var, val) = v(
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_MODE",
            spec.mode.clone(),
        );
        return Err(bad(&var, &val, e));
    }
    if let Err(e) = spec.pod_cidr_type() {
        let (var, val) = v(
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_POD_CIDR_TYPE",
            spec.pod_cidr_type.clone(),
        );
        return Err(bad(&var, &val, e));
    }
    const HIJACK: &str = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR";
    let mut hijack = Vec::new();
    for entry in list(args.coordinator_hijack_cidr.as_deref().unwrap_or_default()) {
        let net = parse_ip_or_cidr(&entry).map_err(|e| bad(HIJACK, &entry, e))?;
        hijack.push(net.to_string());
    }
    spec.hijack_cidr = Some(hijack);
    if let Some(text) = args
        .coordinator_policy_routes
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        const ROUTES: &str = "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_POLICY_ROUTES";
        let routes: Vec<Route> = serde_json::from_str(text)
            .map_err(|e| bad(ROUTES, text, format!("not a JSON list of {{dst, gw}}: {e}")))?;
        for r in &routes {
            parse_ip_or_cidr(&r.dst).map_err(|e| bad(ROUTES, text, format!("dst: {e}")))?;
            spiderpool_core::ip::parse_ip(&r.gw)
                .map_err(|e| bad(ROUTES, text, format!("gw: {e}")))?;
        }
        spec.policy_routes = Some(routes);
    }
    if let Some(addr) = &spec.veth_link_address {
        spiderpool_core::ip::parse_ip(addr).map_err(|e| {
            bad(
                "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_VETH_LINK_ADDRESS",
                addr,
                e,
            )
        })?;
    }
    spec.veth_mtu = Some(match value(&args.coordinator_veth_mtu) {
        None => 1500,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|m| (1..=65535).contains(m))
            .ok_or_else(|| {
                bad(
                    "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_VETH_MTU",
                    &s,
                    "not an MTU (1 to 65535)",
                )
            })?,
    });
    Ok(Some(SpiderCoordinator::new(name, spec)))
}

/// One family's subnet name, pool name, and `(cidr, ips, gateway)` when either name is set.
#[allow(clippy::type_complexity)]
fn family(
    args: &Args,
    fam: IpFamily,
) -> Result<(
    Option<String>,
    Option<String>,
    Option<(String, Vec<String>, Option<String>)>,
)> {
    let (tag, subnet, pool, cidr, ranges, gw) = match fam {
        IpFamily::V4 => (
            "IPV4",
            &args.v4_subnet_name,
            &args.v4_ippool_name,
            &args.v4_cidr,
            &args.v4_ip_ranges,
            &args.v4_gateway,
        ),
        IpFamily::V6 => (
            "IPV6",
            &args.v6_subnet_name,
            &args.v6_ippool_name,
            &args.v6_cidr,
            &args.v6_ip_ranges,
            &args.v6_gateway,
        ),
    };
    let (subnet, pool) = (value(subnet), value(pool));
    if subnet.is_none() && pool.is_none() {
        return Ok((None, None, None));
    }
    let var = |s: &str| format!("SPIDERPOOL_INIT_DEFAULT_{tag}_IPPOOL_{s}");
    let cidr = value(cidr).ok_or_else(|| {
        Error::Config(format!(
            "{} is required to create a default {fam} SpiderSubnet or SpiderIPPool",
            var("SUBNET")
        ))
    })?;
    Cidr::parse_in(fam, &cidr).map_err(|e| bad(&var("SUBNET"), &cidr, e))?;
    let gw = value(gw);
    if let Some(g) = &gw {
        parse_ip_in(fam, g).map_err(|e| bad(&var("GATEWAY"), g, e))?;
    }
    let ips = list(ranges.as_deref().unwrap_or_default());
    for r in &ips {
        IpRange::parse_in(fam, r).map_err(|e| bad(&var("IPRANGES"), r, e))?;
    }
    Ok((subnet, pool, Some((cidr, ips, gw))))
}

/// The SpiderMultusConfig of the cluster's default CNI (§6.5).
fn default_multus_config(args: &Args, namespace: &str) -> Result<SpiderMultusConfig> {
    let name = match value(&args.default_cni_name) {
        Some(n) => n,
        None => {
            let dir = args
                .default_cni_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CNI_DIR));
            default_network_name(&dir)?.unwrap_or_else(|| "default".to_owned())
        }
    };
    let (name, annotations) = if name == LEGACY_CALICO.0 {
        (
            LEGACY_CALICO.1.to_owned(),
            Some([(ANNO_MULTUS_CR_NAME.to_owned(), LEGACY_CALICO.0.to_owned())].into()),
        )
    } else {
        (name, None)
    };
    // Always `custom` with no `customCNI`: the NAD then has no config and Multus uses the
    // node's own file of that name. (Upstream gives a detected macvlan/ipvlan/sriov... primary
    // CNI its type but no type block, which its webhook rejects: init then never finishes.)
    let mut smc = SpiderMultusConfig::new(
        namespace,
        name,
        SpiderMultusConfigSpec {
            cni_type: Some("custom".to_owned()),
            enable_coordinator: Some(false),
            ..SpiderMultusConfigSpec::default()
        },
    );
    smc.metadata.annotations = annotations;
    Ok(smc)
}

/// The `name` of the first CNI configuration in `dir` (files `*.conf`, `*.conflist`,
/// `*.json` in name order, as the container runtime picks them), skipping Multus' own;
/// `None` when there is none.
pub fn default_network_name(dir: &Path) -> Result<Option<String>> {
    const VAR: &str = "SPIDERPOOL_INIT_DEFAULT_CNI_DIR";
    let read = std::fs::read_dir(dir).map_err(|e| {
        bad(
            VAR,
            &dir.display().to_string(),
            format!("cannot be read: {e}"),
        )
    })?;
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| matches!(x, "conf" | "conflist" | "json"))
        })
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| Error::io(format!("read {}", f.display()), e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{VAR}: {} is not a CNI configuration: {e}",
                f.display()
            ))
        })?;
        let first_type = v
            .get("plugins")
            .and_then(Value::as_array)
            .and_then(|p| p.first())
            .unwrap_or(&v)
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if first_type == "multus" || first_type == "multus-shim" {
            continue;
        }
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            return Err(Error::Config(format!(
                "{VAR}: {} has no network name",
                f.display()
            )));
        }
        return Ok(Some(name.to_owned()));
    }
    Ok(None)
}

/// Runs `spiderpool-init`: checks the variables, waits for the controller, creates what is
/// missing.
pub async fn run(ctx: Ctx, args: Args) -> Result<()> {
    let plan = plan(&args)?;
    let deadline = tokio::time::Instant::now() + args.timeout;
    if !args.skip_controller_wait {
        wait_for_controller(&ctx, &args, deadline).await?;
    }
    if let Some(c) = &plan.coordinator {
        create(&ctx, &args, deadline, c).await?;
    }
    for s in &plan.subnets {
        create(&ctx, &args, deadline, s).await?;
    }
    for p in &plan.pools {
        create(&ctx, &args, deadline, p).await?;
    }
    if let Some(m) = &plan.multus_config {
        create(&ctx, &args, deadline, m).await?;
    }
    if let Some(path) = &args.readiness_file {
        std::fs::write(path, b"").map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    }
    log::info!("spiderpool-init: done");
    Ok(())
}

/// Whether the controller Service has a ready address: in its Endpoints (what upstream reads)
/// or in one of its EndpointSlices (what clusters keep once the Endpoints API is gone); else
/// why not.
async fn controller_ready(ctx: &Ctx, ns: &str, name: &str) -> std::result::Result<(), String> {
    let endpoints: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
    let why = match endpoints.get_opt(name).await {
        Ok(Some(ep)) => {
            let ready = ep
                .subsets
                .iter()
                .flatten()
                .any(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()));
            if ready {
                return Ok(());
            }
            "its Endpoints have no ready address yet".to_owned()
        }
        Ok(None) => "no Endpoints object yet".to_owned(),
        Err(e) => format!("reading its Endpoints: {e}"),
    };
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    match slices.list(&lp).await {
        Ok(list) => {
            let ready = list
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter().flatten())
                .any(|e| {
                    !e.addresses.is_empty()
                        && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
                });
            if ready { Ok(()) } else { Err(why) }
        }
        // No EndpointSlice API: the Endpoints' answer stands.
        Err(_) => Err(why),
    }
}

async fn wait_for_controller(ctx: &Ctx, args: &Args, deadline: tokio::time::Instant) -> Result<()> {
    let ns = value(&args.namespace).unwrap_or_default();
    let name = value(&args.controller_name).unwrap_or_default();
    loop {
        let why = match controller_ready(ctx, &ns, &name).await {
            Ok(()) => {
                log::info!("controller Service {ns}/{name} has a ready endpoint");
                return Ok(());
            }
            Err(why) => why,
        };
        if tokio::time::Instant::now() + args.retry_interval > deadline {
            return Err(Error::Config(format!(
                "gave up waiting for a ready endpoint of the controller Service {ns}/{name} \
                 after {:?}: {why}",
                args.timeout
            )));
        }
        log::info!("waiting for the controller Service {ns}/{name}: {why}");
        tokio::time::sleep(args.retry_interval).await;
    }
}

/// Creates `obj` unless it exists; retried every `retry_interval` until `deadline`.
async fn create<T: SpiderResource + Serialize>(
    ctx: &Ctx,
    args: &Args,
    deadline: tokio::time::Instant,
    obj: &T,
) -> Result<()> {
    let ar = api_resource_of::<T>();
    let dynamic: DynamicObject = to_dynamic(obj)?;
    let name = obj.metadata().name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = match &obj.metadata().namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &ar),
        None => Api::all_with(ctx.client.clone(), &ar),
    };
    let what = match &obj.metadata().namespace {
        Some(ns) => format!("{} {ns}/{name}", ar.kind),
        None => format!("{} {name}", ar.kind),
    };
    loop {
        let err = match api.create(&PostParams::default(), &dynamic).await {
            Ok(_) => {
                log::info!("created {what}");
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                log::info!("{what} exists: left as it is");
                return Ok(());
            }
            Err(e) => e,
        };
        if tokio::time::Instant::now() + args.retry_interval > deadline {
            return Err(Error::api(
                format!("create {what} (gave up after {:?})", args.timeout),
                err,
            ));
        }
        log::warn!("create {what}: {err}; retrying");
        tokio::time::sleep(args.retry_interval).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn base() -> Args {
        Args {
            namespace: Some("kube-system".into()),
            controller_name: Some("spiderpool-controller".into()),
            ..Args::default()
        }
    }

    #[test]
    fn lists_are_read_as_upstream_writes_them() {
        assert_eq!(
            list(r#"["10.6.0.10-10.6.0.20", "10.6.0.30"]"#),
            vec!["10.6.0.10-10.6.0.20", "10.6.0.30"]
        );
        assert_eq!(list("a,b c"), vec!["a", "b", "c"]);
        assert!(list("[]").is_empty());
    }

    #[test]
    fn a_full_environment_plans_every_object() {
        let args = Args {
            coordinator_name: Some("default".into()),
            coordinator_pod_cidr_type: Some("calico".into()),
            coordinator_hijack_cidr: Some(r#"["169.254.0.0/16","10.0.0.1"]"#.into()),
            v4_subnet_name: Some("default-v4-subnet".into()),
            v4_ippool_name: Some("default-v4-ippool".into()),
            v4_cidr: Some("10.6.0.0/16".into()),
            v4_ip_ranges: Some(r#"["10.6.0.10-10.6.0.20"]"#.into()),
            v4_gateway: Some("10.6.0.1".into()),
            v6_ippool_name: Some("default-v6-ippool".into()),
            v6_cidr: Some("fd00::/64".into()),
            enable_multus_config: Some("true".into()),
            default_cni_name: Some("k8s-pod-network".into()),
            ..base()
        };
        let p = plan(&args).unwrap();
        let c = p.coordinator.unwrap();
        assert_eq!(c.spec.mode.as_deref(), Some("auto"));
        assert_eq!(c.spec.tune_pod_routes, Some(true));
        assert_eq!(c.spec.veth_mtu, Some(1500));
        assert_eq!(
            c.spec.hijack_cidr.unwrap(),
            vec!["169.254.0.0/16", "10.0.0.1/32"]
        );
        assert_eq!(name_of(&p.subnets[0].metadata), "default-v4-subnet");
        assert_eq!(p.subnets.len(), 1);
        assert_eq!(p.pools.len(), 2);
        assert_eq!(p.pools[1].spec.ip_version, Some(6));
        assert_eq!(p.pools[0].spec.default, Some(true));
        let m = p.multus_config.unwrap();
        assert_eq!(m.metadata.name.as_deref(), Some("calico"));
        assert_eq!(m.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(
            m.metadata.annotation(ANNO_MULTUS_CR_NAME),
            Some("k8s-pod-network")
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: Vec<(Args, &str)> = vec![
            (
                Args {
                    v4_ippool_name: Some("p".into()),
                    v4_cidr: Some("10.6.0.0/33".into()),
                    ..base()
                },
                "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET",
            ),
            (
                Args {
                    v4_ippool_name: Some("p".into()),
                    ..base()
                },
                "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET is required",
            ),
            (
                Args {
                    v6_ippool_name: Some("p".into()),
                    v6_cidr: Some("fd00::/64".into()),
                    v6_ip_ranges: Some("10.0.0.1-10.0.0.2".into()),
                    ..base()
                },
                "SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_IPRANGES",
            ),
            (
                Args {
                    v4_ippool_name: Some("same".into()),
                    v4_cidr: Some("10.6.0.0/16".into()),
                    v6_ippool_name: Some("same".into()),
                    v6_cidr: Some("fd00::/64".into()),
                    ..base()
                },
                "IPv4 IPPool name cannot be the same",
            ),
            (
                Args {
                    enable_multus_config: Some("maybe".into()),
                    ..base()
                },
                "SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG",
            ),
            (
                Args {
                    coordinator_name: Some("default".into()),
                    coordinator_mode: Some("sideways".into()),
                    ..base()
                },
                "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_MODE",
            ),
            (
                Args {
                    coordinator_name: Some("default".into()),
                    coordinator_veth_mtu: Some("0".into()),
                    ..base()
                },
                "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_VETH_MTU",
            ),
            (
                Args {
                    namespace: None,
                    ..base()
                },
                "SPIDERPOOL_NAMESPACE",
            ),
        ];
        for (args, want) in cases {
            let e = plan(&args).unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn the_default_network_is_the_first_non_multus_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(default_network_name(dir.path()).unwrap(), None);
        std::fs::write(
            dir.path().join("00-multus.conf"),
            r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-calico.conflist"),
            r#"{"name":"k8s-pod-network","plugins":[{"type":"calico"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("20-x.conf"),
            r#"{"name":"x","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("README"), "not a config").unwrap();
        assert_eq!(
            default_network_name(dir.path()).unwrap().as_deref(),
            Some("k8s-pod-network")
        );
    }
}
