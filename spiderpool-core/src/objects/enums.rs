//! Typed views of the enumerated string fields.
//!
//! The fields themselves stay `Option<String>` in the object structs, so a manifest with an
//! unsupported value still deserializes and admission can answer "NotSupported: supported
//! values: ..." with the field path, as upstream's webhook does. These enums are the typed
//! accessors' results.

use crate::manifest::ManifestError;
use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every accepted spelling, in upstream's schema order.
            pub const SUPPORTED: &'static [&'static str] = &[$($text),+];

            /// The wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text ),+ }
            }

            /// Parses the wire spelling (exact, case-sensitive).
            pub fn parse(s: &str) -> Result<Self, ManifestError> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    other => Err(ManifestError::UnsupportedValue {
                        field: $field,
                        value: other.to_owned(),
                        supported: Self::SUPPORTED,
                    }),
                }
            }

            /// Parses an optional field: `Ok(None)` when absent.
            pub fn parse_opt(s: Option<&str>) -> Result<Option<Self>, ManifestError> {
                s.map(Self::parse).transpose()
            }
        }

        impl FromStr for $name {
            type Err = ManifestError;
            fn from_str(s: &str) -> Result<Self, ManifestError> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// `SpiderMultusConfig.spec.cniType`.
    CniType, field = "spec.cniType" {
        /// macvlan.
        Macvlan = "macvlan",
        /// ipvlan.
        Ipvlan = "ipvlan",
        /// vlan.
        Vlan = "vlan",
        /// SR-IOV.
        Sriov = "sriov",
        /// Open vSwitch.
        Ovs = "ovs",
        /// InfiniBand SR-IOV.
        IbSriov = "ib-sriov",
        /// IP over InfiniBand.
        Ipoib = "ipoib",
        /// Raw CNI config from `customCNI` (the default).
        Custom = "custom",
    }
}

string_enum! {
    /// Coordinator `mode`.
    CoordinatorMode, field = "spec.mode" {
        /// Decide per NIC (the default).
        Auto = "auto",
        /// Underlay mode.
        Underlay = "underlay",
        /// Overlay mode.
        Overlay = "overlay",
        /// Disabled (the CRD spelling; upstream's plugin only knows `disable`).
        Disabled = "disabled",
    }
}

string_enum! {
    /// Coordinator `podCIDRType`.
    PodCidrType, field = "spec.podCIDRType" {
        /// Detect.
        Auto = "auto",
        /// From the cluster (kubeadm-config / kube-controller-manager).
        Cluster = "cluster",
        /// From Calico IP pools.
        Calico = "calico",
        /// From Cilium.
        Cilium = "cilium",
        /// No pod CIDR.
        None = "none",
    }
}

string_enum! {
    /// `SpiderMultusConfig.spec.vlan.vlanMode`.
    VlanMode, field = "spec.vlan.vlanMode" {
        /// `vlanID` is given (the default).
        Manual = "manual",
        /// VLAN learned from the IaaS provider; `vlanID` forbidden.
        Auto = "auto",
    }
}

string_enum! {
    /// `SpiderMultusConfig.spec.ibsriov.linkState`.
    LinkState, field = "spec.ibsriov.linkState" {
        /// Follow the PF.
        Auto = "auto",
        /// Force up (the default).
        Enable = "enable",
        /// Force down.
        Disable = "disable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_enum_parse_and_errors() {
        assert_eq!(CniType::parse("ib-sriov").unwrap(), CniType::IbSriov);
        assert_eq!(CniType::IbSriov.to_string(), "ib-sriov");
        let err = CniType::parse("bridge").unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.cniType: unsupported value \"bridge\": supported values: macvlan, ipvlan, vlan, \
             sriov, ovs, ib-sriov, ipoib, custom"
        );
        assert_eq!(CoordinatorMode::parse_opt(None).unwrap(), None);
        assert!(CoordinatorMode::parse("disable").is_err());
        assert_eq!(PodCidrType::SUPPORTED.len(), 5);
        assert_eq!("manual".parse::<VlanMode>().unwrap(), VlanMode::Manual);
        assert_eq!(LinkState::parse("enable").unwrap(), LinkState::Enable);
    }
}
