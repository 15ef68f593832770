//! The project side of `shared/bench/compare.sh`: drives this library with
//! the same flags and output lines as the reference `libcni-bench`.
//!
//! ```text
//! libcni-bench --conflist F --cnipath P --cachedir D --netns NS --n N --parallel K
//! libcni-bench --load DIR --n N
//! libcni-bench --scale --cnipath P
//! libcni-bench --chain-floor [--block-on] --conflist F --cnipath P --cachedir D --netns NS --n N
//! ```
//!
//! `--chain-floor` measures what `compare.sh`'s limit stands for, in the
//! pattern of a real ADD: each iteration runs the "floor chain" (the list's
//! plugins spawned one after the other exactly as `floor.c` spawns one,
//! then one write exactly as `durable.c` makes it) and one ADD (plus an
//! untimed DEL), alternating which goes first. It prints both p50s and the
//! median of the per-iteration ratios, which the machine's drift affects far
//! less than ratios of runs made seconds apart. ADD runs on a worker thread
//! of a one-worker runtime; with `--block-on`, `block_on` polls it on the
//! main thread instead (what a caller that bridges sync code that way gets).
//!
//! `--scale` prints how costs grow (they should stay flat per item): loading
//! 1k, 2k, 5k and 10k conflists, and listing and garbage-collecting the
//! cached attachments of 64 networks with 16, 32 and 64 attachments each
//! (P must hold the `noop` plugin of `shared/bench`, run once per size to
//! produce a real cache entry that the others are copied from).
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

/// The options of the ADD+DEL modes: `--netns`, `--cachedir` and the
/// plugin directories of `--cnipath` (colon-separated), with their defaults.
fn run_options(args: &[String]) -> (String, String, Vec<std::path::PathBuf>) {
    let netns = arg(args, "--netns").unwrap_or_default();
    let cachedir = arg(args, "--cachedir").unwrap_or_else(|| "/tmp/libcni-rs-bench-cache".into());
    let dirs = arg(args, "--cnipath")
        .unwrap_or_else(|| "/usr/lib/cni".into())
        .split(':')
        .map(Into::into)
        .collect();
    (netns, cachedir, dirs)
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
    if args.iter().any(|a| a == "--chain-floor") {
        chain_floor(&args, n);
        return;
    }
    if args.iter().any(|a| a == "--scale") {
        let dirs = arg(&args, "--cnipath").unwrap_or_else(|| "/usr/lib/cni".into());
        scale(&dirs);
        return;
    }
    let Some(conflist) = arg(&args, "--conflist") else {
        eprintln!(
            "usage: libcni-bench --conflist F --cnipath P --cachedir D --netns NS --n N --parallel K | --load DIR --n N"
        );
        std::process::exit(2);
    };
    let par: usize = arg(&args, "--parallel").map_or(1, |v| v.parse().expect("--parallel"));
    let (netns, cachedir, dirs) = run_options(&args);
    let list = Arc::new(NetworkConfigList::from_file(&conflist).expect("conflist"));
    let cni = Arc::new(Cni::new(dirs).with_cache_dir(cachedir));
    // K workers are K concurrent loops (tasks), as the Go bench's K
    // goroutines run on GOMAXPROCS threads: tokio's default of one worker
    // thread per CPU, not one thread per loop.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(par.clamp(1, cpus))
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
    // On stderr (compare.sh reads the last stdout line): this process's own
    // CPU per ADD+DEL cycle, and that of its reaped children (the plugins).
    let cycles = t.0.len().max(1) as f64;
    let (own, kids) = (cpu_us(libc::RUSAGE_SELF), cpu_us(libc::RUSAGE_CHILDREN));
    eprintln!(
        "cpu_per_cycle_us self_user={:.0} self_sys={:.0} plugins_user={:.0} plugins_sys={:.0} self_minflt_per_cycle={:.1}",
        own.0 / cycles,
        own.1 / cycles,
        kids.0 / cycles,
        kids.1 / cycles,
        own.2 / cycles
    );
}

/// User and system CPU time of `who`, in microseconds, and its minor page
/// faults.
fn cpu_us(who: libc::c_int) -> (f64, f64, f64) {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    (us(ru.ru_utime), us(ru.ru_stime), ru.ru_minflt as f64)
}

