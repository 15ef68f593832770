//! The pod facade: all of a pod's networks attached, checked and detached
//! together, from configs that may change underneath.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::cache::{Attachment, blocking};
use crate::cni::{Cni, GcReport};
use crate::config::{ConfigLoader, ConfigWatcher, NetworkConfigList};
use crate::error::{Error, ErrorKind};
use crate::exec::{PluginExec, ProcessExec};
use crate::plan::{AttachmentId, RuntimeConfig};
use crate::result::CniResult;

/// The built-in loopback network (go-cni's `WithLoNetwork`).
const LOOPBACK: &str =
    r#"{"cniVersion":"1.0.0","name":"cni-loopback","plugins":[{"type":"loopback"}]}"#;

/// Where the facade's network configs come from.
#[derive(Clone)]
enum Source {
    /// Read the config directory on every call.
    Loader(ConfigLoader),
    /// The live snapshots of a watcher (never blocks on a rescan).
    Watcher(Arc<ConfigWatcher>),
}

/// How interfaces are named.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IfNames {
    /// go-cni: the default network gets `<prefix>0`, extras `<prefix>1`,
    /// `<prefix>2`, ... (`eth0`, `eth1`, ...).
    Sequential {
        /// The prefix, e.g. `eth`.
        prefix: String,
    },
    /// Multus: the default network gets `<default>`, extras `<prefix>1`,
    /// `<prefix>2`, ... (`eth0`, `net1`, `net2`, ...).
    Multus {
        /// The default network's interface, e.g. `eth0`.
        default: String,
        /// The extras' prefix, e.g. `net`.
        prefix: String,
    },
}

/// A pod (sandbox) to attach: its ID (the container ID plugins see), its
/// network namespace, and what runtimes pass every plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    id: String,
    netns: String,
    args: Vec<(String, String)>,
    capability_args: Map<String, Value>,
}

impl Pod {
    /// The pod whose sandbox container is `id`, in namespace `netns`.
    pub fn new(id: impl Into<String>, netns: impl Into<String>) -> Pod {
        Pod {
            id: id.into(),
            netns: netns.into(),
            args: Vec::new(),
            capability_args: Map::new(),
        }
    }

    /// Sets the `CNI_ARGS` (e.g. [`K8sArgs::to_pairs`](super::K8sArgs::to_pairs)).
    pub fn with_args(mut self, args: Vec<(String, String)>) -> Pod {
        self.args = args;
        self
    }

    /// Sets the capability arguments (e.g. [`CapabilityArgs::into_map`](super::CapabilityArgs::into_map)).
    pub fn with_capability_args(mut self, caps: Map<String, Value>) -> Pod {
        self.capability_args = caps;
        self
    }

    /// The pod's sandbox container ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pod's network namespace.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    fn runtime_config(&self, ifname: &str) -> RuntimeConfig {
        RuntimeConfig::new(&*self.id, &*self.netns, ifname)
            .with_args(self.args.clone())
            .with_capability_args(self.capability_args.clone())
    }
}

/// An extra network to attach, with an explicit interface name or one
/// from the naming scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRequest {
    network: String,
    ifname: Option<String>,
}

impl NetworkRequest {
    /// Attach `network`, its interface named by the scheme.
    pub fn new(network: impl Into<String>) -> NetworkRequest {
        NetworkRequest {
            network: network.into(),
            ifname: None,
        }
    }

    /// Names the interface explicitly.
    pub fn ifname(mut self, ifname: impl Into<String>) -> NetworkRequest {
        self.ifname = Some(ifname.into());
        self
    }
}

/// One attached interface.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PodInterface {
    /// The network.
    pub network: String,
    /// The interface name in the pod.
    pub ifname: String,
    /// The network's result, as its last plugin returned it.
    pub result: CniResult,
}

/// The networks of pods, attached and detached as a whole (what go-cni and
/// ocicni offer runtimes on top of libcni).
///
/// - **Attach**: the default network (the first usable config, as go-cni
///   and ocicni pick it) plus any named extra networks, each on its own
///   interface, in parallel or in order; optionally a loopback network
///   first. If any fails, what was attached is detached again (rollback,
///   on by default), so no address leaks; the original error is returned
///   with the rollback's outcome ([`Error::rollback`]).
/// - **Detach and check** go by the result cache, with the config each
///   network was attached with: a network whose config was changed or
///   deleted since is still detached cleanly (as ocicni does).
/// - **GC** takes the pods that are alive and deletes every other cached
///   attachment, on every network, then runs the plugins' GC.
///
/// Concurrency is bounded with [`Cni::with_max_concurrent_plugins`] on the
/// `Cni` given.
#[derive(Clone)]
pub struct PodNetworks<E = ProcessExec> {
    cni: Cni<E>,
    source: Source,
    names: IfNames,
    loopback: bool,
    parallel: bool,
    min_networks: usize,
    max_networks: Option<usize>,
}

