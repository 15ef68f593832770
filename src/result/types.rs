//! The result shapes of each spec version and their building blocks.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::version::SpecVersion;

/// An IP address with a prefix length, as CNI results write it
/// (`"10.1.2.3/24"`). Parsing and printing follow Go's `net.ParseCIDR` and
/// `IPNet.String` (an IPv4-mapped IPv6 address is an IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Builds an `IpNet`, or `None` if the prefix is too long for the family.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let addr = canonical_ip(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// The address (not masked).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

/// Go's `net.ParseIP`, with IPv4-mapped IPv6 addresses made IPv4.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    IpAddr::from_str(s).ok().map(canonical_ip)
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A string that is not an address with a prefix length (Go's
/// `net.ParseCIDR` error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {input}")]
pub struct CidrParseError {
    input: String,
}

impl CidrParseError {
    /// The string that did not parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl From<IpNet> for ipnet::IpNet {
    fn from(n: IpNet) -> ipnet::IpNet {
        ipnet::IpNet::new(n.addr, n.prefix).expect("the prefix fits the family")
    }
}

impl From<ipnet::IpNet> for IpNet {
    /// An IPv4-mapped IPv6 address becomes IPv4, as Go prints it.
    fn from(n: ipnet::IpNet) -> IpNet {
        match n {
            ipnet::IpNet::V6(v6) if v6.addr().to_ipv4_mapped().is_some() => IpNet {
                addr: canonical_ip(IpAddr::V6(v6.addr())),
                prefix: v6.prefix_len().saturating_sub(96),
            },
            other => IpNet {
                addr: other.addr(),
                prefix: other.prefix_len(),
            },
        }
    }
}

impl FromStr for IpNet {
    type Err = CidrParseError;

    /// Go's `net.ParseCIDR`: `addr/prefix`, the prefix decimal (leading zeros
    /// allowed) and within the family's length.
    fn from_str(s: &str) -> Result<IpNet, CidrParseError> {
        let bad = || CidrParseError {
            input: s.to_owned(),
        };
        let (ip, mask) = s.split_once('/').ok_or_else(bad)?;
        let addr = IpAddr::from_str(ip).map_err(|_| bad())?;
        if mask.is_empty() || mask.len() > 8 || !mask.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u32 = mask.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if n > max {
            return Err(bad());
        }
        match addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                // Go prints the IPv4 form with the last 32 bits of the mask.
                let prefix = n.saturating_sub(96) as u8;
                Ok(IpNet {
                    addr: canonical_ip(addr),
                    prefix,
                })
            }
            _ => Ok(IpNet {
                addr,
                prefix: n as u8,
            }),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// DNS settings of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dns {
    /// Name servers, in priority order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain (empty: unset).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Search domains, in priority order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A route. `mtu`, `advmss`, `priority`, `table` and `scope` are spec 1.1
/// additions (libcni 1.3 keeps them in every version's routes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Gateway, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// MTU (`None`: unset; 0 is unset too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// Advertised MSS (`None`: unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advmss: Option<i64>,
    /// Priority (`None`: unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Routing table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<i64>,
    /// Route scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<i64>,
}

impl Route {
    /// A route to `dst` with no gateway and nothing else set.
    pub fn new(dst: IpNet) -> Route {
        Route {
            dst,
            gw: None,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }

    fn dst_and_gw(&self) -> Route {
        Route {
            gw: self.gw,
            ..Route::new(self.dst)
        }
    }
}

/// An interface of a 0.3.0+ result. `mtu`, `socket_path` and `pci_id` exist
/// only in 1.x results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address (empty: unset).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// MTU (1.x only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// The sandbox (netns path) the interface is in; empty for host interfaces.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    /// vhost-user socket path (1.x only).
    #[serde(rename = "socketPath", skip_serializing_if = "String::is_empty")]
    pub socket_path: String,
    /// PCI ID of a device (1.x only).
    #[serde(rename = "pciID", skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

impl Interface {
    fn without_v1_fields(&self) -> Interface {
        Interface {
            name: self.name.clone(),
            mac: self.mac.clone(),
            sandbox: self.sandbox.clone(),
            ..Interface::default()
        }
    }
}

/// An IP configuration of a 0.1.0/0.2.0 result (`ip4`/`ip6`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpConfig020 {
    /// Address and prefix.
    pub ip: IpNet,
    /// Gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Routes of this family.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

/// An IP configuration of a 0.3.x/0.4.0 result (with `version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpConfig040 {
    /// `"4"` or `"6"` (kept as written).
    pub version: String,
    /// Index into `interfaces`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<i64>,
    /// Address and prefix.
    pub address: IpNet,
    /// Gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// An IP configuration of a 1.x result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpConfig {
    /// Index into `interfaces`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<i64>,
    /// Address and prefix.
    pub address: IpNet,
    /// Gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// A 0.1.0 or 0.2.0 result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Result020 {
    /// `0.1.0` or `0.2.0`.
    #[serde(rename = "cniVersion")]
    pub cni_version: SpecVersion,
    /// The IPv4 configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip4: Option<IpConfig020>,
    /// The IPv6 configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip6: Option<IpConfig020>,
    /// DNS settings.
    pub dns: Dns,
}

/// A 0.3.0, 0.3.1 or 0.4.0 result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Result040 {
    /// `0.3.0`, `0.3.1` or `0.4.0`.
    #[serde(rename = "cniVersion")]
    pub cni_version: SpecVersion,
    /// Interfaces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// IP configurations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig040>,
    /// Routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings.
    pub dns: Dns,
}

