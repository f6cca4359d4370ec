//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`) for the six kinds.
//!
//! Schemas come from the `schemars` derives on the spec/status types, generated with
//! subschemas inlined, then passed through [`make_structural`], which turns them into
//! Kubernetes *structural* schemas: every node has a `type`, `Option`s are plain (the
//! apiserver treats a missing field as absent), and JSON-Schema-only keywords (`$ref`,
//! `$schema`, `definitions`, `additionalProperties: false`, `format` values Kubernetes does not
//! know) are removed. `metadata` is `{type: object}`, as in every CRD.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::{
    API_VERSION, CATEGORY, COORDINATOR, CoordinatorSpec, CoordinatorStatus, ENDPOINT, GROUP,
    IPPOOL, KindInfo, MULTUSCONFIG, RESERVEDIP, SUBNET, SpiderEndpointStatus, SpiderIPPoolSpec,
    SpiderIPPoolStatus, SpiderMultusConfigSpec, SpiderReservedIPSpec, SpiderSubnetSpec,
    SpiderSubnetStatus, VERSION,
};

/// The SpiderEndpoint field an agent selects its node's endpoints by (a CRD selectable field).
pub const ENDPOINT_NODE_FIELD_PATH: &str = ".status.current.node";

/// One additional printer column (`kubectl get` output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: &'static str,
    /// OpenAPI type: `string`, `integer`, `boolean`.
    pub type_: &'static str,
    /// JSONPath of the value.
    pub json_path: &'static str,
    /// Short description.
    pub description: &'static str,
    /// 0 = always shown, 10 = only with `-o wide`.
    pub priority: u8,
}

const fn col(
    name: &'static str,
    type_: &'static str,
    json_path: &'static str,
    description: &'static str,
    priority: u8,
) -> PrinterColumn {
    PrinterColumn {
        name,
        type_,
        json_path,
        description,
        priority,
    }
}

/// Printer columns of SpiderIPPool, as upstream.
pub const IPPOOL_COLUMNS: &[PrinterColumn] = &[
    col("VERSION", "string", ".spec.ipVersion", "ipVersion", 0),
    col("SUBNET", "string", ".spec.subnet", "subnet", 0),
    col(
        "ALLOCATED-IP-COUNT",
        "integer",
        ".status.allocatedIPCount",
        "allocatedIPCount",
        0,
    ),
    col(
        "TOTAL-IP-COUNT",
        "integer",
        ".status.totalIPCount",
        "totalIPCount",
        0,
    ),
    col("DEFAULT", "boolean", ".spec.default", "default", 0),
    col("DISABLE", "boolean", ".spec.disable", "disable", 10),
    col("NodeName", "string", ".spec.nodeName", "nodeName", 10),
    col("MultusName", "string", ".spec.multusName", "multusName", 10),
    col(
        "APP-NAMESPACE",
        "string",
        r".spec.podAffinity.matchLabels['ipam\.spidernet\.io/app\-namespace']",
        "AppNamespace",
        10,
    ),
];
/// Printer columns of SpiderSubnet, as upstream.
pub const SUBNET_COLUMNS: &[PrinterColumn] = &[
    col("VERSION", "string", ".spec.ipVersion", "ipVersion", 0),
    col("SUBNET", "string", ".spec.subnet", "subnet", 0),
    col(
        "ALLOCATED-IP-COUNT",
        "integer",
        ".status.allocatedIPCount",
        "allocatedIPCount",
        0,
    ),
    col(
        "TOTAL-IP-COUNT",
        "integer",
        ".status.totalIPCount",
        "totalIPCount",
        0,
    ),
];
/// Printer columns of SpiderEndpoint, as upstream (all from the first NIC).
pub const ENDPOINT_COLUMNS: &[PrinterColumn] = &[
    col(
        "INTERFACE",
        "string",
        ".status.current.ips[0].interface",
        "interface",
        0,
    ),
    col(
        "IPV4POOL",
        "string",
        ".status.current.ips[0].ipv4Pool",
        "ipv4Pool",
        0,
    ),
    col("IPV4", "string", ".status.current.ips[0].ipv4", "ipv4", 0),
    col(
        "IPV6POOL",
        "string",
        ".status.current.ips[0].ipv6Pool",
        "ipv6Pool",
        0,
    ),
    col("IPV6", "string", ".status.current.ips[0].ipv6", "ipv6", 0),
    col("NODE", "string", ".status.current.node", "node", 0),
];
/// Printer columns of SpiderReservedIP, as upstream.
pub const RESERVEDIP_COLUMNS: &[PrinterColumn] =
    &[col("VERSION", "string", ".spec.ipVersion", "ipVersion", 0)];

