//! A 1.x result with its keys in byte order at every level, serialized in
//! one pass: the bytes `to_go_json_sorted` gives (libcni marshals 1.x
//! results as maps, so with sorted keys) without building a `Value` tree
//! first. The field order of each view below is the sorted order of the
//! JSON keys; `tests::sorted_views_match_the_value_round_trip` holds them to
//! it.

use std::net::IpAddr;

use serde::Serialize;

use super::types::{Dns, Interface, IpConfig, IpNet, Result100, Route};
use crate::version::SpecVersion;

/// `Result100`, keys sorted.
#[derive(Serialize)]
pub(super) struct SortedResult100<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: SpecVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<SortedDns<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    interfaces: Vec<SortedInterface<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    ips: Vec<SortedIpConfig<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    routes: Vec<SortedRoute<'a>>,
}

impl<'a> SortedResult100<'a> {
    pub(super) fn new(r: &'a Result100) -> SortedResult100<'a> {
        SortedResult100 {
            cni_version: r.cni_version,
            dns: (!r.dns.is_empty()).then(|| SortedDns::new(&r.dns)),
            interfaces: r.interfaces.iter().map(SortedInterface::new).collect(),
            ips: r.ips.iter().map(SortedIpConfig::new).collect(),
            routes: r.routes.iter().map(SortedRoute::new).collect(),
        }
    }
}

#[derive(Serialize)]
struct SortedDns<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    nameservers: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    options: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    search: &'a [String],
}

impl<'a> SortedDns<'a> {
    fn new(d: &'a Dns) -> SortedDns<'a> {
        SortedDns {
            domain: &d.domain,
            nameservers: &d.nameservers,
            options: &d.options,
            search: &d.search,
        }
    }
}

#[derive(Serialize)]
struct SortedInterface<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    mac: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<i64>,
    name: &'a str,
    #[serde(rename = "pciID", skip_serializing_if = "str::is_empty")]
    pci_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    sandbox: &'a str,
    #[serde(rename = "socketPath", skip_serializing_if = "str::is_empty")]
    socket_path: &'a str,
}

impl<'a> SortedInterface<'a> {
    fn new(i: &'a Interface) -> SortedInterface<'a> {
        SortedInterface {
            mac: &i.mac,
            mtu: i.mtu,
            name: &i.name,
            pci_id: &i.pci_id,
            sandbox: &i.sandbox,
            socket_path: &i.socket_path,
        }
    }
}

#[derive(Serialize)]
struct SortedIpConfig<'a> {
    address: &'a IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<i64>,
}

impl<'a> SortedIpConfig<'a> {
    fn new(c: &'a IpConfig) -> SortedIpConfig<'a> {
        SortedIpConfig {
            address: &c.address,
            gateway: c.gateway,
            interface: c.interface,
        }
    }
}

#[derive(Serialize)]
struct SortedRoute<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    advmss: Option<i64>,
    dst: &'a IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<i64>,
}

impl<'a> SortedRoute<'a> {
    fn new(r: &'a Route) -> SortedRoute<'a> {
        SortedRoute {
            advmss: r.advmss,
            dst: &r.dst,
            gw: r.gw,
            mtu: r.mtu,
            priority: r.priority,
            scope: r.scope,
            table: r.table,
        }
    }
}
