//! HTTP routing of the agent API (spec §7.1) onto an [`IpamService`]: the local-mode
//! [`crate::agent::Agent`] or the Kubernetes-mode [`crate::kube_mode::KubeAgent`].
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /v1/ipam/healthy` | 200, empty body; 503 with the reason while the service cannot serve |
//! | `POST /v1/ipam/ip` | 200 `IpamAddResponse`; 500 JSON string (e.g. pool exhausted) |
//! | `DELETE /v1/ipam/ip` | 200; 500 |
//! | `POST /v1/ipam/ips` | 200, no-op (as upstream) |
//! | `DELETE /v1/ipam/ips` | 200; 500 |
//! | `GET /v1/coordinator/config` | 200 `CoordinatorConfig`; 500 when no SpiderCoordinator or not Synced |
//! | `GET /v1/workloadendpoint?podNamespace=&podName=` | 200 endpoint status; 400; 404 |
//! | `GET /v1/local/state` | 200 [`crate::agent::Dump`] (our extension, for `spiderpool-agent dump`) |
//!
//! A body that is not the expected JSON is a 400; an unknown path a 404; a known path with
//! another method a 405. Error bodies are JSON strings.

use serde::de::DeserializeOwned;
use spiderpool_core::agentapi::{
    PATH_COORDINATOR_CONFIG, PATH_HEALTHY, PATH_IP, PATH_IPS, PATH_WORKLOAD_ENDPOINT,
};

use crate::agent::ApiError;
use crate::http::{Request, Response};
use crate::service::{IpamService, check_required};

/// Our extension: the agent's state as JSON.
pub const PATH_LOCAL_STATE: &str = "/v1/local/state";

fn decode<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    serde_json::from_slice(&req.body).map_err(|e| ApiError {
        status: 400,
        message: format!("invalid {} {} body: {e}", req.method, req.path),
    })
}

fn answer<T: serde::Serialize>(r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => Response::json(200, &v),
        Err(e) => Response::error(e.status, &e.message),
    }
}

fn done(r: Result<(), ApiError>) -> Response {
    match r {
        Ok(()) => Response::empty(200),
        Err(e) => Response::error(e.status, &e.message),
    }
}

/// Answers one request.
pub fn handle(agent: &dyn IpamService, req: &Request) -> Response {
    let path = req.path.trim_end_matches('/');
    match (req.method.as_str(), path) {
        ("GET", PATH_HEALTHY) => match agent.healthy() {
            Ok(()) => Response::empty(200),
            Err(why) => Response::error(503, &why),
        },
        ("POST", PATH_IP) => answer(decode(req).and_then(|a| {
            check_required(&a)?;
            agent.add(&a)
        })),
        ("DELETE", PATH_IP) => done(decode(req).and_then(|a| {
            check_required(&a)?;
            agent.del(&a)
        })),
        ("POST", PATH_IPS) => Response::empty(200),
        ("DELETE", PATH_IPS) => done(decode(req).and_then(|a| {
            check_required(&a)?;
            agent.batch_del(&a)
        })),
        ("GET", PATH_COORDINATOR_CONFIG) => {
            answer(decode(req).and_then(|a| agent.coordinator_config(&a)))
        }
        ("GET", PATH_WORKLOAD_ENDPOINT) => {
            let ns = req.query_param("podNamespace").unwrap_or_default();
            let name = req.query_param("podName").unwrap_or_default();
            if ns.is_empty() || name.is_empty() {
                return Response::error(400, "podNamespace and podName are required");
            }
            answer(agent.workload_endpoint(&ns, &name))
        }
        ("GET", PATH_LOCAL_STATE) => answer(agent.dump_json()),
        (
            _,
            PATH_HEALTHY
            | PATH_IP
            | PATH_IPS
            | PATH_COORDINATOR_CONFIG
            | PATH_WORKLOAD_ENDPOINT
            | PATH_LOCAL_STATE,
        ) => Response::error(
            405,
            &format!("method {} not allowed on {}", req.method, req.path),
        ),
        _ => Response::error(404, &format!("path {} not found", req.path)),
    }
}