/// Printer columns of `kind` (empty for SpiderMultusConfig and SpiderCoordinator).
pub fn printer_columns(kind: &str) -> &'static [PrinterColumn] {
    match kind {
        "SpiderIPPool" => IPPOOL_COLUMNS,
        "SpiderSubnet" => SUBNET_COLUMNS,
        "SpiderEndpoint" => ENDPOINT_COLUMNS,
        "SpiderReservedIP" => RESERVEDIP_COLUMNS,
        _ => &[],
    }
}

/// The structural schema of `T`, ready to embed in a CRD.
pub fn structural_schema_for<T: schemars::JsonSchema>() -> Value {
    let settings = SchemaSettings::openapi3().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    make_structural(&mut schema);
    schema
}

/// Rewrites a JSON schema (as generated by schemars) into a Kubernetes structural schema,
/// recursively:
/// * drops `$schema`, `$id`, `definitions`/`$defs`, `title`, `examples`,
///   `additionalProperties: false` (the apiserver refuses it next to `properties`) and
///   `format`s other than `int32`/`int64` (`uint64` etc. are not Kubernetes formats);
/// * turns `type: [T, "null"]` and `nullable` markers into plain `T` (a missing field is how
///   Kubernetes spells "none"), and removes `null` from `enum` lists;
/// * unwraps `anyOf`/`oneOf` of one real alternative plus `null` (schemars' `Option<struct>`);
/// * keeps descriptions (the Rust doc comments), minus rustdoc link brackets.
pub fn make_structural(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    for key in [
        "$schema",
        "$id",
        "definitions",
        "$defs",
        "title",
        "examples",
    ] {
        map.remove(key);
    }
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        map.remove("additionalProperties");
    }
    map.remove("nullable");
    // Rustdoc links (`[`Foo`]`) mean nothing in `kubectl explain`: keep the code span only.
    if let Some(Value::String(d)) = map.get_mut("description") {
        *d = d.replace("[`", "`").replace("`]", "`");
    }

    // `Option<T>` shapes: anyOf/oneOf [T, {type: null}] -> T.
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = map.get(key) {
            let real: Vec<Value> = alts
                .iter()
                .filter(|a| a.get("type") != Some(&Value::String("null".into())))
                .cloned()
                .collect();
            if real.len() == 1 && real.len() < alts.len() {
                map.remove(key);
                if let Some(Value::Object(inner)) = real.into_iter().next() {
                    for (k, v) in inner {
                        // The outer node's description/default win over the inner type's.
                        map.entry(k).or_insert(v);
                    }
                }
            }
        }
    }

    // type: ["string", "null"] -> "string".
    if let Some(Value::Array(types)) = map.get("type") {
        let real: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if real.len() == 1 {
            map.insert(
                "type".into(),
                real.into_iter().next().unwrap_or(Value::Null),
            );
        }
    }
    if let Some(Value::Array(values)) = map.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if let Some(Value::String(f)) = map.get("format")
        && !matches!(f.as_str(), "int32" | "int64")
    {
        map.remove("format");
    }

    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(props)) = map.get_mut(key) {
            for v in props.values_mut() {
                make_structural(v);
            }
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(v) = map.get_mut(key) {
            make_structural(v);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(alts)) = map.get_mut(key) {
            for v in alts {
                make_structural(v);
            }
        }
    }
    // An empty `required` list is noise.
    if map
        .get("required")
        .is_some_and(|r| r.as_array().is_some_and(Vec::is_empty))
    {
        map.remove("required");
    }
}

