//! netkit's attribute values, with strict two-way conversions: every value
//! converts back to the number it came from, and unknown numbers are
//! errors, never a silent default.

use nk_sys::uapi;

macro_rules! uapi_enum {
    ($(#[$m:meta])* $name:ident : $raw:ty { $($(#[$vm:meta])* $var:ident = $val:expr, $txt:literal;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vm])* $var,)* }

        /// Serialized as iproute2's JSON spells it (`l3`, `forward`, ...).
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl $name {
            /// Every value, for round-trip tests and help text.
            pub const ALL: &'static [$name] = &[$($name::$var,)*];

            /// The uapi number.
            pub fn to_raw(self) -> $raw {
                match self { $($name::$var => $val as $raw,)* }
            }

            /// The name iproute2 prints.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $txt,)* }
            }
        }

        impl TryFrom<$raw> for $name {
            type Error = $raw;
            fn try_from(v: $raw) -> Result<Self, $raw> {
                $(if v == $val as $raw { return Ok($name::$var); })*
                Err(v)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $(if s == $txt { return Ok($name::$var); })*
                Err(format!("unknown {}: {s:?} (expected one of: {})", stringify!($name),
                    [$($txt,)*].join(", ")))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

uapi_enum! {
    /// `IFLA_NETKIT_MODE`.
    NetkitMode: u32 {
        /// Ethernet device with a MAC address and ARP.
        L2 = uapi::NETKIT_L2, "l2";
        /// IP-only device, no L2 header, no ARP (all-zero MAC).
        L3 = uapi::NETKIT_L3, "l3";
    }
}

uapi_enum! {
    /// `IFLA_NETKIT_POLICY` / `IFLA_NETKIT_PEER_POLICY`: the default verdict
    /// when no BPF program is attached. Only pass and drop are policies;
    /// `NETKIT_NEXT` and `NETKIT_REDIRECT` are program return codes.
    NetkitPolicy: u32 {
        /// Forward the packet.
        Pass = uapi::NETKIT_PASS, "forward";
        /// Drop the packet ("blackhole" in iproute2).
        Drop = uapi::NETKIT_DROP, "blackhole";
    }
}

uapi_enum! {
    /// `IFLA_NETKIT_SCRUB` / `IFLA_NETKIT_PEER_SCRUB`.
    NetkitScrub: u32 {
        /// Leave skb->{mark,priority} to the BPF program.
        None = uapi::NETKIT_SCRUB_NONE, "none";
        /// Zero skb->{mark,priority} when crossing netns.
        Default = uapi::NETKIT_SCRUB_DEFAULT, "default";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        for m in NetkitMode::ALL {
            assert_eq!(NetkitMode::try_from(m.to_raw()), Ok(*m));
            assert_eq!(m.as_str().parse::<NetkitMode>(), Ok(*m));
        }
        for p in NetkitPolicy::ALL {
            assert_eq!(NetkitPolicy::try_from(p.to_raw()), Ok(*p));
            assert_eq!(p.as_str().parse::<NetkitPolicy>(), Ok(*p));
        }
        for s in NetkitScrub::ALL {
            assert_eq!(NetkitScrub::try_from(s.to_raw()), Ok(*s));
        }
    }

    #[test]
    fn program_verdicts_are_not_policies() {
        // npr's NetkitPolicy::from(7) became "pass" and encoded back as 0.
        assert_eq!(NetkitPolicy::try_from(uapi::NETKIT_REDIRECT as u32), Err(7));
        assert_eq!(
            NetkitPolicy::try_from(uapi::NETKIT_NEXT as u32),
            Err(u32::MAX)
        );
        assert_eq!(NetkitMode::try_from(2), Err(2));
        assert!("l4"
            .parse::<NetkitMode>()
            .unwrap_err()
            .contains("expected one of: l2, l3"));
    }
}
