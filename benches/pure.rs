//! Micro-benchmarks of the pure parts of an operation: parsing a conflist,
//! building a plan and its plugins' stdin, and parsing, converting and
//! printing results. No process is spawned and no file is written, so a
//! regression here shows in numbers without the noise of the machine's
//! exec and fsync costs (those are measured by `examples/libcni-bench.rs`;
//! see BENCHMARKS.md).
//!
//! `cargo bench --bench pure`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use libcni::exec::{ExecOutput, ExecRequest};
use libcni::{Cni, CniResult, Error, NetworkConfigList, Op, PluginExec, RuntimeConfig};

/// The conflist of `shared/bench/compare.sh`'s load test (one of 1000).
const CONFLIST: &str = r#"{"cniVersion":"1.0.0","name":"net0001","plugins":[{"type":"bridge","bridge":"br0001","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/16"}]]}},{"type":"portmap","capabilities":{"portMappings":true}},{"type":"tuning","sysctl":{"net.core.somaxconn":"500"}}]}"#;

/// A bridge plugin's typical 1.0.0 result.
const RESULT: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"6a:7b:8c:9d:ae:bf"},{"name":"veth1234abcd","mac":"5e:3c:1a:2b:4d:6f"},{"name":"eth0","mac":"ca:fe:00:00:00:01","sandbox":"/var/run/netns/c1"}],"ips":[{"interface":2,"address":"10.1.0.5/16","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}],"dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]}}"#;

/// Finds every plugin at a fixed path and never runs one: plans only.
#[derive(Clone)]
struct PlanOnly;

impl PluginExec for PlanOnly {
    fn find(&self, plugin_type: &str, _dirs: &[PathBuf]) -> Result<PathBuf, Error> {
        Ok(Path::new("/opt/cni/bin").join(plugin_type))
    }

    async fn exec(&self, _req: ExecRequest<'_>) -> Result<ExecOutput, Error> {
        unreachable!("the benchmarks only build plans")
    }
}

fn config(c: &mut Criterion) {
    c.bench_function("config/parse_conflist", |b| {
        b.iter(|| NetworkConfigList::from_bytes(black_box(CONFLIST.as_bytes())).unwrap())
    });
}

fn plan(c: &mut Criterion) {
    let list = NetworkConfigList::from_bytes(CONFLIST.as_bytes()).unwrap();
    let cache = std::env::temp_dir().join(format!("libcni-bench-none-{}", std::process::id()));
    let cni = Cni::new(["/opt/cni/bin"])
        .with_exec(PlanOnly)
        .with_cache_dir(cache);
    let rt = RuntimeConfig::new("c1", "/var/run/netns/c1", "eth0").with_capability_args(
        serde_json::json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
            .as_object()
            .unwrap()
            .clone(),
    );
    c.bench_function("plan/add_plan_and_stdin", |b| {
        b.iter(|| {
            let plan = cni.plan(Op::Add, black_box(&list), &rt).unwrap();
            plan.invocations()
                .iter()
                .map(|inv| inv.stdin().len())
                .sum::<usize>()
        })
    });
}

fn result(c: &mut Criterion) {
    c.bench_function("result/parse_plugin_output", |b| {
        b.iter(|| CniResult::from_plugin_output(black_box(RESULT.as_bytes()), "1.0.0").unwrap())
    });
    let r = CniResult::from_json(RESULT.as_bytes()).unwrap();
    c.bench_function("result/to_json_1.0.0", |b| {
        b.iter(|| black_box(&r).to_json())
    });
    c.bench_function("result/convert_1.0.0_to_0.4.0", |b| {
        b.iter(|| black_box(&r).convert("0.4.0").unwrap())
    });
    let old = r.convert("0.4.0").unwrap().to_json();
    c.bench_function("result/parse_0.4.0_and_convert_to_1.1.0", |b| {
        b.iter(|| {
            CniResult::from_json(black_box(&old))
                .unwrap()
                .convert("1.1.0")
                .unwrap()
        })
    });
}

criterion_group!(benches, config, plan, result);
criterion_main!(benches);
