//! The runtime side of the Container Network Interface (CNI).
//!
//! Container runtimes use this crate to turn the network configurations in
//! `/etc/cni/net.d` into plugin runs and back into typed results.
//!
//! # The pipeline
//!
//! An operation is a pipeline, config -> plan -> exec -> result -> cache.
//! A [`ConfigLoader`] reads the directory into [`NetworkConfigList`]s (a bad
//! file is skipped with a typed error, never hiding a good one); for an
//! attachment ([`RuntimeConfig`]: container id, netns, ifname, arguments)
//! [`Cni`] *plans* the operation: each plugin's binary, its environment and
//! its exact stdin, which [`Cni::plan`] shows without running anything; it
//! *executes* the plan, plugin by plugin, with a timeout and a process-group
//! kill ([`ProcessExec`]); it parses what the last plugin printed into a
//! typed, version-aware [`CniResult`]; and it *caches* that result
//! atomically and durably, in libcni's on-disk format, for CHECK, DEL and
//! GC to read back. Data flows one way, and so do the modules:
//!
//! ```no_run
//! # async fn run() -> Result<(), libcni::Error> {
//! use libcni::{Cni, ConfigLoader, Op, RuntimeConfig};
//!
//! let net = ConfigLoader::new("/etc/cni/net.d").network("mynet")?; // config
//! let rt = RuntimeConfig::new("c1", "/var/run/netns/c1", "eth0");
//! let cni = Cni::new(["/opt/cni/bin"]);
//! let plan = cni.plan(Op::Add, &net, &rt)?; // plan: binaries, env, stdin
//! println!("{plan}");
//! let result = cni.add_network_list(&net, &rt).await?; // exec -> result -> cache
//! assert!(cni.cached_result(&net, &rt)?.is_some()); // read back by CHECK and DEL
//! println!("{:?}", result.to_latest().ips);
//! # Ok(()) }
//! ```
//!
//! The modules, in that order:
//!
//! - [`config`]: find, parse and validate network configurations
//!   ([`ConfigLoader`], [`NetworkConfigList`], [`PluginConfig`]);
//! - [`plan`]: what runs for an operation: each plugin's binary, environment
//!   and exact stdin ([`Plan`], [`RuntimeConfig`]);
//! - [`exec`]: finding and running plugins ([`PluginExec`], [`ProcessExec`]:
//!   process groups, timeouts, kill on cancellation);
//! - [`result`]: plugin results of every spec version ([`CniResult`]), their
//!   JSON forms and conversion between versions, plugin errors;
//! - the result cache, on disk as libcni lays it out;
//! - [`Cni`]: the operations (ADD, CHECK, DEL, VERSION, validation, cache
//!   lookups) tying these together;
//! - [`version`]: spec version parsing and comparison, `VERSION` replies;
//! - [`error`]: the one [`Error`] type, with an [`ErrorKind`] to match on.
//!
//! Behaviour follows the CNI spec 1.1.0 and the reference Go libcni v1.3.0;
//! where this crate deliberately differs, the README says so.
//!
//! # Runtime
//!
//! [`Cni`]'s operations are futures for a tokio runtime with its I/O and time
//! drivers enabled (`#[tokio::main]`, or `Builder::enable_all`); polled
//! elsewhere they panic ("there is no reactor running"). A current-thread
//! runtime is enough: file-system work runs on tokio's blocking pool.
//! Synchronous code uses [`BlockingCni`], which owns a small runtime.
//!
//! # Plugging in
//!
//! [`PluginExec`] is the seam to the kernel: a custom executor (one that runs
//! plugins through `nsenter`, in a sandbox, or records calls for tests)
//! returns [`ExecOutput`](exec::ExecOutput) for a run and reports failures
//! with [`Error::spawn`], [`Error::timeout`] and [`Error::io`]; install it
//! with [`Cni::with_exec`].
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), libcni::Error> {
//! use libcni::{Cni, ConfigLoader, RuntimeConfig};
//!
//! let net = ConfigLoader::new("/etc/cni/net.d").network("mynet")?;
//! let cni = Cni::new(["/opt/cni/bin"]);
//! let rt = RuntimeConfig::new("c1", "/var/run/netns/c1", "eth0");
//! let result = cni.add_network_list(&net, &rt).await?;
//! for ip in result.to_latest().ips {
//!     println!("{}", ip.address);
//! }
//! cni.check_network_list(&net, &rt).await?;
//! cni.del_network_list(&net, &rt).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(rustdoc::broken_intra_doc_links)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "libcni supports Linux only: it relies on process groups, pidfds, waitid(P_PIDFD) and \
     flock as Linux provides them (kernel 5.4 or later)"
);

mod blocking;
mod cache;
mod cni;
mod compact;
pub mod config;
mod environment;
pub mod error;
pub mod exec;
mod exit;
mod json;
mod name;
pub mod observe;
mod op;
pub mod plan;
mod plugin_error;
pub mod pod;
pub mod result;
pub mod version;

pub use blocking::BlockingCni;
pub use cache::{Attachment, CachedConfig, DEFAULT_CACHE_DIR};
pub use cni::{Cni, DEFAULT_KILL_GRACE, DEFAULT_TIMEOUT, GcReport};
pub use config::{
    ConfigLoader, ConfigProblemReport, ConfigSnapshot, ConfigUpdates, ConfigWatcher,
    ConfigWatcherBuilder, DEFAULT_MAX_CONFIG_DEPTH, DEFAULT_MAX_CONFIG_SIZE, LoadedConfigs,
    NetworkConfigList, NetworkLookup, NetworkReadiness, PluginConfig,
};
pub use error::{CacheProblem, Error, ErrorKind, GcFailure, Op};
pub use exec::{DEFAULT_MAX_OUTPUT, DEFAULT_PLUGIN_DIR, PluginExec, ProcessExec};
pub use observe::Observer;
pub use plan::{AttachmentId, Invocation, Plan, PluginEnv, RuntimeConfig};
pub use result::{CniResult, ErrorCode, PluginError};
pub use version::{SpecVersion, Version, VersionInfo};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
