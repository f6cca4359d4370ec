//! A minimal CNI runtime: runs a network configuration list's plugins in order for ADD (each
//! gets the previous result as `prevResult`) and in reverse for DEL, as libcni does.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

/// One pod NIC attachment.
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: String,
    /// Extra `runtimeConfig` for every plugin (e.g. pod annotations in local mode).
    pub runtime_config: Option<Value>,
}

fn plugin_conf(list: &Value, plugin: &Value, att: &Attachment, prev: Option<&Value>) -> Value {
    let mut conf: Map<String, Value> = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("cniVersion".into(), list["cniVersion"].clone());
    conf.insert("name".into(), list["name"].clone());
    if let Some(rc) = &att.runtime_config {
        conf.insert("runtimeConfig".into(), rc.clone());
    }
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    Value::Object(conf)
}

fn exec(
    cni_path: &Path,
    node_ns: &str,
    command: &str,
    conf: &Value,
    att: &Attachment,
) -> Result<Option<Value>, String> {
    let plugin = conf["type"].as_str().unwrap_or_default().to_owned();
    let bin = cni_path.join(&plugin);
    // Plugins run in the node's namespace, as the kubelet's runtime would run them.
    let mut child = Command::new("ip")
        .args(["netns", "exec", node_ns])
        .arg(&bin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &att.container_id)
        .env("CNI_NETNS", &att.netns)
        .env("CNI_IFNAME", &att.ifname)
        .env("CNI_ARGS", &att.args)
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(conf.to_string().as_bytes())
            .map_err(|e| format!("{plugin}: stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{plugin}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{plugin} {command} failed: {} {}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if stdout.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&stdout)
        .map(Some)
        .map_err(|e| format!("{plugin} {command}: bad result {stdout:?}: {e}"))
}

/// ADD through every plugin of the list; returns the last result.
pub fn add(
    cni_path: &Path,
    node_ns: &str,
    list: &Value,
    att: &Attachment,
) -> Result<Value, String> {
    let mut prev: Option<Value> = None;
    for plugin in list["plugins"].as_array().into_iter().flatten() {
        let conf = plugin_conf(list, plugin, att, prev.as_ref());
        prev = exec(cni_path, node_ns, "ADD", &conf, att)?;
    }
    prev.ok_or_else(|| "the chain produced no result".into())
}

/// DEL through the list in reverse, each plugin given the ADD result.
pub fn del(
    cni_path: &Path,
    node_ns: &str,
    list: &Value,
    att: &Attachment,
    result: &Value,
) -> Result<(), String> {
    let plugins: Vec<&Value> = list["plugins"].as_array().into_iter().flatten().collect();
    for plugin in plugins.into_iter().rev() {
        let conf = plugin_conf(list, plugin, att, Some(result));
        exec(cni_path, node_ns, "DEL", &conf, att)?;
    }
    Ok(())
}

/// The NAD's `spec.config` turned into a conflist for this host: pointed at our agent socket.
pub fn conflist(nad_config: &str, socket: &Path, log: &Path) -> Result<Value, String> {
    let mut list: Value =
        serde_json::from_str(nad_config).map_err(|e| format!("NAD config: {e}"))?;
    let socket = socket.display().to_string();
    for plugin in list["plugins"].as_array_mut().into_iter().flatten() {
        if let Some(ipam) = plugin.get_mut("ipam").and_then(Value::as_object_mut) {
            ipam.insert("ipam_unix_socket_path".into(), json!(socket));
            ipam.insert("log_file_path".into(), json!(log.display().to_string()));
        }
        if plugin["type"] == "coordinator" {
            plugin["ipam_unix_socket_path"] = json!(socket);
        }
    }
    Ok(list)
}
