//! Typed builders for what runtimes send plugins: the Kubernetes `CNI_ARGS`
//! and the well-known capability arguments, serialised to the exact JSON
//! the reference plugins (and containerd's go-cni, CRI-O's ocicni) use.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use serde_json::{Map, Value};

/// The `CNI_ARGS` a Kubernetes runtime passes: `IgnoreUnknown=1` (plugins
/// reject unknown keys otherwise), `K8S_POD_NAMESPACE`, `K8S_POD_NAME`,
/// `K8S_POD_INFRA_CONTAINER_ID` and `K8S_POD_UID`, in that order, as
/// go-cni and ocicni send them.
///
/// ```
/// use libcni::pod::K8sArgs;
/// let args = K8sArgs::new("default", "web-0", "abc123").uid("9f1c");
/// let pairs = args.to_pairs();
/// assert_eq!(pairs[0], ("IgnoreUnknown".to_owned(), "1".to_owned()));
/// assert_eq!(pairs[4], ("K8S_POD_UID".to_owned(), "9f1c".to_owned()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sArgs {
    namespace: String,
    name: String,
    infra_container_id: String,
    uid: Option<String>,
    ignore_unknown: bool,
}

impl K8sArgs {
    /// The pod `namespace`/`name` whose sandbox (infra) container is
    /// `infra_container_id`.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        infra_container_id: impl Into<String>,
    ) -> K8sArgs {
        K8sArgs {
            namespace: namespace.into(),
            name: name.into(),
            infra_container_id: infra_container_id.into(),
            uid: None,
            ignore_unknown: true,
        }
    }

    /// Adds `K8S_POD_UID`. Default: not sent.
    pub fn uid(mut self, uid: impl Into<String>) -> K8sArgs {
        self.uid = Some(uid.into());
        self
    }

    /// Whether `IgnoreUnknown=1` leads the list. Default: yes (without it
    /// the reference plugins refuse the `K8S_*` keys they do not know).
    pub fn ignore_unknown(mut self, yes: bool) -> K8sArgs {
        self.ignore_unknown = yes;
        self
    }

    /// The `CNI_ARGS` pairs, for [`RuntimeConfig::with_args`](crate::RuntimeConfig::with_args).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut v = Vec::with_capacity(5);
        if self.ignore_unknown {
            v.push(("IgnoreUnknown".to_owned(), "1".to_owned()));
        }
        v.push(("K8S_POD_NAMESPACE".to_owned(), self.namespace.clone()));
        v.push(("K8S_POD_NAME".to_owned(), self.name.clone()));
        v.push((
            "K8S_POD_INFRA_CONTAINER_ID".to_owned(),
            self.infra_container_id.clone(),
        ));
        if let Some(uid) = &self.uid {
            v.push(("K8S_POD_UID".to_owned(), uid.clone()));
        }
        v
    }
}

/// The transport protocol of a [`PortMapping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Protocol {
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
    /// `sctp`.
    Sctp,
}

/// One entry of the `portMappings` capability (the `portmap` plugin):
/// `{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":""}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    host_port: u16,
    #[serde(rename = "containerPort")]
    container_port: u16,
    protocol: Protocol,
    #[serde(rename = "hostIP", serialize_with = "ip_or_empty")]
    host_ip: Option<IpAddr>,
}

fn ip_or_empty<S: serde::Serializer>(ip: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
    match ip {
        Some(ip) => s.collect_str(ip),
        None => s.serialize_str(""),
    }
}

impl PortMapping {
    /// `host_port` on every host address to `container_port`, over
    /// `protocol`.
    pub fn new(host_port: u16, container_port: u16, protocol: Protocol) -> PortMapping {
        PortMapping {
            host_port,
            container_port,
            protocol,
            host_ip: None,
        }
    }

    /// Binds only this host address. Default: all (`"hostIP":""`).
    pub fn host_ip(mut self, ip: IpAddr) -> PortMapping {
        self.host_ip = Some(ip);
        self
    }
}

