//! VERSION, validation and the cache lookups.

use super::*;

impl<E: PluginExec + 'static> Cni<E> {
    /// Asks a plugin which spec versions it supports (`VERSION`). A plugin
    /// that answers with the error `unknown CNI_COMMAND: VERSION` predates
    /// the command and supports 0.1.0 only.
    ///
    /// # Errors
    ///
    /// The plugin lookup and run errors, [`ErrorKind::InvalidVersionInfo`]
    /// for a malformed reply.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the plugin's process group.
    pub async fn version_info(&self, plugin_type: &str) -> Result<VersionInfo, Error> {
        let ctx = |e: Error| e.for_plugin(plugin_type).during(Op::Version);
        let path = self
            .exec
            .find(plugin_type, &self.plugin_dirs)
            .map_err(ctx)?;
        let inv = plan::version_invocation(plugin_type, path, &self.env);
        let req = ExecRequest {
            path: inv.path(),
            op: Op::Version,
            env: inv.exec_env(),
            stdin: &inv.stdin(),
            timeout: self.timeout,
            kill_grace: self.kill_grace,
            max_output: self.max_output,
        };
        let out = self.exec.exec(req).await.map_err(ctx)?;
        if !out.status.success() {
            if let Some(pe) = PluginError::from_output(&out.stdout) {
                if pe.msg() == "unknown CNI_COMMAND: VERSION" && pe.details().is_empty() {
                    return Ok(VersionInfo::legacy());
                }
            }
            return Err(ctx(out.failure()));
        }
        VersionInfo::from_json(&out.stdout).map_err(ctx)
    }

    /// Validates a network: every plugin is found and supports the network's
    /// version (by exact string; `""` means 0.1.0). Returns the capabilities
    /// the network's plugins declare, sorted and de-duplicated.
    ///
    /// # Errors
    ///
    /// The one error, or [`ErrorKind::Multiple`] with all of them: plugin
    /// lookup and `VERSION` errors, [`ErrorKind::IncompatibleVersion`].
    pub async fn validate_network_list(
        &self,
        list: &NetworkConfigList,
    ) -> Result<Vec<String>, Error> {
        let mut errors = Vec::new();
        let version = if list.cni_version().is_empty() {
            "0.1.0"
        } else {
            list.cni_version()
        };
        for plugin in list.plugins() {
            match self.version_info(plugin.plugin_type()).await {
                Ok(vi) if vi.supports(version) => {}
                Ok(vi) => errors.push(
                    Error::new(ErrorKind::IncompatibleVersion {
                        version: version.to_owned(),
                        supported: vi.supported_versions().to_vec(),
                    })
                    .for_plugin(plugin.plugin_type()),
                ),
                Err(e) => errors.push(e),
            }
        }
        let mut errors: Vec<Error> = errors
            .into_iter()
            .map(|e| e.in_network(list.name()))
            .collect();
        match errors.len() {
            0 => Ok(list.capabilities().into_iter().map(str::to_owned).collect()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::new(ErrorKind::Multiple { errors }).in_network(list.name())),
        }
    }

    /// Validates a single plugin configuration (see
    /// [`validate_network_list`](Self::validate_network_list)).
    ///
    /// # Errors
    ///
    /// As [`validate_network_list`](Self::validate_network_list).
    pub async fn validate_network(&self, plugin: &PluginConfig) -> Result<Vec<String>, Error> {
        self.validate_network_list(&NetworkConfigList::single(plugin))
            .await
    }

    /// The cached result of the last ADD of an attachment, converted to the
    /// network's version; `None` if nothing is cached. Blocking (it reads a
    /// file).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAttachment`] for names that would escape the cache,
    /// [`ErrorKind::Cache`] for a cache file that cannot be used (also a
    /// symlinked `results/` or cache file).
    pub fn cached_result(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<Option<CniResult>, Error> {
        let name = cache::entry_name(list.name(), rt.container_id(), rt.ifname())
            .map_err(|e| e.in_network(list.name()))?;
        Self::read_cached(&self.cache_for(rt), list, &name).map_err(|e| e.in_network(list.name()))
    }

    /// What the last ADD of an attachment cached: the config bytes and the
    /// runtime config with the cached arguments; `None` if nothing is cached.
    /// Blocking (it reads a file).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAttachment`], and [`ErrorKind::Cache`] for a file
    /// that is not a `cniCacheV1` entry (no legacy fallback, as in libcni),
    /// or a symlinked `results/` or cache file.
    pub fn cached_config(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<Option<CachedConfig>, Error> {
        let name = cache::entry_name(list.name(), rt.container_id(), rt.ifname())
            .map_err(|e| e.in_network(list.name()))?;
        let cache = self.cache_for(rt);
        let path = cache.path().join(RESULTS).join(&name);
        let ctx = |e: Error| e.at_path(&path).in_network(list.name());
        let Some(bytes) = Self::read_entry(&cache, &name).map_err(ctx)? else {
            return Ok(None);
        };
        cache::cached_config(&bytes, rt).map(Some).map_err(ctx)
    }

    /// The cached result of a single plugin configuration's attachment
    /// (libcni's `GetNetworkCachedResult`; see
    /// [`cached_result`](Self::cached_result)).
    ///
    /// # Errors
    ///
    /// As [`cached_result`](Self::cached_result).
    pub fn cached_network_result(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<Option<CniResult>, Error> {
        self.cached_result(&NetworkConfigList::single(plugin), rt)
    }

    /// What the last ADD of a single plugin configuration cached (libcni's
    /// `GetNetworkCachedConfig`; see [`cached_config`](Self::cached_config)).
    ///
    /// # Errors
    ///
    /// As [`cached_config`](Self::cached_config).
    pub fn cached_network_config(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<Option<CachedConfig>, Error> {
        self.cached_config(&NetworkConfigList::single(plugin), rt)
    }

    /// The attachments recorded in the cache, of `container_id` or (with
    /// `None`) of every container, in file-name order (libcni 1.3's
    /// `GetCachedAttachments`). Files that are not valid entries are
    /// skipped. Blocking (it reads the cache directory).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the cache directory cannot be read,
    /// [`ErrorKind::Cache`] if its `results` directory is a symlink.
    pub fn cached_attachments(&self, container_id: Option<&str>) -> Result<Vec<Attachment>, Error> {
        cache::attachments(&self.cache, container_id).map(|(atts, skipped)| {
            for e in &skipped {
                tracing::debug!(error = %e, "skipping a cache file that is not a valid entry");
            }
            atts
        })
    }
}