/// A fresh scratch directory under the system's temp dir.
fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("libcni-scale-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn scale(cnipath: &str) {
    // Loading: the conflists of compare.sh, 1k to 10k of them.
    for files in [1000usize, 2000, 5000, 10000] {
        let dir = scratch("load");
        for i in 0..files {
            let text = format!(
                r#"{{"cniVersion":"1.0.0","name":"net{i:05}","plugins":[{{"type":"bridge","bridge":"br{i}","ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.{}.0.0/16"}}]]}}}},{{"type":"portmap","capabilities":{{"portMappings":true}}}},{{"type":"tuning","sysctl":{{"net.core.somaxconn":"500"}}}}]}}"#,
                i % 250
            );
            std::fs::write(dir.join(format!("{i:05}-net.conflist")), text).expect("write");
        }
        let loader = libcni::ConfigLoader::new(&dir);
        let passes = 3;
        let start = Instant::now();
        for _ in 0..passes {
            let all = loader.load_all().expect("load");
            assert_eq!(all.networks().len(), files);
        }
        let el = start.elapsed().as_secs_f64() * 1e6 / passes as f64;
        println!(
            "scale load files={files} per_pass_ms={:.1} per_file_us={:.2}",
            el / 1e3,
            el / files as f64
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    // The cache: 64 networks, 16 to 64 attachments each.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let networks = 64;
    for per_net in [16usize, 32, 64] {
        let root = scratch("cache");
        let cache = root.join("cache");
        let cni = Cni::new([cnipath]).with_cache_dir(&cache);
        let lists: Vec<NetworkConfigList> = (0..networks)
            .map(|i| {
                NetworkConfigList::from_bytes(
                    format!(r#"{{"cniVersion":"1.0.0","name":"scale{i}","plugins":[{{"type":"noop"}}]}}"#)
                        .as_bytes(),
                )
                .expect("conflist")
            })
            .collect();
        // One real ADD gives an entry in the real format; the others are
        // copies with their network and container renamed.
        let tmpl = RuntimeConfig::new("tmpl", "/var/run/netns/none", "eth0");
        rt.block_on(cni.add_network_list(&lists[0], &tmpl))
            .expect("template ADD");
        let results = cache.join("results");
        let tmpl_file = results.join("scale0-tmpl-eth0");
        let template = std::fs::read_to_string(&tmpl_file).expect("template entry");
        std::fs::remove_file(&tmpl_file).expect("remove template");
        let mut valid: Vec<Vec<libcni::AttachmentId>> = Vec::new();
        for i in 0..networks {
            let mut ids = Vec::new();
            for j in 0..per_net {
                let cid = format!("c{j:04}");
                let text = template
                    .replace("\"scale0\"", &format!("\"scale{i}\""))
                    .replace("\"tmpl\"", &format!("\"{cid}\""));
                std::fs::write(results.join(format!("scale{i}-{cid}-eth0")), text).expect("entry");
                ids.push(libcni::AttachmentId::new(cid, "eth0"));
            }
            valid.push(ids);
        }
        let total = networks * per_net;
        let start = Instant::now();
        let atts = cni.cached_attachments(None).expect("list");
        let list_us = start.elapsed().as_secs_f64() * 1e6;
        assert_eq!(atts.len(), total);
        // GC of every network, keeping all its attachments: each GC reads
        // the whole cache (as libcni does) and matches it against the set.
        let start = Instant::now();
        for (list, keep) in lists.iter().zip(&valid) {
            let report = rt
                .block_on(cni.gc_network_list(list, Some(keep)))
                .expect("GC");
            assert!(report.deleted.is_empty());
        }
        let gc_us = start.elapsed().as_secs_f64() * 1e6;
        println!(
            "scale cache networks={networks} per_network={per_net} attachments={total} list_ms={:.1} list_per_attachment_us={:.2} gc_all_networks_ms={:.1} gc_per_network_per_attachment_us={:.2}",
            list_us / 1e3,
            list_us / total as f64,
            gc_us / 1e3,
            gc_us / networks as f64 / total as f64
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// `--chain-floor`: the floor chain against ADD, interleaved (see the crate
/// docs above).
fn chain_floor(args: &[String], n: usize) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let conflist = arg(args, "--conflist").expect("--conflist");
    let (netns, cachedir, dirs) = run_options(args);
    let list = NetworkConfigList::from_file(&conflist).expect("conflist");
    let conf = std::fs::read(&conflist).expect("conflist");
    // As floor.c: the process environment with five CNI variables set,
    // the conflist's bytes on stdin, the plugins in list order.
    let plugins: Vec<CString> = list
        .plugins()
        .iter()
        .map(|p| {
            let path = libcni::exec::find_plugin(p.plugin_type(), &dirs).expect("plugin");
            CString::new(path.as_os_str().as_bytes()).expect("path")
        })
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !k.as_bytes().starts_with(b"CNI_"))
        .map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).expect("env"))
        .collect();
    for (k, v) in [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "floor"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/tmp"),
    ] {
        env.push(CString::new(format!("{k}={v}")).expect("env"));
    }
    // Made once, as floor.c passes `environ` to every spawn; the strings
    // stay in `env`, which outlives every use.
    let envp: Vec<*mut libc::c_char> = env
        .iter()
        .map(|e| e.as_ptr().cast_mut())
        .chain([std::ptr::null_mut()])
        .collect();
    let durable_dir = std::path::Path::new(&cachedir).join("chain-floor");
    std::fs::create_dir_all(&durable_dir).expect("chain-floor dir");
    let cni = Arc::new(Cni::new(dirs).with_cache_dir(&cachedir));
    let list = Arc::new(list);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let on_main = args.iter().any(|a| a == "--block-on");
    let (mut floor, mut add) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let run_floor = || {
            let t = Instant::now();
            for p in &plugins {
                floor_exec(p, &envp, &conf);
            }
            durable_write(&durable_dir);
            t.elapsed()
        };
        let rc = RuntimeConfig::new(format!("floor-{i}"), netns.as_str(), "eth0");
        // On a worker thread, as the main bench runs its loops; with
        // `--block-on`, polled by `block_on` on this thread instead, which
        // adds a thread hop per wake-up (the worker polls epoll).
        let run_add = || {
            let (cni, list, rc) = (cni.clone(), list.clone(), rc.clone());
            let op = async move {
                let t = Instant::now();
                cni.add_network_list(&list, &rc).await.expect("ADD");
                let took = t.elapsed();
                cni.del_network_list(&list, &rc).await.expect("DEL");
                took
            };
            if on_main {
                rt.block_on(op)
            } else {
                rt.block_on(rt.spawn(op)).expect("ADD task")
            }
        };
        if i % 2 == 0 {
            floor.push(run_floor());
            add.push(run_add());
        } else {
            add.push(run_add());
            floor.push(run_floor());
        }
    }
    let mut ratios: Vec<f64> = add
        .iter()
        .zip(&floor)
        .map(|(a, f)| a.as_secs_f64() / f.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let (f50, a50) = (pct(&floor, 0.5), pct(&add, 0.5));
    println!(
        "chain-floor{} n={n} floor_p50_us={f50} add_p50_us={a50} ratio_of_p50s={:.3} median_paired_ratio={:.3}",
        if on_main { "(block_on)" } else { "" },
        a50 as f64 / f50 as f64,
        ratios[ratios.len() / 2]
    );
    let _ = std::fs::remove_dir_all(&durable_dir);
}

/// One plugin run as floor.c makes it: two pipes, `posix_spawn`, stdin
/// written and closed, stdout read to its end, `waitpid`. `envp` is
/// null-terminated.
fn floor_exec(path: &std::ffi::CStr, envp: &[*mut libc::c_char], stdin: &[u8]) {
    let argv = [path.as_ptr().cast_mut(), std::ptr::null_mut()];
    // SAFETY: plain libc calls on descriptors made here; every pointer
    // passed is valid and NUL-terminated for the duration of the call.
    unsafe {
        let (mut inp, mut out) = ([0; 2], [0; 2]);
        assert_eq!(libc::pipe(inp.as_mut_ptr()), 0);
        assert_eq!(libc::pipe(out.as_mut_ptr()), 0);
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut fa);
        libc::posix_spawn_file_actions_adddup2(&mut fa, inp[0], 0);
        libc::posix_spawn_file_actions_adddup2(&mut fa, out[1], 1);
        libc::posix_spawn_file_actions_addclose(&mut fa, inp[1]);
        libc::posix_spawn_file_actions_addclose(&mut fa, out[0]);
        let mut pid = 0;
        let rc = libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &fa,
            std::ptr::null(),
            argv.as_ptr(),
            envp.as_ptr(),
        );
        assert_eq!(rc, 0, "posix_spawn");
        libc::close(inp[0]);
        libc::close(out[1]);
        libc::write(inp[1], stdin.as_ptr().cast(), stdin.len());
        libc::close(inp[1]);
        let mut buf = [0u8; 65536];
        while libc::read(out[0], buf.as_mut_ptr().cast(), buf.len()) > 0 {}
        libc::close(out[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::posix_spawn_file_actions_destroy(&mut fa);
    }
}

/// One write as durable.c makes it: a 2 KiB temp file, `fdatasync`,
/// rename over the target, `fsync` of the directory.
fn durable_write(dir: &std::path::Path) {
    use std::io::Write;
    let (tmp, dst) = (dir.join(".durable.tmp"), dir.join("durable"));
    let mut f = std::fs::File::create(&tmp).expect("temp file");
    f.write_all(&[b'x'; 2048]).expect("write");
    f.sync_data().expect("fdatasync");
    drop(f);
    std::fs::rename(&tmp, &dst).expect("rename");
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("fsync dir");
}
