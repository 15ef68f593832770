//! The supported way to use the library from synchronous code.

use crate::cache::{Attachment, CachedConfig};
use crate::cni::{Cni, GcReport};
use crate::config::{NetworkConfigList, PluginConfig};
use crate::error::{Error, ErrorKind};
use crate::exec::{PluginExec, ProcessExec};
use crate::plan::{AttachmentId, RuntimeConfig};
use crate::result::CniResult;
use crate::version::VersionInfo;

/// [`Cni`] for code without a tokio runtime: each operation blocks the
/// calling thread until it is done.
///
/// It owns a small current-thread tokio runtime (the async operations need
/// one: polled outside a runtime they panic) and drives each call on it, so
/// it is for threads that are not themselves inside a tokio runtime (from
/// async code, use [`Cni`] directly: a blocking call there panics, as
/// tokio's `block_on` does). The methods mirror [`Cni`]'s; everything else
/// ([`Cni::plan`], the cache lookups, settings) is reached through
/// [`cni`](Self::cni). It is `Send + Sync`: several threads can call it at
/// once, each call running on the calling thread.
///
/// # Example
///
/// ```no_run
/// # fn run() -> Result<(), libcni::Error> {
/// use libcni::{BlockingCni, Cni, ConfigLoader, RuntimeConfig};
///
/// let cni = BlockingCni::new(Cni::new(["/opt/cni/bin"]))?;
/// let net = ConfigLoader::new("/etc/cni/net.d").network("mynet")?;
/// let rt = RuntimeConfig::new("c1", "/var/run/netns/c1", "eth0");
/// let result = cni.add_network_list(&net, &rt)?;
/// println!("{}", String::from_utf8_lossy(&result.to_json()));
/// cni.del_network_list(&net, &rt)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BlockingCni<E = ProcessExec> {
    cni: Cni<E>,
    rt: tokio::runtime::Runtime,
}

impl<E: PluginExec + 'static> BlockingCni<E> {
    /// Wraps `cni`, starting the runtime that drives its calls.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the runtime cannot be started.
    pub fn new(cni: Cni<E>) -> Result<BlockingCni<E>, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Io {
                        action: "starting the tokio runtime",
                    },
                    e,
                )
            })?;
        Ok(BlockingCni { cni, rt })
    }

    /// The wrapped [`Cni`], for its settings, [`Cni::plan`] and the cache
    /// lookups (which are synchronous already).
    pub fn cni(&self) -> &Cni<E> {
        &self.cni
    }

    /// [`Cni::add_network_list`], blocking.
    ///
    /// # Errors
    ///
    /// As [`Cni::add_network_list`].
    pub fn add_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        self.rt.block_on(self.cni.add_network_list(list, rt))
    }

    /// [`Cni::check_network_list`], blocking.
    ///
    /// # Errors
    ///
    /// As [`Cni::check_network_list`].
    pub fn check_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        self.rt.block_on(self.cni.check_network_list(list, rt))
    }

    /// [`Cni::del_network_list`], blocking.
    ///
    /// # Errors
    ///
    /// As [`Cni::del_network_list`].
    pub fn del_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        self.rt.block_on(self.cni.del_network_list(list, rt))
    }

    /// [`Cni::add_network`], blocking.
    ///
    /// # Errors
    ///
    /// As [`Cni::add_network`].
    pub fn add_network(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        self.rt.block_on(self.cni.add_network(plugin, rt))
    }

    /// [`Cni::check_network`], blocking.
    ///
    /// # Errors
    ///
    /// As [`Cni::check_network`].
    pub fn check_network(&self, plugin: &PluginConfig, rt: &RuntimeConfig) -> Result<(), Error> {
        self.rt.block_on(self.cni.check_network(plugin, rt))
    }

    /// [`Cni::del_network`], blocking.
    ///
    /// # Errors
    ///
    /// As [`Cni::del_network`].
    pub fn del_network(&self, plugin: &PluginConfig, rt: &RuntimeConfig) -> Result<(), Error> {
        self.rt.block_on(self.cni.del_network(plugin, rt))
    }

    /// [`Cni::gc_network_list`], blocking.
    ///
    /// # Errors
    ///
    /// As [`Cni::gc_network_list`].
    pub fn gc_network_list(
        &self,
        list: &NetworkConfigList,
        valid: Option<&[AttachmentId]>,
    ) -> Result<GcReport, Error> {
        self.rt.block_on(self.cni.gc_network_list(list, valid))
    }

    /// [`Cni::status_network_list`], blocking.
    ///
    /// # Errors
    ///
    /// As [`Cni::status_network_list`].
    pub fn status_network_list(&self, list: &NetworkConfigList) -> Result<(), Error> {
        self.rt.block_on(self.cni.status_network_list(list))
    }

    /// [`Cni::version_info`], blocking.
    ///
    /// # Errors
    ///
    /// As [`Cni::version_info`].
    pub fn version_info(&self, plugin_type: &str) -> Result<VersionInfo, Error> {
        self.rt.block_on(self.cni.version_info(plugin_type))
    }

    /// [`Cni::validate_network_list`], blocking.
    ///
    /// # Errors
    ///
    /// As [`Cni::validate_network_list`].
    pub fn validate_network_list(&self, list: &NetworkConfigList) -> Result<Vec<String>, Error> {
        self.rt.block_on(self.cni.validate_network_list(list))
    }

    /// [`Cni::cached_result`].
    ///
    /// # Errors
    ///
    /// As [`Cni::cached_result`].
    pub fn cached_result(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<Option<CniResult>, Error> {
        self.cni.cached_result(list, rt)
    }

    /// [`Cni::cached_config`].
    ///
    /// # Errors
    ///
    /// As [`Cni::cached_config`].
    pub fn cached_config(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<Option<CachedConfig>, Error> {
        self.cni.cached_config(list, rt)
    }

    /// [`Cni::cached_attachments`].
    ///
    /// # Errors
    ///
    /// As [`Cni::cached_attachments`].
    pub fn cached_attachments(&self, container_id: Option<&str>) -> Result<Vec<Attachment>, Error> {
        self.cni.cached_attachments(container_id)
    }
}