/// Problems that make `schema` non-structural for Kubernetes, as `path: message` lines
/// (empty = structural). Used by the tests; handy for debugging hand-edited schemas.
pub fn structural_problems(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, "$", &mut out);
    out
}

fn check(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(map) = schema else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    for key in ["$ref", "$schema", "definitions", "$defs", "nullable_type"] {
        if map.contains_key(key) {
            out.push(format!("{path}: has {key}"));
        }
    }
    let typed = matches!(map.get("type"), Some(Value::String(_)))
        || map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !typed {
        out.push(format!("{path}: missing a single `type`"));
    }
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        out.push(format!("{path}: additionalProperties: false"));
    }
    if map.contains_key("additionalProperties") && map.contains_key("properties") {
        out.push(format!("{path}: both properties and additionalProperties"));
    }
    for key in ["anyOf", "oneOf", "allOf", "not"] {
        if map.contains_key(key) {
            out.push(format!("{path}: uses {key}"));
        }
    }
    if let Some(Value::Array(e)) = map.get("enum")
        && e.iter().any(Value::is_null)
    {
        out.push(format!("{path}: enum contains null"));
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (k, v) in props {
            check(v, &format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = map.get("items") {
        check(items, &format!("{path}[]"), out);
    }
    if let Some(ap @ Value::Object(_)) = map.get("additionalProperties") {
        check(ap, &format!("{path}{{}}"), out);
    }
    if map.get("type") == Some(&Value::String("array".into())) && !map.contains_key("items") {
        out.push(format!("{path}: array without items"));
    }
}

/// The top-level object schema of a kind: apiVersion, kind, metadata and the given parts.
fn object_schema(parts: &[(&str, Value)], required: &[&str]) -> Value {
    let mut props = Map::new();
    props.insert(
        "apiVersion".into(),
        json!({"type": "string", "description": "APIVersion of the object."}),
    );
    props.insert(
        "kind".into(),
        json!({"type": "string", "description": "Kind of the object."}),
    );
    props.insert("metadata".into(), json!({"type": "object"}));
    for (name, schema) in parts {
        props.insert((*name).to_owned(), schema.clone());
    }
    let mut schema = json!({"type": "object", "properties": props});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// The CRD of one kind, from its facts, columns and schema.
fn crd(info: &KindInfo, schema: Value) -> Value {
    let mut version = json!({
        "name": VERSION,
        "served": true,
        "storage": true,
        "schema": {"openAPIV3Schema": schema},
    });
    let cols = printer_columns(info.kind);
    if !cols.is_empty() {
        version["additionalPrinterColumns"] = cols
            .iter()
            .map(|c| {
                let mut v = json!({
                    "name": c.name,
                    "type": c.type_,
                    "jsonPath": c.json_path,
                    "description": c.description,
                });
                if c.priority != 0 {
                    v["priority"] = json!(c.priority);
                }
                v
            })
            .collect();
    }
    if info.status_subresource {
        version["subresources"] = json!({"status": {}});
    }
    if info.kind == ENDPOINT.kind {
        // Lets an agent watch only its own node's endpoints (field selector
        // `status.current.node=<node>`); not in upstream's CRD.
        version["selectableFields"] = json!([{"jsonPath": ENDPOINT_NODE_FIELD_PATH}]);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", info.plural, GROUP)},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": format!("{}List", info.kind),
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": [info.short_name],
                "categories": [CATEGORY],
            },
            "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
            "versions": [version],
        }
    })
}

/// `phase` is required in upstream's CRD, while reading stays lenient (a missing phase
/// reads as `""`), so the generated schema is adjusted here rather than the Rust type.
fn coordinator_status_schema() -> Value {
    let mut schema = structural_schema_for::<CoordinatorStatus>();
    if let Some(Value::Object(phase)) = schema.pointer_mut("/properties/phase") {
        phase.remove("default");
    }
    schema["required"] = json!(["phase"]);
    schema
}

