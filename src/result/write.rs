//! Results written as JSON bytes directly, without serde: the bytes
//! `to_go_json` gives for each type's `Serialize` (Go's struct field order,
//! what libcni marshals for 0.x results) and those `to_go_json_sorted`
//! gives (keys in byte order at every level, as libcni marshals 1.x results
//! and as the cache holds every result). `tests::writer_matches_serde`
//! holds both orders to the serde paths.

use std::io::Write as _;
use std::net::IpAddr;

use super::types::{
    Dns, Interface, IpConfig, IpConfig020, IpConfig040, IpNet, Result020, Result040, Result100,
    Route,
};
use crate::json::write_go_str;
use crate::version::SpecVersion;

/// The key order to write.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// The Rust (and Go) struct field order.
    Struct,
    /// Byte order of the keys.
    Sorted,
}

/// An object being written: commas and keys (plain ASCII, never escaped).
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn new(out: &'o mut Vec<u8>) -> Obj<'o> {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, k: &str, v: &str) {
        write_go_str(v, self.key(k));
    }

    /// A string with `omitempty`.
    fn nonempty(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            self.str(k, v);
        }
    }

    fn version(&mut self, v: SpecVersion) {
        self.str("cniVersion", v.as_str());
    }

    fn int(&mut self, k: &str, v: Option<i64>) {
        if let Some(n) = v {
            write_i64(n, self.key(k));
        }
    }

    fn net(&mut self, k: &str, v: &IpNet) {
        let out = self.key(k);
        out.push(b'"');
        write_ip(v.addr(), out);
        out.push(b'/');
        write_i64(i64::from(v.prefix()), out);
        out.push(b'"');
    }

    fn ip(&mut self, k: &str, v: Option<IpAddr>) {
        if let Some(ip) = v {
            let out = self.key(k);
            out.push(b'"');
            write_ip(ip, out);
            out.push(b'"');
        }
    }

    fn strings(&mut self, k: &str, v: &[String]) {
        self.array(k, v, |s, out| write_go_str(s, out));
    }

    /// An array with `omitempty`.
    fn array<T>(&mut self, k: &str, items: &[T], f: impl Fn(&T, &mut Vec<u8>)) {
        if items.is_empty() {
            return;
        }
        let out = self.key(k);
        out.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            f(item, out);
        }
        out.push(b']');
    }

    fn dns(&mut self, d: &Dns, order: Order) {
        write_dns(d, order, self.key("dns"));
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// Decimal, as serde_json (itoa) writes an integer.
fn write_i64(n: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut u = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// The address as its `Display` writes it (IPv4 by hand, the common case).
fn write_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_i64(i64::from(o), out);
            }
        }
        IpAddr::V6(v6) => write!(out, "{v6}").expect("writing to memory cannot fail"),
    }
}

fn write_dns(d: &Dns, order: Order, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    match order {
        Order::Struct => {
            o.strings("nameservers", &d.nameservers);
            o.nonempty("domain", &d.domain);
            o.strings("search", &d.search);
            o.strings("options", &d.options);
        }
        Order::Sorted => {
            o.nonempty("domain", &d.domain);
            o.strings("nameservers", &d.nameservers);
            o.strings("options", &d.options);
            o.strings("search", &d.search);
        }
    }
    o.end();
}

fn write_route(r: &Route, order: Order, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    match order {
        Order::Struct => {
            o.net("dst", &r.dst);
            o.ip("gw", r.gw);
            o.int("mtu", r.mtu);
            o.int("advmss", r.advmss);
            o.int("priority", r.priority);
            o.int("table", r.table);
            o.int("scope", r.scope);
        }
        Order::Sorted => {
            o.int("advmss", r.advmss);
            o.net("dst", &r.dst);
            o.ip("gw", r.gw);
            o.int("mtu", r.mtu);
            o.int("priority", r.priority);
            o.int("scope", r.scope);
            o.int("table", r.table);
        }
    }
    o.end();
}

fn write_interface(i: &Interface, order: Order, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    match order {
        Order::Struct => {
            o.str("name", &i.name);
            o.nonempty("mac", &i.mac);
            o.int("mtu", i.mtu);
            o.nonempty("sandbox", &i.sandbox);
            o.nonempty("socketPath", &i.socket_path);
            o.nonempty("pciID", &i.pci_id);
        }
        Order::Sorted => {
            o.nonempty("mac", &i.mac);
            o.int("mtu", i.mtu);
            o.str("name", &i.name);
            o.nonempty("pciID", &i.pci_id);
            o.nonempty("sandbox", &i.sandbox);
            o.nonempty("socketPath", &i.socket_path);
        }
    }
    o.end();
}

fn write_ipconfig020(c: &IpConfig020, order: Order, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    let routes =
        |o: &mut Obj<'_>| o.array("routes", &c.routes, |r, out| write_route(r, order, out));
    match order {
        Order::Struct => {
            o.net("ip", &c.ip);
            o.ip("gateway", c.gateway);
            routes(&mut o);
        }
        Order::Sorted => {
            o.ip("gateway", c.gateway);
            o.net("ip", &c.ip);
            routes(&mut o);
        }
    }
    o.end();
}

fn write_ipconfig040(c: &IpConfig040, order: Order, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    match order {
        Order::Struct => {
            o.str("version", &c.version);
            o.int("interface", c.interface);
            o.net("address", &c.address);
            o.ip("gateway", c.gateway);
        }
        Order::Sorted => {
            o.net("address", &c.address);
            o.ip("gateway", c.gateway);
            o.int("interface", c.interface);
            o.str("version", &c.version);
        }
    }
    o.end();
}

fn write_ipconfig(c: &IpConfig, order: Order, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    match order {
        Order::Struct => {
            o.int("interface", c.interface);
            o.net("address", &c.address);
            o.ip("gateway", c.gateway);
        }
        Order::Sorted => {
            o.net("address", &c.address);
            o.ip("gateway", c.gateway);
            o.int("interface", c.interface);
        }
    }
    o.end();
}

pub(super) fn write_result020(r: &Result020, order: Order, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    o.version(r.cni_version);
    if order == Order::Sorted {
        o.dns(&r.dns, order);
    }
    for (k, c) in [("ip4", &r.ip4), ("ip6", &r.ip6)] {
        if let Some(c) = c {
            write_ipconfig020(c, order, o.key(k));
        }
    }
    if order == Order::Struct {
        o.dns(&r.dns, order);
    }
    o.end();
}

pub(super) fn write_result040(r: &Result040, order: Order, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    o.version(r.cni_version);
    if order == Order::Sorted {
        o.dns(&r.dns, order);
    }
    o.array("interfaces", &r.interfaces, |i, out| {
        write_interface(i, order, out);
    });
    o.array("ips", &r.ips, |c, out| write_ipconfig040(c, order, out));
    o.array("routes", &r.routes, |rt, out| write_route(rt, order, out));
    if order == Order::Struct {
        o.dns(&r.dns, order);
    }
    o.end();
}

/// A 1.x result; `dns` is omitted when empty.
pub(super) fn write_result100(r: &Result100, order: Order, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    o.version(r.cni_version);
    let dns = !r.dns.is_empty();
    if dns && order == Order::Sorted {
        o.dns(&r.dns, order);
    }
    o.array("interfaces", &r.interfaces, |i, out| {
        write_interface(i, order, out);
    });
    o.array("ips", &r.ips, |c, out| write_ipconfig(c, order, out));
    o.array("routes", &r.routes, |rt, out| write_route(rt, order, out));
    if dns && order == Order::Struct {
        o.dns(&r.dns, order);
    }
    o.end();
}
