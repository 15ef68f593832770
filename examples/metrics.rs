//! Metrics through the [`Observer`] hook: counts of operations and plugin
//! runs by outcome (`ok` or the error kind), and duration histograms, per
//! network and plugin, printed in the Prometheus text exposition format.
//! A real runtime would serve [`Metrics::render`] on `/metrics` (or feed
//! the events to its own metrics library); libcni has no exporter.
//!
//! ```text
//! cargo run --example metrics -- CONF_DIR PLUGIN_DIR NETNS_PATH [CYCLES]
//! # e.g. with Debian's plugins, as root:
//! ip netns add demo
//! cargo run --example metrics -- /etc/cni/net.d /usr/lib/cni /var/run/netns/demo 5
//! ```
//!
//! It runs CYCLES (default 3) ADD, CHECK, DEL cycles of the default network
//! of CONF_DIR on container `metrics-demo`, then prints the metrics. The
//! result cache is `CNI_CACHE_DIR`, else `/var/lib/cni`.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libcni::observe::{OperationEvent, PluginRunEvent};
use libcni::{Cni, ConfigLoader, Observer, RuntimeConfig};

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// A histogram: counts per bucket (not cumulative), sum, count.
#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += s;
        self.count += 1;
    }
}

/// Label values, in the order of the metric's label names.
type Labels = Vec<String>;

#[derive(Default)]
struct State {
    ops: BTreeMap<Labels, u64>,
    op_durations: BTreeMap<Labels, Histogram>,
    runs: BTreeMap<Labels, u64>,
    run_durations: BTreeMap<Labels, Histogram>,
}

/// The observer: keeps the metrics in memory.
#[derive(Default)]
struct Metrics(Mutex<State>);

impl Observer for Metrics {
    fn operation(&self, ev: &OperationEvent<'_>) {
        let mut s = self.0.lock().unwrap();
        let key = vec![ev.network.to_owned(), ev.op.to_string()];
        let mut with_outcome = key.clone();
        with_outcome.push(ev.outcome.label().to_owned());
        *s.ops.entry(with_outcome).or_default() += 1;
        s.op_durations.entry(key).or_default().observe(ev.duration);
    }

    fn plugin_run(&self, ev: &PluginRunEvent<'_>) {
        let mut s = self.0.lock().unwrap();
        let key = vec![
            ev.network.to_owned(),
            ev.plugin_type.to_owned(),
            ev.op.to_string(),
        ];
        let mut with_outcome = key.clone();
        with_outcome.push(ev.outcome.label().to_owned());
        *s.runs.entry(with_outcome).or_default() += 1;
        s.run_durations.entry(key).or_default().observe(ev.duration);
    }
}

impl Metrics {
    /// The Prometheus text exposition format.
    fn render(&self) -> String {
        let s = self.0.lock().unwrap();
        let mut out = String::new();
        counter(
            &mut out,
            "cni_operations_total",
            "CNI operations by network, operation and outcome (ok or the error kind).",
            &["network", "operation", "outcome"],
            &s.ops,
        );
        histogram(
            &mut out,
            "cni_operation_duration_seconds",
            "Duration of CNI operations.",
            &["network", "operation"],
            &s.op_durations,
        );
        counter(
            &mut out,
            "cni_plugin_runs_total",
            "Plugin runs by network, plugin, command and outcome (ok or the error kind).",
            &["network", "plugin", "command", "outcome"],
            &s.runs,
        );
        histogram(
            &mut out,
            "cni_plugin_run_duration_seconds",
            "Duration of plugin runs.",
            &["network", "plugin", "command"],
            &s.run_durations,
        );
        out
    }
}

/// `{a="x",b="y"}`, with `extra` appended.
fn labels(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some((n, v)) = extra {
        pairs.push(format!("{n}=\"{v}\""));
    }
    format!("{{{}}}", pairs.join(","))
}

fn counter(out: &mut String, name: &str, help: &str, names: &[&str], m: &BTreeMap<Labels, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (l, v) in m {
        let _ = writeln!(out, "{name}{} {v}", labels(names, l, None));
    }
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    names: &[&str],
    m: &BTreeMap<Labels, Histogram>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (l, h) in m {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            let le = bound.to_string();
            let _ = writeln!(
                out,
                "{name}_bucket{} {cumulative}",
                labels(names, l, Some(("le", &le)))
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{} {}",
            labels(names, l, Some(("le", "+Inf"))),
            h.count
        );
        let _ = writeln!(out, "{name}_sum{} {}", labels(names, l, None), h.sum);
        let _ = writeln!(out, "{name}_count{} {}", labels(names, l, None), h.count);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (conf_dir, plugin_dir, netns, cycles) = match args.as_slice() {
        [c, p, n] => (c, p, n, 3),
        [c, p, n, k] => match k.parse() {
            Ok(k) => (c, p, n, k),
            Err(_) => {
                eprintln!("CYCLES must be a number");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: metrics CONF_DIR PLUGIN_DIR NETNS_PATH [CYCLES]");
            return ExitCode::from(2);
        }
    };
    let metrics = Arc::new(Metrics::default());
    let mut cni = Cni::new([plugin_dir]).with_observer(metrics.clone());
    // The result cache: /var/lib/cni unless CNI_CACHE_DIR says otherwise.
    if let Some(dir) = std::env::var_os("CNI_CACHE_DIR").filter(|d| !d.is_empty()) {
        cni = cni.with_cache_dir(dir);
    }
    let net = match ConfigLoader::new(conf_dir).default_network() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = RuntimeConfig::new("metrics-demo", netns.as_str(), "eth0");
    for _ in 0..cycles {
        // Failures are counted, not fatal: the metrics show them.
        if let Err(e) = cni.add_network_list(&net, &rt).await {
            eprintln!("ADD: {e}");
        }
        if let Err(e) = cni.check_network_list(&net, &rt).await {
            eprintln!("CHECK: {e}");
        }
        if let Err(e) = cni.del_network_list(&net, &rt).await {
            eprintln!("DEL: {e}");
        }
    }
    print!("{}", metrics.render());
    ExitCode::SUCCESS
}