/// Keeps upstream's older SpiderMultusConfig spellings in the schema, so that the apiserver
/// neither prunes nor refuses them (the seed's SMC uses them; upstream v1.2.1's schema drops
/// them silently): `<cni block>.spiderpoolConfigPools: {IPv4IPPool, IPv6IPPool}` and
/// `coordinator.tuneMode`. Readers move them to `ippools` / `mode`.
fn keep_legacy_smc_fields(schema: &mut Value) {
    let Some(spec) = schema
        .pointer_mut("/properties/spec/properties")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let list = |d: &str| json!({"type": "array", "items": {"type": "string"}, "description": d});
    let pools = json!({
        "type": "object",
        "description": "Older spelling of `ippools` (moved there on admission).",
        "properties": {
            "IPv4IPPool": list("Older spelling of `ipv4`."),
            "IPv6IPPool": list("Older spelling of `ipv6`."),
        },
    });
    for block in spec.values_mut() {
        if let Some(props) = block.get_mut("properties").and_then(Value::as_object_mut)
            && props.contains_key("ippools")
        {
            props.insert("spiderpoolConfigPools".into(), pools.clone());
        }
    }
    if let Some(c) = spec
        .get_mut("coordinator")
        .and_then(|c| c.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        c.insert(
            "tuneMode".into(),
            json!({"type": "string", "description": "Older spelling of `mode` (moved there on admission)."}),
        );
    }
}