/// The `bandwidth` capability (the `bandwidth` plugin), rates in bits per
/// second and bursts in bits, as go-cni sends it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bandwidth {
    /// Ingress rate, bits per second.
    #[serde(rename = "ingressRate")]
    pub ingress_rate: u64,
    /// Ingress burst, bits.
    #[serde(rename = "ingressBurst")]
    pub ingress_burst: u64,
    /// Egress rate, bits per second.
    #[serde(rename = "egressRate")]
    pub egress_rate: u64,
    /// Egress burst, bits.
    #[serde(rename = "egressBurst")]
    pub egress_burst: u64,
}

/// One range of the `ipRanges` capability (`host-local` IPAM):
/// `{"subnet":"10.0.0.0/24","rangeStart":..,"rangeEnd":..,"gateway":..}`,
/// the optional fields omitted when unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpRange {
    #[serde(serialize_with = "display")]
    subnet: IpNet,
    #[serde(
        rename = "rangeStart",
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_display"
    )]
    range_start: Option<IpAddr>,
    #[serde(
        rename = "rangeEnd",
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_display"
    )]
    range_end: Option<IpAddr>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_display"
    )]
    gateway: Option<IpAddr>,
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn opt_display<T: std::fmt::Display, S: serde::Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

impl IpRange {
    /// The whole of `subnet` (its network address is what is sent).
    pub fn new(subnet: IpNet) -> IpRange {
        IpRange {
            subnet: subnet.trunc(),
            range_start: None,
            range_end: None,
            gateway: None,
        }
    }

    /// Allocate from `start` to `end` (inclusive) only.
    pub fn range(mut self, start: IpAddr, end: IpAddr) -> IpRange {
        self.range_start = Some(start);
        self.range_end = Some(end);
        self
    }

    /// The gateway to report.
    pub fn gateway(mut self, gw: IpAddr) -> IpRange {
        self.gateway = Some(gw);
        self
    }
}

/// The `dns` capability: `{"servers":[..],"searches":[..],"options":[..]}`,
/// empty lists omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DnsConfig {
    /// Name servers.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "display_all")]
    pub servers: Vec<IpAddr>,
    /// Search domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    /// Resolver options (`ndots:5`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

fn display_all<T: std::fmt::Display, S: serde::Serializer>(
    v: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

/// The capability arguments a runtime sends, typed: each setter fills the
/// key the reference plugins read (`portMappings`, `bandwidth`, `ipRanges`,
/// `dns`, `mac`, `ips`, `cgroupPath`, `io.kubernetes.cri.pod-annotations`).
/// A plugin receives a key in `runtimeConfig` only if its `capabilities`
/// has it set to `true`.
///
/// ```
/// use libcni::pod::{CapabilityArgs, PortMapping, Protocol};
/// let caps = CapabilityArgs::new()
///     .port_mappings([PortMapping::new(8080, 80, Protocol::Tcp)])
///     .mac("0a:58:0a:f4:00:05");
/// let json = serde_json::Value::Object(caps.to_map());
/// assert_eq!(
///     json.to_string(),
///     r#"{"mac":"0a:58:0a:f4:00:05","portMappings":[{"containerPort":80,"hostIP":"","hostPort":8080,"protocol":"tcp"}]}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapabilityArgs {
    map: Map<String, Value>,
}

fn to_value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("capability values serialise")
}

impl CapabilityArgs {
    /// None.
    pub fn new() -> CapabilityArgs {
        CapabilityArgs::default()
    }

    /// `portMappings` (the `portmap` plugin).
    pub fn port_mappings(mut self, ports: impl IntoIterator<Item = PortMapping>) -> CapabilityArgs {
        let v: Vec<PortMapping> = ports.into_iter().collect();
        self.map.insert("portMappings".into(), to_value(v));
        self
    }

    /// `bandwidth` (the `bandwidth` plugin).
    pub fn bandwidth(mut self, bw: Bandwidth) -> CapabilityArgs {
        self.map.insert("bandwidth".into(), to_value(bw));
        self
    }

    /// `ipRanges` (`host-local`): a range set per address family or pool,
    /// each a list of ranges.
    pub fn ip_ranges(mut self, sets: impl IntoIterator<Item = Vec<IpRange>>) -> CapabilityArgs {
        let v: Vec<Vec<IpRange>> = sets.into_iter().collect();
        self.map.insert("ipRanges".into(), to_value(v));
        self
    }