impl<E> std::fmt::Debug for PodNetworks<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodNetworks")
            .field("names", &self.names)
            .field("loopback", &self.loopback)
            .field("parallel", &self.parallel)
            .finish_non_exhaustive()
    }
}

impl<E: PluginExec + 'static> PodNetworks<E> {
    /// Pods on the networks of `conf_dir`, read on every call. Rollback is
    /// turned on for `cni`.
    pub fn new(cni: Cni<E>, loader: ConfigLoader) -> PodNetworks<E> {
        PodNetworks::with_source(cni, Source::Loader(loader))
    }

    /// Pods on the networks a [`ConfigWatcher`] publishes: calls read the
    /// current snapshot and never wait for a rescan.
    pub fn with_watcher(cni: Cni<E>, watcher: Arc<ConfigWatcher>) -> PodNetworks<E> {
        PodNetworks::with_source(cni, Source::Watcher(watcher))
    }

    fn with_source(cni: Cni<E>, source: Source) -> PodNetworks<E> {
        PodNetworks {
            cni: cni.with_rollback(true),
            source,
            names: IfNames::Sequential {
                prefix: "eth".into(),
            },
            loopback: false,
            parallel: true,
            min_networks: 1,
            max_networks: None,
        }
    }

    /// How interfaces are named. Default: `eth0`, `eth1`, ... (go-cni).
    pub fn with_ifnames(mut self, names: IfNames) -> PodNetworks<E> {
        self.names = names;
        self
    }

    /// Whether a loopback network (`lo`, the `loopback` plugin) is attached
    /// first and detached last. Default: no.
    pub fn with_loopback(mut self, yes: bool) -> PodNetworks<E> {
        self.loopback = yes;
        self
    }

    /// Whether networks are attached in parallel (default) or one after the
    /// other. Detach always goes in reverse, one after the other.
    pub fn with_parallel(mut self, yes: bool) -> PodNetworks<E> {
        self.parallel = yes;
        self
    }

    /// How many networks (default plus extras) a pod needs at least;
    /// fewer is an error before anything runs (go-cni's
    /// `WithMinNetworkCount`). Default: 1.
    pub fn with_min_networks(mut self, n: usize) -> PodNetworks<E> {
        self.min_networks = n;
        self
    }

    /// How many networks a pod may have at most (go-cni's network count).
    /// Default: no bound.
    pub fn with_max_networks(mut self, n: usize) -> PodNetworks<E> {
        self.max_networks = Some(n);
        self
    }

    /// Whether failed attachments are rolled back (default: yes).
    pub fn with_rollback(mut self, yes: bool) -> PodNetworks<E> {
        self.cni = self.cni.clone().with_rollback(yes);
        self
    }

    /// The `Cni` underneath.
    pub fn cni(&self) -> &Cni<E> {
        &self.cni
    }

    /// The current networks (load order) and the default one.
    async fn networks(&self) -> Result<(Vec<NetworkConfigList>, Option<String>), Error> {
        match &self.source {
            Source::Watcher(w) => {
                let snap = w.snapshot();
                let default = snap.default_network().map(|n| n.name().to_owned());
                Ok((snap.networks().to_vec(), default))
            }
            Source::Loader(l) => {
                let l = l.clone();
                blocking(move || {
                    let all = l.load_all()?;
                    let default = l.default_network().ok().map(|n| n.name().to_owned());
                    Ok((all.into_parts().0, default))
                })
                .await
            }
        }
    }

    /// Attaches the default network and the `extras` to `pod`, and returns
    /// each interface with its result, in attach order.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NetworkNotFound`] for an unknown network or no default,
    /// [`ErrorKind::InvalidAttachment`] for too few or too many networks,
    /// and the first failing network's error (with the rollback's outcome
    /// attached when rollback is on).
    pub async fn attach(
        &self,
        pod: &Pod,
        extras: &[NetworkRequest],
    ) -> Result<Vec<PodInterface>, Error> {
        let (networks, default) = self.networks().await?;
        let find = |name: &str| -> Result<NetworkConfigList, Error> {
            pick(&networks, name).cloned().ok_or_else(|| {
                Error::new(ErrorKind::NetworkNotFound {
                    network: name.to_owned(),
                    dir: self.conf_dir(),
                    skipped: Vec::new(),
                })
            })
        };
        let default = default.ok_or_else(|| {
            Error::new(ErrorKind::NoValidConfig {
                dir: self.conf_dir(),
                skipped: Vec::new(),
            })
        })?;
        let mut plan: Vec<(NetworkConfigList, String)> = Vec::new();
        let (first, extra_prefix) = match &self.names {
            IfNames::Sequential { prefix } => (format!("{prefix}0"), prefix.clone()),
            IfNames::Multus { default, prefix } => (default.clone(), prefix.clone()),
        };
        plan.push((find(&default)?, first));
        for (i, req) in extras.iter().enumerate() {
            let ifname = req
                .ifname
                .clone()
                .unwrap_or_else(|| format!("{extra_prefix}{}", i + 1));
            plan.push((find(&req.network)?, ifname));
        }
        let count = plan.len();
        if count < self.min_networks || self.max_networks.is_some_and(|m| count > m) {
            return Err(Error::new(ErrorKind::InvalidAttachment {
                field: crate::error::AttachmentField::NetworkName,
                value: format!("{count} networks"),
                reason: "outside the facade's minimum and maximum network count",
            }));
        }
        if self.loopback {
            let lo = NetworkConfigList::from_bytes(LOOPBACK.as_bytes())?;
            plan.insert(0, (lo, "lo".to_owned()));
        }
        let results: Vec<Result<CniResult, Error>> = if self.parallel {
            let mut set = tokio::task::JoinSet::new();
            for (i, (list, ifname)) in plan.iter().enumerate() {
                let (cni, list, rt) = (self.cni.clone(), list.clone(), pod.runtime_config(ifname));
                set.spawn(async move { (i, cni.add_network_list(&list, &rt).await) });
            }
            let mut out: Vec<Option<Result<CniResult, Error>>> =
                (0..plan.len()).map(|_| None).collect();
            while let Some(joined) = set.join_next().await {
                match joined {
                    Ok((i, r)) => out[i] = Some(r),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => {}
                }
            }
            out.into_iter()
                .map(|r| r.expect("every task ran"))
                .collect()
        } else {
            let mut out = Vec::new();
            for (list, ifname) in &plan {
                let r = self
                    .cni
                    .add_network_list(list, &pod.runtime_config(ifname))
                    .await;
                let failed = r.is_err();
                out.push(r);
                if failed {
                    break;
                }
            }
            out
        };
        let failure = results.iter().position(Result::is_err);
        let Some(bad) = failure else {
            return Ok(plan
                .into_iter()
                .zip(results)
                .map(|((list, ifname), r)| PodInterface {
                    network: list.name().to_owned(),
                    ifname,
                    result: r.expect("no failure"),
                })
                .collect());
        };
        let mut results = results;
        let err = results.remove(bad).expect_err("the failure");
        if !self.cni.rollback() {
            return Err(err);
        }
        // Roll back the networks that were attached, in reverse.
        let mut failures = Vec::new();
        for (i, r) in results.iter().enumerate().rev() {
            let idx = if i >= bad { i + 1 } else { i };
            if r.is_ok() {
                let (list, ifname) = &plan[idx];
                if let Err(e) = self
                    .cni
                    .del_network_list(list, &pod.runtime_config(ifname))
                    .await
                {
                    failures.push(e);
                }
            }
        }
        // The failed network rolled itself back (its outcome is already on
        // `err`); a failure to detach the others replaces it.
        Err(match failures.len() {
            0 => err,
            1 => err.with_rollback(Err(failures.remove(0))),
            _ => err.with_rollback(Err(Error::new(ErrorKind::Multiple { errors: failures }))),
        })
    }

    fn conf_dir(&self) -> std::path::PathBuf {
        match &self.source {
            Source::Loader(l) => l.dir().to_owned(),
            Source::Watcher(w) => w.snapshot().conf_dir().to_owned(),
        }
    }

    /// The pod's cached attachments, in detach order (the reverse of
    /// attach: highest interface first, loopback last), each with the
    /// config to use: the current one if unchanged, else the one cached at
    /// ADD.
    async fn cached(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<(Attachment, NetworkConfigList)>, Error> {
        let (networks, _) = self.networks().await.unwrap_or_default();
        let cni = self.cni.clone();
        let id = id.map(str::to_owned);
        let atts = blocking(move || cni.cached_attachments(id.as_deref())).await?;
        let mut out = Vec::new();
        for att in atts {
            let list = match pick(&networks, &att.network) {
                Some(current) if current.bytes() == att.config.as_slice() => current.clone(),
                _ => match NetworkConfigList::from_bytes(&att.config) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(network = %att.network, container_id = %att.container_id, error = %e, "cached config unusable; cannot detach this attachment");
                        continue;
                    }
                },
            };
            out.push((att, list));
        }
        out.sort_by_key(|(a, _)| std::cmp::Reverse(detach_key(&a.ifname)));
        Ok(out)
    }

    /// Runs STATUS (spec 1.1.0 and later) on the default network, bounded by
    /// `timeout`; it takes no attachment lock, so it answers while pods are
    /// being attached. `Ok` means ready (or a version without STATUS).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NoValidConfig`] without a usable default network, the
    /// plugin's answer ([`Error::is_not_ready`] for codes 50 and 51), or
    /// [`ErrorKind::DeadlineExceeded`].
    pub async fn status(&self, timeout: std::time::Duration) -> Result<(), Error> {
        let (networks, default) = self.networks().await?;
        let list = default
            .as_deref()
            .and_then(|d| pick(&networks, d))
            .ok_or_else(|| {
                Error::new(ErrorKind::NoValidConfig {
                    dir: self.conf_dir(),
                    skipped: Vec::new(),
                })
            })?;
        match tokio::time::timeout(timeout, self.cni.status_network_list(list)).await {
            Ok(res) => res,
            Err(_) => Err(Error::new(ErrorKind::DeadlineExceeded)
                .in_network(list.name())
                .during(crate::error::Op::Status)),
        }
    }

    /// Detaches every network of `pod` recorded in the cache, in reverse
    /// attach order, each with the config it was attached with (the current
    /// config when unchanged). Goes on past failures.
    ///
    /// # Errors
    ///
    /// The one failure, or [`ErrorKind::Multiple`] with all of them.
    pub async fn detach(&self, pod: &Pod) -> Result<(), Error> {
        let mut errors = Vec::new();
        for (att, list) in self.cached(Some(pod.id())).await? {
            let rt = att.runtime_config();
            if let Err(e) = self.cni.del_network_list(&list, &rt).await {
                errors.push(e);
            }
        }
        one_or_many(errors)
    }

    /// Checks every network of `pod` recorded in the cache.
    ///
    /// # Errors
    ///
    /// The one failure, or [`ErrorKind::Multiple`] with all of them.
    pub async fn check(&self, pod: &Pod) -> Result<(), Error> {
        let mut errors = Vec::new();
        for (att, list) in self.cached(Some(pod.id())).await?.into_iter().rev() {
            if list.name() == "cni-loopback" {
                continue;
            }
            if let Err(e) = self
                .cni
                .check_network_list(&list, &att.runtime_config())
                .await
            {
                errors.push(e);
            }
        }
        one_or_many(errors)
    }

    /// Pod-level GC: every cached attachment whose pod is not in `alive` is
    /// deleted, on every network, including networks whose config is gone
    /// (with the config they were attached with); then every current
    /// network's plugins get GC (spec 1.1.0 and later) with the alive
    /// attachments as the valid set. Returns the attachments deleted.
    ///
    /// # Errors
    ///
    /// The one failure, or [`ErrorKind::Multiple`] with all of them.
    pub async fn gc(&self, alive: &[&str]) -> Result<Vec<AttachmentId>, Error> {
        let mut errors = Vec::new();
        let mut deleted = Vec::new();
        let mut kept: Vec<(String, AttachmentId)> = Vec::new();
        for (att, list) in self.cached(None).await? {
            let id = AttachmentId::new(&*att.container_id, &*att.ifname);
            if alive.contains(&att.container_id.as_str()) {
                kept.push((att.network.clone(), id));
                continue;
            }
            match self
                .cni
                .del_network_list(&list, &att.runtime_config())
                .await
            {
                Ok(()) => deleted.push(id),
                Err(e) => errors.push(e),
            }
        }
        let (networks, _) = self.networks().await?;
        for list in &networks {
            let valid: Vec<AttachmentId> = kept
                .iter()
                .filter(|(n, _)| n == list.name())
                .map(|(_, id)| id.clone())
                .collect();
            match self.cni.gc_network_list(list, Some(&valid)).await {
                Ok(GcReport { .. }) => {}
                Err(e) => errors.push(e),
            }
        }
        one_or_many(errors).map(|()| deleted)
    }
}

/// The network `name` as libcni picks it (see `LoadedConfigs::get`).
fn pick<'a>(networks: &'a [NetworkConfigList], name: &str) -> Option<&'a NetworkConfigList> {
    crate::config::pick(networks, name).map(|i| &networks[i])
}

/// Sorts interfaces in attach order: `lo` first, then by the number at the
/// end of the name (`eth0` < `eth1` < `net2`), then by name.
fn detach_key(ifname: &str) -> (bool, u64, String) {
    let digits: String = ifname
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (
        ifname != "lo",
        digits.parse().unwrap_or(0),
        ifname.to_owned(),
    )
}

fn one_or_many(mut errors: Vec<Error>) -> Result<(), Error> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::new(ErrorKind::Multiple { errors })),
    }
}
