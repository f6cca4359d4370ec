//! Kubernetes label selectors (`matchLabels` + `matchExpressions`), matching and validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validation::{label_value_problems, qualified_name_problems};

/// A label selector, as in `spec.podAffinity` of a SpiderIPPool.
///
/// All requirements are ANDed. An empty selector matches everything; "no selector at all"
/// (an absent `Option<LabelSelector>`) is the caller's business.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// One set-based requirement of a [`LabelSelector`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In`/`NotIn` (non-empty); must be empty for `Exists`/`DoesNotExist`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// The selector operators Kubernetes accepts.
pub const SELECTOR_OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];

/// Kind of a selector problem, mirroring Kubernetes field-error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorProblemKind {
    /// A value that must be given is missing.
    Required,
    /// A value is given where none is allowed.
    Forbidden,
    /// A value is outside its enumerated set.
    NotSupported,
    /// A value is malformed.
    Invalid,
}

/// One problem found by [`LabelSelector::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorProblem {
    /// Field path relative to the selector, e.g. `matchExpressions[0].values`.
    pub field: String,
    /// The kind of problem.
    pub kind: SelectorProblemKind,
    /// The offending value, when there is one.
    pub value: Option<String>,
    /// Human-readable explanation.
    pub message: String,
}

impl LabelSelector {
    /// Whether the selector has neither labels nor expressions (matches everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && self.match_expressions.as_ref().is_none_or(Vec::is_empty)
    }

    /// Whether `labels` satisfy every requirement. A selector with an unknown operator
    /// matches nothing, as Kubernetes refuses to build a selector from it.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let labels_ok = self
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        labels_ok
            && self
                .match_expressions
                .iter()
                .flatten()
                .all(|r| r.matches(labels))
    }

    /// Every problem with the selector, by Kubernetes' rules: label keys are qualified names,
    /// label values are valid label values, `In`/`NotIn` need values, `Exists`/`DoesNotExist`
    /// forbid them, other operators are not supported.
    pub fn validate(&self) -> Vec<SelectorProblem> {
        let mut out = Vec::new();
        for (k, v) in self.match_labels.iter().flatten() {
            for m in qualified_name_problems(k) {
                out.push(SelectorProblem {
                    field: "matchLabels".to_owned(),
                    kind: SelectorProblemKind::Invalid,
                    value: Some(k.clone()),
                    message: m,
                });
            }
            for m in label_value_problems(v) {
                out.push(SelectorProblem {
                    field: "matchLabels".to_owned(),
                    kind: SelectorProblemKind::Invalid,
                    value: Some(v.clone()),
                    message: m,
                });
            }
        }
        for (i, r) in self.match_expressions.iter().flatten().enumerate() {
            let base = format!("matchExpressions[{i}]");
            let values = r.values.as_deref().unwrap_or_default();
            match r.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => out.push(SelectorProblem {
                    field: format!("{base}.values"),
                    kind: SelectorProblemKind::Required,
                    value: None,
                    message: "must be specified when `operator` is 'In' or 'NotIn'".to_owned(),
                }),
                "Exists" | "DoesNotExist" if !values.is_empty() => out.push(SelectorProblem {
                    field: format!("{base}.values"),
                    kind: SelectorProblemKind::Forbidden,
                    value: None,
                    message: "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                        .to_owned(),
                }),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => out.push(SelectorProblem {
                    field: format!("{base}.operator"),
                    kind: SelectorProblemKind::NotSupported,
                    value: Some(other.to_owned()),
                    message: format!(
                        "supported values: \"{}\"",
                        SELECTOR_OPERATORS.join("\", \"")
                    ),
                }),
            }
            for m in qualified_name_problems(&r.key) {
                out.push(SelectorProblem {
                    field: format!("{base}.key"),
                    kind: SelectorProblemKind::Invalid,
                    value: Some(r.key.clone()),
                    message: m,
                });
            }
            for (j, v) in values.iter().enumerate() {
                for m in label_value_problems(v) {
                    out.push(SelectorProblem {
                        field: format!("{base}.values[{j}]"),
                        kind: SelectorProblemKind::Invalid,
                        value: Some(v.clone()),
                        message: m,
                    });
                }
            }
        }
        out
    }
}

impl LabelSelectorRequirement {
    /// Whether `labels` satisfy this requirement (false for an unknown operator).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let values = self.values.as_deref().unwrap_or_default();
        let got = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => got.is_some_and(|v| values.contains(v)),
            "NotIn" => got.is_none_or(|v| !values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn sel(json: serde_json::Value) -> LabelSelector {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn meta_selector_matching() {
        let l = labels(&[("app", "nginx"), ("tier", "web")]);
        assert!(LabelSelector::default().matches(&l));
        assert!(sel(serde_json::json!({"matchLabels": {"app": "nginx"}})).matches(&l));
        assert!(!sel(serde_json::json!({"matchLabels": {"app": "x"}})).matches(&l));
        let expr = |op: &str, vals: &[&str]| {
            sel(
                serde_json::json!({"matchExpressions": [{"key": "tier", "operator": op, "values": vals}]}),
            )
        };
        assert!(expr("In", &["web", "db"]).matches(&l));
        assert!(!expr("In", &["db"]).matches(&l));
        assert!(expr("NotIn", &["db"]).matches(&l));
        assert!(!expr("NotIn", &["web"]).matches(&l));
        assert!(expr("NotIn", &["web"]).matches(&labels(&[])));
        assert!(expr("Exists", &[]).matches(&l));
        assert!(!expr("DoesNotExist", &[]).matches(&l));
        assert!(!expr("Bogus", &[]).matches(&l));
        // Labels and expressions are ANDed.
        let both = sel(serde_json::json!({
            "matchLabels": {"app": "nginx"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]
        }));
        assert!(!both.matches(&l));
    }

    #[test]
    fn meta_selector_validation() {
        assert!(
            sel(serde_json::json!({"matchLabels": {"app": "nginx"}}))
                .validate()
                .is_empty()
        );
        let s = sel(serde_json::json!({
            "matchLabels": {"bad key!": "ok", "ok": "bad value!"},
            "matchExpressions": [
                {"key": "a", "operator": "In"},
                {"key": "b", "operator": "Exists", "values": ["x"]},
                {"key": "c", "operator": "Gt", "values": ["1"]},
                {"key": "d", "operator": "In", "values": ["-bad"]}
            ]
        }));
        let p = s.validate();
        let fields: Vec<(&str, SelectorProblemKind)> =
            p.iter().map(|p| (p.field.as_str(), p.kind)).collect();
        assert!(fields.contains(&("matchLabels", SelectorProblemKind::Invalid)));
        assert!(fields.contains(&("matchExpressions[0].values", SelectorProblemKind::Required)));
        assert!(fields.contains(&("matchExpressions[1].values", SelectorProblemKind::Forbidden)));
        assert!(fields.contains(&(
            "matchExpressions[2].operator",
            SelectorProblemKind::NotSupported
        )));
        assert!(fields.contains(&(
            "matchExpressions[3].values[0]",
            SelectorProblemKind::Invalid
        )));
        assert_eq!(p.iter().filter(|p| p.field == "matchLabels").count(), 2);
    }

    #[test]
    fn meta_selector_empty() {
        assert!(LabelSelector::default().is_empty());
        assert!(sel(serde_json::json!({"matchLabels": {}, "matchExpressions": []})).is_empty());
        assert!(!sel(serde_json::json!({"matchLabels": {"a": "b"}})).is_empty());
    }
}
