//! Embedding libcni in an async shim or runtime (tokio): one long-lived
//! `Cni` shared by concurrent requests, a `ConfigWatcher` for the live
//! default network, a deadline per request, and cancellation that kills
//! the running plugin's process group.
//!
//! It reads requests from stdin, one per line, handles each in a task of
//! its own, and answers on stdout, one line each, in completion order:
//!
//! ```text
//! add CONTAINER_ID NETNS    ->  ok add CONTAINER_ID 10.22.0.2/16 ...
//! check CONTAINER_ID NETNS  ->  ok check CONTAINER_ID
//! del CONTAINER_ID NETNS    ->  ok del CONTAINER_ID
//!                           or  err add CONTAINER_ID <what failed>
//! ```
//!
//! At end of input it waits for the requests in flight; on SIGINT or
//! SIGTERM it drops them (their plugins are killed) and exits.
//!
//! ```text
//! cargo run --example async_shim -- CONF_DIR PLUGIN_DIR CACHE_DIR
//! ```
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use libcni::{Cni, ConfigWatcher, RuntimeConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

/// What the shim shares between requests.
struct Shim {
    cni: Cni,
    watcher: ConfigWatcher,
}

impl Shim {
    /// Handles one request line; returns the answer line.
    async fn handle(&self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [cmd, id, netns] = words.as_slice() else {
            return format!("err {line:?}: expected `add|check|del CONTAINER_ID NETNS`");
        };
        // The snapshot is an `Arc`: reading it never waits for a plugin run
        // or a rescan.
        let snapshot = self.watcher.snapshot();
        let Some(net) = snapshot.default_network() else {
            return format!("err {cmd} {id}: no usable network in the config directory");
        };
        // Each request gets its own deadline, whatever the plugins do.
        let rt = RuntimeConfig::new(*id, *netns, "eth0")
            .arg("IgnoreUnknown", "1")
            .with_timeout(Duration::from_secs(30));
        let outcome = match *cmd {
            "add" => self.cni.add_network_list(net, &rt).await.map(|r| {
                let ips: Vec<String> = r
                    .to_latest()
                    .ips
                    .iter()
                    .map(|ip| ip.address.to_string())
                    .collect();
                ips.join(" ")
            }),
            "check" => self
                .cni
                .check_network_list(net, &rt)
                .await
                .map(|()| String::new()),
            "del" => self
                .cni
                .del_network_list(net, &rt)
                .await
                .map(|()| String::new()),
            other => return format!("err {other} {id}: unknown command"),
        };
        match outcome {
            Ok(detail) if detail.is_empty() => format!("ok {cmd} {id}"),
            Ok(detail) => format!("ok {cmd} {id} {detail}"),
            // Typed errors: retryable ones (a plugin's "try again later",
            // a timeout) could be retried here.
            Err(e) => format!("err {cmd} {id} (retryable: {}): {e}", e.is_retryable()),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [conf_dir, plugin_dir, cache_dir] = args.as_slice() else {
        eprintln!("usage: async_shim CONF_DIR PLUGIN_DIR CACHE_DIR");
        return ExitCode::from(2);
    };
    let watcher = match ConfigWatcher::builder(conf_dir)
        .plugin_dirs([plugin_dir])
        .start_async()
        .await
    {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shim = Arc::new(Shim {
        cni: Cni::new([plugin_dir])
            .with_cache_dir(cache_dir)
            // Bound the plugin processes running at once across requests.
            .with_max_concurrent_plugins(8),
        watcher,
    });
    let (Ok(mut sigint), Ok(mut sigterm)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("error: cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => {
                    let shim = Arc::clone(&shim);
                    tasks.spawn(async move { println!("{}", shim.handle(&line).await) });
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("error: reading stdin: {e}");
                    break;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = sigint.recv() => return ExitCode::from(130),
            _ = sigterm.recv() => return ExitCode::from(143),
        }
    }
    // Dropping `tasks` would cancel the requests in flight (and kill their
    // plugins); at end of input, let them finish.
    while tasks.join_next().await.is_some() {}
    ExitCode::SUCCESS
}
