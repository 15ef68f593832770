//! The runtime side of the Container Network Interface (CNI).
//!
//! Container runtimes use this crate to turn the network configurations in
//! `/etc/cni/net.d` into plugin runs and back into typed results. Data flows
//! one way through its modules:
//!
//! - [`config`]: find, parse and validate network configurations
//!   ([`ConfigLoader`], [`NetworkConfigList`], [`PluginConfig`]);
//! - [`result`]: plugin results of every spec version ([`CniResult`]), their
//!   JSON forms and conversion between versions;
//! - [`version`]: spec version parsing and comparison, `VERSION` replies;
//! - [`error`]: the one [`Error`] type, with an [`ErrorKind`] to match on.
//!
//! Behaviour follows the CNI spec 1.1.0 and the reference Go libcni v1.3.0;
//! where this crate deliberately differs (it keeps plugin configs byte for
//! byte, and a broken config file never hides a good one), the README says so.
//!
//! # Example
//!
//! ```no_run
//! # fn main() -> Result<(), libcni::Error> {
//! use libcni::{CniResult, ConfigLoader};
//!
//! let net = ConfigLoader::new("/etc/cni/net.d").network("mynet")?;
//! for plugin in net.plugins() {
//!     println!("{} ({})", plugin.plugin_type(), plugin.raw());
//! }
//! let result = CniResult::from_json(br#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.2.3/24"}]}"#)?;
//! let latest = result.to_latest();
//! assert_eq!(latest.ips[0].address.to_string(), "10.1.2.3/24");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(rustdoc::broken_intra_doc_links)]

mod cache;
mod cni;
pub mod config;
pub mod error;
pub mod exec;
mod json;
pub mod plan;
pub mod result;
pub mod version;

pub use cache::{Attachment, CachedConfig, DEFAULT_CACHE_DIR};
pub use cni::{Cni, DEFAULT_KILL_GRACE, DEFAULT_TIMEOUT};
pub use config::{ConfigLoader, LoadedConfigs, NetworkConfigList, PluginConfig};
pub use error::{Error, ErrorKind, Op};
pub use exec::{DEFAULT_PLUGIN_DIR, PluginExec, ProcessExec};
pub use plan::{Invocation, Plan, RuntimeConfig};
pub use result::{CniResult, ErrorCode, PluginError};
pub use version::{SpecVersion, Version, VersionInfo};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
