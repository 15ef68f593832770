//! Using libcni from synchronous code, without tokio in the caller: a
//! runtime built on threads shares one `BlockingCni` between them. Each
//! call blocks its thread until the plugins are done; calls from several
//! threads run at once.
//!
//! It attaches N containers to a network, one thread each, prints each
//! container's addresses, reads one cached result back, and detaches them
//! all.
//!
//! ```text
//! cargo run --example sync_runtime -- CONF_DIR PLUGIN_DIR CACHE_DIR NETWORK N
//! ```
//!
//! `BlockingCni` must not be called from inside a tokio runtime (as with
//! tokio's own `block_on`, that panics); async code uses `Cni` directly.
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use libcni::{BlockingCni, Cni, ConfigLoader, RuntimeConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [conf_dir, plugin_dir, cache_dir, network, n] = args.as_slice() else {
        eprintln!("usage: sync_runtime CONF_DIR PLUGIN_DIR CACHE_DIR NETWORK N");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("N must be a number");
        return ExitCode::from(2);
    };
    match run(conf_dir, plugin_dir, cache_dir, network, n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    conf_dir: &str,
    plugin_dir: &str,
    cache_dir: &str,
    network: &str,
    n: usize,
) -> Result<(), libcni::Error> {
    let net = Arc::new(ConfigLoader::new(conf_dir).network(network)?);
    let cni = Arc::new(BlockingCni::new(
        Cni::new([plugin_dir]).with_cache_dir(cache_dir),
    )?);
    let rt = |i: usize| {
        RuntimeConfig::new(
            format!("sync-{i}"),
            format!("/var/run/netns/sync-{i}"),
            "eth0",
        )
    };

    // One thread per container, all sharing the same BlockingCni.
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (cni, net) = (Arc::clone(&cni), Arc::clone(&net));
            thread::spawn(move || cni.add_network_list(&net, &rt(i)).map(|r| (i, r)))
        })
        .collect();
    for t in threads {
        let (i, result) = t.join().expect("an attach thread panicked")?;
        let ips: Vec<String> = result
            .to_latest()
            .ips
            .iter()
            .map(|ip| ip.address.to_string())
            .collect();
        println!("sync-{i}: {}", ips.join(" "));
    }
    // Everything else on `Cni` (plans, cache lookups) is reached through
    // `cni()`; those calls are synchronous already.
    if let Some(cached) = cni.cni().cached_result(&net, &rt(0))? {
        println!("cached for sync-0: {} bytes", cached.to_json().len());
    }
    for i in 0..n {
        cni.del_network_list(&net, &rt(i))?;
    }
    println!("detached {n} container(s)");
    Ok(())
}