/// A 1.0.0 or 1.1.0 result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Result100 {
    /// `1.0.0` or `1.1.0`.
    #[serde(rename = "cniVersion")]
    pub cni_version: SpecVersion,
    /// Interfaces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// IP configurations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings (omitted when empty).
    #[serde(skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl Serialize for SpecVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

// ---- conversions (libcni's types/020, 040 and 100 converters) ----

impl Result020 {
    /// 0.1/0.2 -> 0.3.x/0.4.0: `ip4` then `ip6` become `ips`; routes are
    /// ip4's then ip6's; no interfaces.
    pub(crate) fn to_040(&self, to: SpecVersion) -> Result040 {
        let mut ips = Vec::new();
        let mut routes = Vec::new();
        for (ipc, v) in [(&self.ip4, "4"), (&self.ip6, "6")] {
            if let Some(ipc) = ipc {
                ips.push(IpConfig040 {
                    version: v.to_owned(),
                    interface: None,
                    address: ipc.ip,
                    gateway: ipc.gateway,
                });
                routes.extend(ipc.routes.iter().cloned());
            }
        }
        Result040 {
            cni_version: to,
            interfaces: Vec::new(),
            ips,
            routes,
            dns: self.dns.clone(),
        }
    }
}

impl Result040 {
    /// 0.3+/1.x -> 0.1/0.2: the first IP with version "4" and the first with
    /// "6"; routes go by destination family to families that have an IP, with
    /// only `dst` and `gw`; interfaces are dropped.
    pub(crate) fn to_020(&self, to: SpecVersion) -> Result<Result020, &'static str> {
        let mut ip4: Option<IpConfig020> = None;
        let mut ip6: Option<IpConfig020> = None;
        for ip in &self.ips {
            let slot = match ip.version.as_str() {
                "4" if ip4.is_none() => &mut ip4,
                "6" if ip6.is_none() => &mut ip6,
                _ => continue,
            };
            *slot = Some(IpConfig020 {
                ip: ip.address,
                gateway: ip.gateway,
                routes: Vec::new(),
            });
            if ip4.is_some() && ip6.is_some() {
                break;
            }
        }
        for r in &self.routes {
            let slot = if r.dst.addr().is_ipv4() {
                &mut ip4
            } else {
                &mut ip6
            };
            if let Some(ipc) = slot {
                ipc.routes.push(r.dst_and_gw());
            }
        }
        if ip4.is_none() && ip6.is_none() {
            return Err("no valid IP addresses");
        }
        Ok(Result020 {
            cni_version: to,
            ip4,
            ip6,
            dns: self.dns.clone(),
        })
    }

    /// 0.3.x/0.4.0 -> 1.x: `version` is dropped.
    pub(crate) fn to_100(&self, to: SpecVersion) -> Result100 {
        Result100 {
            cni_version: to,
            interfaces: self.interfaces.clone(),
            ips: self
                .ips
                .iter()
                .map(|ip| IpConfig {
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: self.routes.clone(),
            dns: self.dns.clone(),
        }
    }
}

impl Result100 {
    /// 1.x -> 0.3.x/0.4.0: `version` is "4" for IPv4 addresses, else "6";
    /// interfaces lose their 1.x fields; routes keep theirs.
    pub(crate) fn to_040(&self, to: SpecVersion) -> Result040 {
        Result040 {
            cni_version: to,
            interfaces: self
                .interfaces
                .iter()
                .map(Interface::without_v1_fields)
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| IpConfig040 {
                    version: if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    }
                    .to_owned(),
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: self.routes.clone(),
            dns: self.dns.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipnet_converts_both_ways() {
        for s in ["10.1.2.3/24", "fd00::1/64", "0.0.0.0/0"] {
            let ours: IpNet = s.parse().unwrap();
            let theirs = ipnet::IpNet::from(ours);
            assert_eq!(theirs.to_string(), s);
            assert_eq!(IpNet::from(theirs), ours);
        }
        let mapped: ipnet::IpNet = "::ffff:10.0.0.1/120".parse().unwrap();
        assert_eq!(IpNet::from(mapped).to_string(), "10.0.0.1/24");
    }

    #[test]
    fn ipnet_parses_and_prints_like_go() {
        let cases = [
            ("10.1.2.3/24", "10.1.2.3/24"),
            ("10.1.2.3/024", "10.1.2.3/24"),
            ("2001:DB8:0:0:0:0:0:1/64", "2001:db8::1/64"),
            ("::ffff:10.0.0.1/120", "10.0.0.1/24"),
            ("::ffff:10.0.0.1/64", "10.0.0.1/0"),
            ("::1.2.3.4/128", "::102:304/128"),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<IpNet>().unwrap().to_string(), want, "{input}");
        }
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0.1/",
            "10.0.0.1/+1",
            "010.0.0.1/8",
            "fe80::1%eth0/64",
            "",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
        assert_eq!(
            "10.0.0.1".parse::<IpNet>().unwrap_err().to_string(),
            "invalid CIDR address: 10.0.0.1"
        );
    }
}
