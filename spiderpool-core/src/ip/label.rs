//! Encoding a CIDR as a Kubernetes label value (`ipam.spidernet.io/ippool-cidr` and friends).

use super::Cidr;

/// Upstream `CIDRToLabelValue`: `172.18.40.0/24` → `172-18-40-0-24`.
pub fn cidr_label_value(cidr: &Cidr) -> String {
    cidr_label_value_str(&cidr.to_string())
}

/// Upstream `CIDRToLabelValue` on text: replaces the first 3 `.`, the first 7 `:` and the
/// first `/` with `-` (so `abcd:1234::/120` → `abcd-1234---120`). The text is not validated.
pub fn cidr_label_value_str(s: &str) -> String {
    let (mut dots, mut colons, mut slashes) = (0, 0, 0);
    s.chars()
        .map(|ch| {
            let counter = match ch {
                '.' => Some((&mut dots, 3)),
                ':' => Some((&mut colons, 7)),
                '/' => Some((&mut slashes, 1)),
                _ => None,
            };
            match counter {
                Some((n, limit)) if *n < limit => {
                    *n += 1;
                    '-'
                }
                _ => ch,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_examples() {
        assert_eq!(cidr_label_value_str("172.18.40.0/24"), "172-18-40-0-24");
        assert_eq!(cidr_label_value_str("abcd:1234::/120"), "abcd-1234---120");
        assert_eq!(
            cidr_label_value(&Cidr::parse("abcd:1234::/120").unwrap()),
            "abcd-1234---120"
        );
        assert_eq!(
            cidr_label_value_str("1:2:3:4:5:6:7:8/128"),
            "1-2-3-4-5-6-7-8-128"
        );
    }

    #[test]
    fn only_the_first_occurrences_are_replaced() {
        // An IPv4-mapped address has more than three dots after the colons.
        assert_eq!(cidr_label_value_str("a.b.c.d.e/f/g"), "a-b-c-d.e-f/g");
        assert_eq!(
            cidr_label_value_str("1:2:3:4:5:6:7:8:9"),
            "1-2-3-4-5-6-7-8:9"
        );
    }
}
