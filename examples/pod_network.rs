//! The library's quick start for runtime authors: attach a pod to its
//! default network plus extra networks, in parallel, print each interface
//! and its addresses, then detach.
//!
//! ```text
//! cargo run --example pod_network -- CONF_DIR PLUGIN_DIR NETNS_PATH [EXTRA_NETWORK...]
//! # e.g. with Debian's plugins, as root:
//! ip netns add demo
//! cargo run --example pod_network -- /etc/cni/net.d /usr/lib/cni /var/run/netns/demo
//! ```
//!
//! The default network is the first usable config in `CONF_DIR`; each
//! extra gets `eth1`, `eth2`, ... If one network fails, the ones already
//! attached are detached again (rollback), so no address leaks.
use std::process::ExitCode;
use std::time::Duration;

use libcni::pod::{CapabilityArgs, K8sArgs, NetworkRequest, Pod, PodNetworks};
use libcni::{Cni, ConfigLoader};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [conf_dir, plugin_dir, netns, extras @ ..] = args.as_slice() else {
        eprintln!("usage: pod_network CONF_DIR PLUGIN_DIR NETNS_PATH [EXTRA_NETWORK...]");
        return ExitCode::from(2);
    };
    match run(conf_dir, plugin_dir, netns, extras).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    conf_dir: &str,
    plugin_dir: &str,
    netns: &str,
    extras: &[String],
) -> Result<(), libcni::Error> {
    let cni = Cni::new([plugin_dir])
        // Keep the example's cache apart from a node's /var/lib/cni.
        .with_cache_dir(std::env::temp_dir().join("libcni-pod-example"))
        .with_timeout(Duration::from_secs(30))
        .with_max_concurrent_plugins(8);
    let pods = PodNetworks::new(cni, ConfigLoader::new(conf_dir));
    let id = format!("pod-example-{}", std::process::id());
    let pod = Pod::new(&*id, netns)
        .with_args(K8sArgs::new("default", "example", &*id).to_pairs())
        .with_capability_args(CapabilityArgs::new().into_map());
    let requests: Vec<NetworkRequest> = extras.iter().map(NetworkRequest::new).collect();

    let interfaces = pods.attach(&pod, &requests).await?;
    for iface in &interfaces {
        let result = iface.result.to_latest();
        let addrs: Vec<String> = result.ips.iter().map(|ip| ip.address.to_string()).collect();
        println!("{} ({}): {}", iface.ifname, iface.network, addrs.join(", "));
    }
    pods.check(&pod).await?;
    pods.detach(&pod).await?;
    println!("detached {} network(s)", interfaces.len());
    Ok(())
}
