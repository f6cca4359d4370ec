//! Kubernetes name rules: label keys (qualified names), label values, DNS-1123 names.
//!
//! Each check returns the list of problems (empty = valid), so callers can report all of
//! them at once like the apiserver does.

/// Longest label value and longest name part of a qualified name.
pub const LABEL_VALUE_MAX_LEN: usize = 63;
/// Longest DNS-1123 label (namespace names, ...).
pub const DNS1123_LABEL_MAX_LEN: usize = 63;
/// Longest DNS-1123 subdomain (most object names, label key prefixes).
pub const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`: shared by label values and name parts.
fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_dns_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return false;
    };
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    ok(first) && ok(last) && b.iter().all(|c| ok(c) || *c == b'-')
}

/// Problems with `s` as a label value (may be empty; at most 63 characters of
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric).
pub fn label_value_problems(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > LABEL_VALUE_MAX_LEN {
        out.push(format!(
            "must be no more than {LABEL_VALUE_MAX_LEN} characters"
        ));
    }
    if !s.is_empty() && !is_label_token(s) {
        out.push(
            "a valid label value must be empty or consist of alphanumeric characters, '-', '_' \
             or '.', and must start and end with an alphanumeric character"
                .to_owned(),
        );
    }
    out
}

/// Problems with `s` as a qualified name (label and annotation keys, selector keys):
/// an optional DNS-1123 subdomain prefix and `/`, then a name part of at most 63 characters.
pub fn qualified_name_problems(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if name.contains('/') {
        out.push(
            "a qualified name must consist of an optional DNS subdomain prefix and '/', \
             followed by a name part"
                .to_owned(),
        );
        return out;
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            out.push("prefix part must be non-empty".to_owned());
        } else {
            out.extend(
                dns1123_subdomain_problems(p)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty".to_owned());
    } else {
        if name.len() > LABEL_VALUE_MAX_LEN {
            out.push(format!(
                "name part must be no more than {LABEL_VALUE_MAX_LEN} characters"
            ));
        }
        if !is_label_token(name) {
            out.push(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
                 start and end with an alphanumeric character"
                    .to_owned(),
            );
        }
    }
    out
}

/// Problems with `s` as a DNS-1123 subdomain (lower-case alphanumerics, `-` and `.`,
/// labels separated by `.`, at most 253 characters).
pub fn dns1123_subdomain_problems(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        out.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX_LEN} characters"
        ));
    }
    if !s.split('.').all(is_dns_label_token) {
        out.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character"
                .to_owned(),
        );
    }
    out
}

/// Problems with `s` as a DNS-1123 label (lower-case alphanumerics and `-`, at most 63
/// characters).
pub fn dns1123_label_problems(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > DNS1123_LABEL_MAX_LEN {
        out.push(format!(
            "must be no more than {DNS1123_LABEL_MAX_LEN} characters"
        ));
    }
    if !is_dns_label_token(s) {
        out.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character"
                .to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_label_values() {
        for ok in ["", "a", "10-6-v4", "A.b_c-1", &"x".repeat(63)] {
            assert!(label_value_problems(ok).is_empty(), "{ok}");
        }
        for bad in ["-a", "a-", "a b", "a/b", &"x".repeat(64)] {
            assert!(!label_value_problems(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn meta_qualified_names() {
        for ok in [
            "app",
            "ipam.spidernet.io/ippool-cidr",
            "a.b/C_d",
            "k8s.v1.cni.cncf.io/networks",
        ] {
            assert!(qualified_name_problems(ok).is_empty(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a/b/c", "Upper.io/x", "-x", &"x".repeat(64)] {
            assert!(!qualified_name_problems(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn meta_dns_names() {
        assert!(dns1123_subdomain_problems("macvlan-ens192.x").is_empty());
        assert!(!dns1123_subdomain_problems("Macvlan").is_empty());
        assert!(!dns1123_subdomain_problems("a..b").is_empty());
        assert!(!dns1123_subdomain_problems("").is_empty());
        assert!(dns1123_label_problems("kube-system").is_empty());
        assert!(!dns1123_label_problems("a.b").is_empty());
    }
}
