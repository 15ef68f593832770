//! The project side of `shared/bench/compare.sh`: drives this library with
//! the same flags and output lines as the reference `libcni-bench`.
//!
//! ```text
//! libcni-bench --conflist F --cnipath P --cachedir D --netns NS --n N --parallel K
//! libcni-bench --load DIR --n N
//! ```
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libcni::{Cni, NetworkConfigList, RuntimeConfig};

fn pct(d: &[Duration], p: f64) -> u128 {
    if d.is_empty() {
        return 0;
    }
    let mut s = d.to_vec();
    s.sort();
    s[((s.len() - 1) as f64 * p) as usize].as_micros()
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--n").map_or(100, |v| v.parse().expect("--n"));
    if let Some(dir) = arg(&args, "--load") {
        let loader = libcni::ConfigLoader::new(&dir);
        let start = Instant::now();
        let mut count = 0;
        for _ in 0..n {
            let all = loader.load_all().expect("load");
            assert!(all.skipped().is_empty(), "{:?}", all.skipped());
            count += all.networks().len();
        }
        let el = start.elapsed().as_micros() as f64;
        println!(
            "load files={} per_pass_us={:.1} per_file_us={:.2}",
            count / n,
            el / n as f64,
            el / count as f64
        );
        return;
    }
    let Some(conflist) = arg(&args, "--conflist") else {
        eprintln!(
            "usage: libcni-bench --conflist F --cnipath P --cachedir D --netns NS --n N --parallel K | --load DIR --n N"
        );
        std::process::exit(2);
    };
    let par: usize = arg(&args, "--parallel").map_or(1, |v| v.parse().expect("--parallel"));
    let netns = arg(&args, "--netns").unwrap_or_default();
    let cachedir = arg(&args, "--cachedir").unwrap_or_else(|| "/tmp/libcni-rs-bench-cache".into());
    let dirs: Vec<String> = arg(&args, "--cnipath")
        .unwrap_or_else(|| "/usr/lib/cni".into())
        .split(':')
        .map(str::to_owned)
        .collect();
    let list = Arc::new(NetworkConfigList::from_file(&conflist).expect("conflist"));
    let cni = Arc::new(Cni::new(dirs).with_cache_dir(cachedir));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(par.clamp(1, 8))
        .enable_all()
        .build()
        .expect("runtime");
    let times = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let start = Instant::now();
    rt.block_on(async {
        let mut workers = Vec::new();
        for w in 0..par {
            let (cni, list, times, netns) =
                (cni.clone(), list.clone(), times.clone(), netns.clone());
            workers.push(tokio::spawn(async move {
                for i in 0..n {
                    let ns = netns.replace("%d", &w.to_string());
                    let rt = RuntimeConfig::new(format!("bench-{w}-{i}"), ns, "eth0");
                    let t0 = Instant::now();
                    cni.add_network_list(&list, &rt).await.expect("ADD");
                    let t1 = Instant::now();
                    cni.del_network_list(&list, &rt).await.expect("DEL");
                    let t2 = Instant::now();
                    let mut t = times.lock().unwrap();
                    t.0.push(t1 - t0);
                    t.1.push(t2 - t1);
                }
            }));
        }
        for w in workers {
            w.await.expect("worker");
        }
    });
    let el = start.elapsed();
    let t = times.lock().unwrap();
    println!(
        "libcni-rs ops={} add_p50_us={} add_p99_us={} del_p50_us={} del_p99_us={} cycles_per_s={:.1}",
        t.0.len(),
        pct(&t.0, 0.5),
        pct(&t.0, 0.99),
        pct(&t.1, 0.5),
        pct(&t.1, 0.99),
        t.0.len() as f64 / el.as_secs_f64()
    );
}