    /// `dns`.
    pub fn dns(mut self, dns: DnsConfig) -> CapabilityArgs {
        self.map.insert("dns".into(), to_value(dns));
        self
    }

    /// `mac` (e.g. `tuning`, `bridge`): the interface's MAC address.
    pub fn mac(mut self, mac: impl Into<String>) -> CapabilityArgs {
        self.map.insert("mac".into(), Value::String(mac.into()));
        self
    }

    /// `ips` (`static`, `host-local`): addresses with prefix to assign.
    pub fn ips(mut self, ips: impl IntoIterator<Item = IpNet>) -> CapabilityArgs {
        let v: Vec<String> = ips.into_iter().map(|n| n.to_string()).collect();
        self.map.insert("ips".into(), to_value(v));
        self
    }

    /// `cgroupPath`: the pod's cgroup.
    pub fn cgroup_path(mut self, path: impl Into<String>) -> CapabilityArgs {
        self.map
            .insert("cgroupPath".into(), Value::String(path.into()));
        self
    }

    /// `io.kubernetes.cri.pod-annotations`: the pod's annotations.
    pub fn pod_annotations(
        mut self,
        annotations: impl IntoIterator<Item = (String, String)>,
    ) -> CapabilityArgs {
        let v: BTreeMap<String, String> = annotations.into_iter().collect();
        self.map
            .insert("io.kubernetes.cri.pod-annotations".into(), to_value(v));
        self
    }

    /// Any other capability, as raw JSON.
    pub fn other(mut self, key: impl Into<String>, value: Value) -> CapabilityArgs {
        self.map.insert(key.into(), value);
        self
    }

    /// The JSON object, for [`RuntimeConfig::with_capability_args`](crate::RuntimeConfig::with_capability_args).
    pub fn to_map(&self) -> Map<String, Value> {
        self.map.clone()
    }

    /// The JSON object, consuming the builder.
    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capability_json_is_what_the_plugins_read() {
        let caps = CapabilityArgs::new()
            .port_mappings([
                PortMapping::new(8080, 80, Protocol::Tcp),
                PortMapping::new(53, 53, Protocol::Udp).host_ip("127.0.0.1".parse().unwrap()),
            ])
            .bandwidth(Bandwidth {
                ingress_rate: 1_000_000,
                ingress_burst: 2_000_000,
                egress_rate: 3,
                egress_burst: 4,
            })
            .ip_ranges([
                vec![
                    IpRange::new("10.22.0.5/16".parse().unwrap())
                        .range("10.22.1.0".parse().unwrap(), "10.22.1.255".parse().unwrap())
                        .gateway("10.22.0.1".parse().unwrap()),
                ],
                vec![IpRange::new("fd00:1::/64".parse().unwrap())],
            ])
            .dns(DnsConfig {
                servers: vec!["10.96.0.10".parse().unwrap()],
                searches: vec!["svc.cluster.local".into()],
                options: vec![],
            })
            .ips(["10.22.1.7/16".parse().unwrap()])
            .cgroup_path("/kubepods/pod1")
            .pod_annotations([("a".to_owned(), "b".to_owned())]);
        assert_eq!(
            Value::Object(caps.into_map()),
            json!({
                "portMappings": [
                    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                    {"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}
                ],
                "bandwidth": {"ingressRate": 1000000, "ingressBurst": 2000000, "egressRate": 3, "egressBurst": 4},
                "ipRanges": [
                    [{"subnet": "10.22.0.0/16", "rangeStart": "10.22.1.0", "rangeEnd": "10.22.1.255", "gateway": "10.22.0.1"}],
                    [{"subnet": "fd00:1::/64"}]
                ],
                "dns": {"servers": ["10.96.0.10"], "searches": ["svc.cluster.local"]},
                "ips": ["10.22.1.7/16"],
                "cgroupPath": "/kubepods/pod1",
                "io.kubernetes.cri.pod-annotations": {"a": "b"}
            })
        );
    }

    #[test]
    fn k8s_args_in_go_cni_order() {
        let a = K8sArgs::new("ns", "p", "infra").ignore_unknown(false);
        let keys: Vec<String> = a.to_pairs().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "K8S_POD_NAMESPACE",
                "K8S_POD_NAME",
                "K8S_POD_INFRA_CONTAINER_ID"
            ]
        );
    }
}