/// The CustomResourceDefinitions of all six kinds (`apiextensions.k8s.io/v1`), in
/// [`super::KINDS`] order: group `spiderpool.spidernet.io`, version `v2beta1` served and
/// stored, upstream's scope, short names, printer columns, status subresources, defaults,
/// enums, ranges and required fields.
pub fn custom_resource_definitions() -> Vec<Value> {
    debug_assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
    let pool = object_schema(
        &[
            ("spec", structural_schema_for::<SpiderIPPoolSpec>()),
            ("status", structural_schema_for::<SpiderIPPoolStatus>()),
        ],
        &[],
    );
    let subnet = object_schema(
        &[
            ("spec", structural_schema_for::<SpiderSubnetSpec>()),
            ("status", structural_schema_for::<SpiderSubnetStatus>()),
        ],
        &[],
    );
    let endpoint = object_schema(
        &[("status", structural_schema_for::<SpiderEndpointStatus>())],
        &[],
    );
    let reserved = object_schema(
        &[("spec", structural_schema_for::<SpiderReservedIPSpec>())],
        &[],
    );
    let mut smc = object_schema(
        &[("spec", structural_schema_for::<SpiderMultusConfigSpec>())],
        &[],
    );
    keep_legacy_smc_fields(&mut smc);
    let coordinator = object_schema(
        &[
            ("spec", structural_schema_for::<CoordinatorSpec>()),
            ("status", coordinator_status_schema()),
        ],
        &[],
    );
    vec![
        crd(&IPPOOL, pool),
        crd(&SUBNET, subnet),
        crd(&ENDPOINT, endpoint),
        crd(&RESERVEDIP, reserved),
        crd(&MULTUSCONFIG, smc),
        crd(&COORDINATOR, coordinator),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(crd: &Value) -> &Value {
        &crd["spec"]["versions"][0]
    }

    #[test]
    fn objects_crd_make_structural_rewrites() {
        let mut s = json!({
            "$schema": "x",
            "title": "T",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "a": {"type": ["string", "null"]},
                "b": {"anyOf": [{"type": "object", "properties": {"c": {"type": "integer",
                      "format": "uint64", "minimum": 0}}}, {"type": "null"}],
                      "description": "outer"},
                "d": {"type": ["string", "null"], "enum": ["x", null]},
                "e": {"type": "array", "items": {"type": "integer", "format": "int32"}},
                "f": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                "g": {"type": "string", "nullable": true}
            },
            "required": []
        });
        make_structural(&mut s);
        assert_eq!(
            s,
            json!({
                "type": "object",
                "properties": {
                    "a": {"type": "string"},
                    "b": {"description": "outer", "type": "object",
                          "properties": {"c": {"type": "integer", "minimum": 0}}},
                    "d": {"type": "string", "enum": ["x"]},
                    "e": {"type": "array", "items": {"type": "integer", "format": "int32"}},
                    "f": {"type": "object", "additionalProperties": {"type": "string"}},
                    "g": {"type": "string"}
                }
            })
        );
        assert!(structural_problems(&s).is_empty());
    }

    #[test]
    fn objects_crd_structural_checker_finds_problems() {
        let bad = json!({
            "type": "object",
            "properties": {
                "r": {"$ref": "#/definitions/X"},
                "u": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "n": {"type": "string", "enum": ["a", null]},
                "l": {"type": "array"}
            },
            "additionalProperties": false
        });
        let p = structural_problems(&bad);
        for needle in [
            "$.r: has $ref",
            "$.r: missing a single `type`",
            "$.u: uses anyOf",
            "$.n: enum contains null",
            "$.l: array without items",
            "$: additionalProperties: false",
        ] {
            assert!(p.iter().any(|x| x == needle), "{needle} not in {p:?}");
        }
    }

    #[test]
    fn objects_crd_all_schemas_structural() {
        let crds = custom_resource_definitions();
        assert_eq!(crds.len(), 6);
        for crd in &crds {
            let schema = &version(crd)["schema"]["openAPIV3Schema"];
            let problems = structural_problems(schema);
            assert!(
                problems.is_empty(),
                "{}: {problems:#?}",
                crd["metadata"]["name"]
            );
            assert_eq!(schema["properties"]["metadata"], json!({"type": "object"}));
            // No JSON-Schema-only keywords anywhere in the text.
            let text = schema.to_string();
            for kw in ["$ref", "$schema", "definitions", "\"nullable\"", "uint"] {
                assert!(!text.contains(kw), "{kw} in {}", crd["metadata"]["name"]);
            }
        }
    }

    #[test]
    fn objects_crd_names_scope_and_subresources() {
        let crds = custom_resource_definitions();
        let expect = [
            ("spiderippools", "SpiderIPPool", "Cluster", "sp", true),
            ("spidersubnets", "SpiderSubnet", "Cluster", "ss", true),
            (
                "spiderendpoints",
                "SpiderEndpoint",
                "Namespaced",
                "se",
                false,
            ),
            (
                "spiderreservedips",
                "SpiderReservedIP",
                "Cluster",
                "sr",
                false,
            ),
            (
                "spidermultusconfigs",
                "SpiderMultusConfig",
                "Namespaced",
                "smc",
                false,
            ),
            (
                "spidercoordinators",
                "SpiderCoordinator",
                "Cluster",
                "scc",
                true,
            ),
        ];
        for (crd, (plural, kind, scope, short, status)) in crds.iter().zip(expect) {
            assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
            assert_eq!(crd["kind"], "CustomResourceDefinition");
            assert_eq!(
                crd["metadata"]["name"],
                format!("{plural}.spiderpool.spidernet.io")
            );
            let spec = &crd["spec"];
            assert_eq!(spec["group"], "spiderpool.spidernet.io");
            assert_eq!(spec["scope"], scope);
            assert_eq!(spec["names"]["kind"], kind);
            assert_eq!(spec["names"]["plural"], plural);
            assert_eq!(spec["names"]["listKind"], format!("{kind}List"));
            assert_eq!(spec["names"]["shortNames"], json!([short]));
            assert_eq!(spec["names"]["categories"], json!(["spiderpool"]));
            let v = version(crd);
            assert_eq!(spec["versions"].as_array().unwrap().len(), 1);
            assert_eq!(
                (
                    v["name"].as_str(),
                    v["served"].as_bool(),
                    v["storage"].as_bool()
                ),
                (Some("v2beta1"), Some(true), Some(true))
            );
            assert_eq!(v.get("subresources").is_some(), status, "{kind}");
            if status {
                assert_eq!(v["subresources"], json!({"status": {}}));
            }
        }
    }

    #[test]
    fn objects_crd_printer_columns() {
        let crds = custom_resource_definitions();
        let cols = |i: usize| -> Vec<(String, String, String, i64)> {
            version(&crds[i])["additionalPrinterColumns"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| {
                            (
                                c["name"].as_str().unwrap().to_owned(),
                                c["type"].as_str().unwrap().to_owned(),
                                c["jsonPath"].as_str().unwrap().to_owned(),
                                c["priority"].as_i64().unwrap_or(0),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let c =
            |n: &str, t: &str, p: &str, prio: i64| (n.to_owned(), t.to_owned(), p.to_owned(), prio);
        assert_eq!(
            cols(0),
            vec![
                c("VERSION", "string", ".spec.ipVersion", 0),
                c("SUBNET", "string", ".spec.subnet", 0),
                c(
                    "ALLOCATED-IP-COUNT",
                    "integer",
                    ".status.allocatedIPCount",
                    0
                ),
                c("TOTAL-IP-COUNT", "integer", ".status.totalIPCount", 0),
                c("DEFAULT", "boolean", ".spec.default", 0),
                c("DISABLE", "boolean", ".spec.disable", 10),
                c("NodeName", "string", ".spec.nodeName", 10),
                c("MultusName", "string", ".spec.multusName", 10),
                c(
                    "APP-NAMESPACE",
                    "string",
                    r".spec.podAffinity.matchLabels['ipam\.spidernet\.io/app\-namespace']",
                    10
                ),
            ]
        );
        assert_eq!(
            cols(1),
            vec![
                c("VERSION", "string", ".spec.ipVersion", 0),
                c("SUBNET", "string", ".spec.subnet", 0),
                c(
                    "ALLOCATED-IP-COUNT",
                    "integer",
                    ".status.allocatedIPCount",
                    0
                ),
                c("TOTAL-IP-COUNT", "integer", ".status.totalIPCount", 0),
            ]
        );
        assert_eq!(
            cols(2),
            vec![
                c("INTERFACE", "string", ".status.current.ips[0].interface", 0),
                c("IPV4POOL", "string", ".status.current.ips[0].ipv4Pool", 0),
                c("IPV4", "string", ".status.current.ips[0].ipv4", 0),
                c("IPV6POOL", "string", ".status.current.ips[0].ipv6Pool", 0),
                c("IPV6", "string", ".status.current.ips[0].ipv6", 0),
                c("NODE", "string", ".status.current.node", 0),
            ]
        );
        assert_eq!(cols(3), vec![c("VERSION", "string", ".spec.ipVersion", 0)]);
        assert!(cols(4).is_empty());
        assert!(cols(5).is_empty());
    }

    #[test]
    fn objects_crd_defaults_enums_ranges_required() {
        let crds = custom_resource_definitions();
        let schema = |i: usize| version(&crds[i])["schema"]["openAPIV3Schema"].clone();
        let pool = schema(0);
        let ps = &pool["properties"]["spec"];
        assert_eq!(ps["required"], json!(["subnet"]));
        assert_eq!(ps["properties"]["ipVersion"]["enum"], json!([4, 6]));
        assert_eq!(ps["properties"]["ipVersion"]["type"], "integer");
        assert_eq!(ps["properties"]["default"]["default"], json!(false));
        assert_eq!(ps["properties"]["disable"]["default"], json!(false));
        assert_eq!(
            ps["properties"]["routes"]["items"]["required"],
            json!(["dst", "gw"])
        );
        assert_eq!(
            ps["properties"]["podAffinity"]["properties"]["matchExpressions"]["items"]["required"],
            json!(["key", "operator"])
        );
        assert_eq!(
            pool["properties"]["status"]["properties"]["totalIPCount"]["minimum"],
            json!(0)
        );
        assert_eq!(
            schema(1)["properties"]["spec"]["required"],
            json!(["subnet"])
        );
        assert_eq!(
            schema(3)["properties"]["spec"]["properties"]["ipVersion"]["enum"],
            json!([4, 6])
        );

        let smc = schema(4);
        let ss = &smc["properties"]["spec"]["properties"];
        assert_eq!(ss["cniType"]["default"], "custom");
        assert_eq!(ss["cniType"]["enum"].as_array().unwrap().len(), 8);
        assert_eq!(ss["enableCoordinator"]["default"], json!(true));
        assert_eq!(ss["disableIPAM"]["default"], json!(false));
        assert_eq!(ss["macvlan"]["required"], json!(["master"]));
        assert_eq!(
            ss["macvlan"]["properties"]["vlanID"]["maximum"],
            json!(4094)
        );
        assert_eq!(ss["macvlan"]["properties"]["vlanID"]["minimum"], json!(0));
        assert_eq!(
            ss["macvlan"]["properties"]["bond"]["required"],
            json!(["name", "mode"])
        );
        assert_eq!(
            ss["macvlan"]["properties"]["bond"]["properties"]["mode"]["maximum"],
            json!(6)
        );
        assert_eq!(
            ss["vlan"]["properties"]["vlanMode"]["enum"],
            json!(["manual", "auto"])
        );
        assert_eq!(ss["vlan"]["properties"]["vlanMode"]["default"], "manual");
        assert_eq!(
            ss["ibsriov"]["properties"]["linkState"]["default"],
            "enable"
        );
        assert_eq!(
            ss["ibsriov"]["properties"]["rdmaIsolation"]["default"],
            json!(true)
        );
        assert_eq!(
            ss["sriov"]["properties"]["rdmaIsolation"]["default"],
            json!(false)
        );
        assert_eq!(ss["ovs"]["required"], json!(["bridge"]));
        assert_eq!(
            ss["ovs"]["properties"]["trunk"]["items"]["properties"]["id"]["maximum"],
            json!(4094)
        );
        assert_eq!(
            ss["macvlan"]["properties"]["ippools"]["properties"]["matchMasterSubnet"]["default"],
            json!(false)
        );
        // The SMC's coordinator block is the SpiderCoordinator spec schema.
        let coord = schema(5);
        let without_description = |v: &Value| {
            let mut v = v.clone();
            v.as_object_mut().unwrap().remove("description");
            // The SMC keeps the older spelling `tuneMode` (keep_legacy_smc_fields).
            if let Some(p) = v["properties"].as_object_mut() {
                p.remove("tuneMode");
            }
            v
        };
        assert_eq!(
            without_description(&ss["coordinator"]),
            without_description(&coord["properties"]["spec"])
        );
        let cs = &coord["properties"]["spec"]["properties"];
        assert_eq!(cs["mode"]["default"], "auto");
        assert_eq!(
            cs["mode"]["enum"],
            json!(["auto", "underlay", "overlay", "disabled"])
        );
        assert_eq!(
            cs["podCIDRType"]["enum"],
            json!(["auto", "cluster", "calico", "cilium", "none"])
        );
        assert_eq!(cs["tunePodRoutes"]["default"], json!(true));
        assert_eq!(cs["hostRuleTable"]["default"], json!(500));
        assert_eq!(cs["podRPFilter"]["default"], json!(0));
        assert_eq!(cs["txQueueLen"]["default"], json!(0));
        assert_eq!(cs["vethMTU"]["minimum"], json!(1));
        // Removed upstream fields are readable but not part of the CRD.
        for gone in [
            "detectGateway",
            "detectIPConflict",
            "hostRPFilter",
            "tuneMode",
        ] {
            assert!(cs.get(gone).is_none(), "{gone}");
        }
        let st = &coord["properties"]["status"];
        assert_eq!(st["required"], json!(["phase"]));
        assert!(st["properties"]["phase"].get("default").is_none());
        let ep = &schema(2)["properties"]["status"];
        assert_eq!(
            ep["required"],
            json!(["current", "ownerControllerType", "ownerControllerName"])
        );
        assert_eq!(
            ep["properties"]["current"]["properties"]["ips"]["items"]["properties"]["vlan"]["default"],
            json!(0)
        );
        assert!(schema(2)["properties"].get("spec").is_none());
    }
}
