//! RBAC proven from the apiserver's audit log: what each of our ServiceAccounts asked for, what
//! it was refused (a missing permission), and what its roles grant that the run never used.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::kube::Kube;

/// One permission: verb on `group/resource[/subresource]` (`core` for the core group).
pub type Permission = (String, String);

/// What one ServiceAccount did in a run.
#[derive(Debug, Default, PartialEq)]
pub struct Usage {
    /// Requests the apiserver answered (any status but 403).
    pub used: BTreeSet<Permission>,
    /// Requests refused with 403, as `verb resource (name)`.
    pub refused: BTreeSet<String>,
    /// Requests seen.
    pub requests: usize,
}

/// Reads the audit log (JSON lines) and groups the requests of ServiceAccounts whose user
/// name starts with `prefix` (e.g. `system:serviceaccount:kube-system:spiderpool-`).
pub fn audit_usage(log: &Path, prefix: &str) -> Result<BTreeMap<String, Usage>, String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut out: BTreeMap<String, Usage> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ev: Value = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}", log.display(), i + 1))?;
        let Some(user) = ev["user"]["username"].as_str() else {
            continue;
        };
        if !user.starts_with(prefix) {
            continue;
        }
        let Some(resource) = ev["objectRef"]["resource"].as_str() else {
            // Non-resource URLs (/version, /api discovery) need no role.
            continue;
        };
        let group = ev["objectRef"]["apiGroup"]
            .as_str()
            .filter(|g| !g.is_empty());
        let mut key = format!("{}/{resource}", group.unwrap_or("core"));
        if let Some(sub) = ev["objectRef"]["subresource"].as_str() {
            key = format!("{key}/{sub}");
        }
        let verb = ev["verb"].as_str().unwrap_or("?").to_owned();
        let usage = out.entry(user.to_owned()).or_default();
        usage.requests += 1;
        if ev["responseStatus"]["code"].as_u64() == Some(403) {
            let name = ev["objectRef"]["name"].as_str().unwrap_or("");
            usage
                .refused
                .insert(format!("{verb} {key} {name}").trim_end().to_owned());
        } else {
            usage.used.insert((verb, key));
        }
    }
    Ok(out)
}

/// Every (verb, resource) the roles bound to ServiceAccount `namespace/name` grant.
pub fn granted(k: &Kube, namespace: &str, name: &str) -> Result<BTreeSet<Permission>, String> {
    let mut out = BTreeSet::new();
    let binds_us = |b: &Value| {
        b["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == namespace
            })
        })
    };
    for (bindings, role_kind) in [
        (k.json(&["get", "clusterrolebindings"])?, None),
        (
            k.json(&["get", "rolebindings", "-n", namespace])?,
            Some(namespace),
        ),
    ] {
        for b in bindings["items"].as_array().into_iter().flatten() {
            if !binds_us(b) {
                continue;
            }
            let role_name = b["roleRef"]["name"].as_str().unwrap_or_default();
            let role = match (b["roleRef"]["kind"].as_str(), role_kind) {
                (Some("Role"), Some(ns)) => k.json(&["get", "role", role_name, "-n", ns])?,
                _ => k.json(&["get", "clusterrole", role_name])?,
            };
            out.extend(rule_permissions(&role));
        }
    }
    Ok(out)
}

/// The (verb, resource) pairs of a Role or ClusterRole's rules.
fn rule_permissions(role: &Value) -> BTreeSet<Permission> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        for group in strings(&rule["apiGroups"]) {
            let group = if group.is_empty() {
                "core".to_owned()
            } else {
                group
            };
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((verb, format!("{group}/{resource}")));
                }
            }
        }
    }
    out
}

/// Granted permissions the run never used.
pub fn unused(granted: &BTreeSet<Permission>, usage: &Usage) -> Vec<String> {
    granted
        .difference(&usage.used)
        .map(|(verb, res)| format!("{verb} {res}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_audit_log_is_grouped_per_account() {
        let dir = std::env::temp_dir().join(format!("rbac-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("audit.log");
        let ev = |user: &str, verb: &str, group: &str, res: &str, sub: Option<&str>, code: u64| {
            let mut obj = json!({"resource": res, "apiGroup": group, "name": "x"});
            if let Some(s) = sub {
                obj["subresource"] = json!(s);
            }
            json!({"user": {"username": user}, "verb": verb, "objectRef": obj,
                   "responseStatus": {"code": code}})
            .to_string()
        };
        let a = "system:serviceaccount:kube-system:spiderpool-agent";
        let lines = [
            ev(a, "get", "", "pods", None, 200),
            ev(
                a,
                "patch",
                "spiderpool.spidernet.io",
                "spiderippools",
                Some("status"),
                200,
            ),
            ev(a, "delete", "", "nodes", None, 403),
            ev(
                "system:serviceaccount:kube-system:job-controller",
                "get",
                "",
                "pods",
                None,
                200,
            ),
            json!({"user": {"username": a}, "verb": "get", "requestURI": "/version"}).to_string(),
        ];
        std::fs::write(&log, lines.join("\n")).unwrap();
        let usage = audit_usage(&log, "system:serviceaccount:kube-system:spiderpool-").unwrap();
        assert_eq!(usage.len(), 1, "{usage:?}");
        let agent = &usage[a];
        assert_eq!(agent.requests, 3);
        assert!(agent.used.contains(&("get".into(), "core/pods".into())));
        assert!(agent.used.contains(&(
            "patch".into(),
            "spiderpool.spidernet.io/spiderippools/status".into()
        )));
        assert_eq!(
            agent.refused.iter().collect::<Vec<_>>(),
            ["delete core/nodes x"]
        );
        let role = json!({"rules": [{"apiGroups": [""], "resources": ["pods", "nodes"],
                                      "verbs": ["get"]}]});
        let granted = rule_permissions(&role);
        assert_eq!(unused(&granted, agent), ["get core/nodes"]);
        std::fs::write(&log, "not json\n").unwrap();
        assert!(audit_usage(&log, "x").unwrap_err().contains("line 1"));
    }
}
