//! ADD, CHECK and DEL, of lists and of single plugin configurations.

use tracing::Instrument;

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

impl<E: PluginExec + 'static> Cni<E> {
    /// Adds an attachment: runs the plugins in order, each getting the
    /// previous one's result as `prevResult`, caches the last result and
    /// returns it in the last plugin's version (convert it with
    /// [`CniResult::convert`]).
    ///
    /// Every plugin binary is found, and the cache checked, before the first
    /// runs. By default there is no rollback when a plugin fails (as in
    /// libcni): call [`del_network_list`](Self::del_network_list) to clean
    /// up. With [`with_rollback`](Self::with_rollback), a failure after the
    /// first plugin started is followed by a DEL of the whole list, and its
    /// outcome is attached to the error ([`Error::rollback`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAttachment`] (libcni's container ID, network and
    /// interface name rules), the plugin lookup errors, the plugin run errors
    /// ([`ErrorKind::Plugin`], [`ErrorKind::PluginExit`],
    /// [`ErrorKind::Timeout`], [`ErrorKind::Spawn`], [`ErrorKind::EmptyResult`],
    /// [`ErrorKind::InvalidResult`], [`ErrorKind::UnsupportedResultVersion`]),
    /// [`ErrorKind::Cache`] if `results/` in the cache directory is a symlink
    /// or not a directory (nothing runs), and [`ErrorKind::Io`] if the cache
    /// cannot be written.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group
    /// (`SIGKILL`); plugins that already ran stay configured and nothing is
    /// cached.
    pub async fn add_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        let span = op_span(Op::Add, list.name(), Some(rt));
        let started = Instant::now();
        let ran = AtomicBool::new(false);
        let res = until_deadline(
            rt.deadline(),
            Op::Add,
            list.name(),
            self.add_inner(list, rt, &ran),
        )
        .instrument(span.clone())
        .await;
        let res = match res {
            Err(e) if self.rollback && ran.load(Ordering::Relaxed) => {
                // Undo what the plugins that ran may have set up, with the
                // plugin timeout but without the call's deadline (it may be
                // what failed).
                let undo = rt.clone().without_deadline();
                let outcome = self.del_inner(list, &undo).instrument(span.clone()).await;
                match &outcome {
                    Ok(()) => tracing::info!(error = %e, "ADD failed; rolled back with DEL"),
                    Err(re) => {
                        tracing::warn!(error = %e, rollback_error = %re, "ADD failed and so did its rollback")
                    }
                }
                Err(e.with_rollback(outcome))
            }
            other => other,
        };
        self.observe_op(&span, Op::Add, list.name(), Some(rt), started, &res);
        res
    }

    async fn add_inner(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
        ran: &AtomicBool,
    ) -> Result<CniResult, Error> {
        let started = Instant::now();
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Add);
        validate_add(net, rt.container_id(), rt.ifname()).map_err(ctx)?;
        let name = cache::entry_name(net, rt.container_id(), rt.ifname()).map_err(ctx)?;
        let (mut slot, paths) = self
            .find_and_open(Op::Add, list, &self.cache_for(rt), name, false)
            .await?;
        let plan = match self.build_found(Op::Add, list, Some(rt), None, None, paths) {
            Ok(plan) => plan,
            Err(e) => {
                let _ = slot.finish(Finish::Keep).await;
                return Err(e);
            }
        };
        if let Some(problem) = slot.take_problem() {
            let _ = slot.finish(Finish::Keep).await;
            return Err(ctx(problem));
        }
        let mut prev: Option<CniResult> = None;
        ran.store(true, Ordering::Relaxed);
        for inv in plan.invocations() {
            let prev_json = prev.as_ref().map(CniResult::to_json);
            let stdin = inv.stdin_with(prev_json.as_deref());
            let step = match self.run(inv, &stdin, net).await {
                Ok(out) => CniResult::from_plugin_output(&out.stdout, list.cni_version())
                    .map_err(|e| ctx(e.for_plugin(inv.plugin_type()))),
                Err(e) => Err(e),
            };
            match step {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    let _ = slot.finish(Finish::Keep).await;
                    return Err(e);
                }
            }
        }
        let result = prev.expect("a network has at least one plugin");
        let bytes = cache::encode(net, rt, list.bytes(), &result);
        slot.finish(Finish::Write(bytes)).await.map_err(ctx)?;
        tracing::info!(
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "ADD done"
        );
        Ok(result)
    }

    /// Checks an attachment: runs the plugins in order with the cached result
    /// as `prevResult` (none if nothing is cached, as in libcni).
    ///
    /// Networks older than 0.4.0 do not support CHECK; with `disableCheck`
    /// nothing runs and the check succeeds.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OpNotSupported`] below 0.4.0, [`ErrorKind::InvalidVersion`]
    /// for an unparsable version, [`ErrorKind::Cache`] for a cache file that
    /// cannot be used, and the plugin lookup and run errors.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group.
    pub async fn check_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        let span = op_span(Op::Check, list.name(), Some(rt));
        let started = Instant::now();
        let res = until_deadline(
            rt.deadline(),
            Op::Check,
            list.name(),
            self.check_inner(list, rt),
        )
        .instrument(span.clone())
        .await;
        self.observe_op(&span, Op::Check, list.name(), Some(rt), started, &res);
        res
    }

    async fn check_inner(&self, list: &NetworkConfigList, rt: &RuntimeConfig) -> Result<(), Error> {
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Check);
        check_supported(list)?;
        if list.disable_check() {
            tracing::debug!("disableCheck is set; not running plugins");
            return Ok(());
        }
        let name = cache::entry_name(net, rt.container_id(), rt.ifname()).map_err(ctx)?;
        let cache = self.cache_for(rt);
        let path = cache.path().join(RESULTS).join(&name);
        let (mut slot, paths) = self
            .find_and_open(Op::Check, list, &cache, name, true)
            .await?;
        let res = async {
            let bytes = slot.take_read().map_err(|e| ctx(e.at_path(&path)))?;
            let cached = Self::parse_cached(list, bytes).map_err(|e| ctx(e.at_path(&path)))?;
            let plan = self.build_found(Op::Check, list, Some(rt), cached, None, paths)?;
            for inv in plan.invocations() {
                self.run(inv, &inv.stdin(), net).await?;
            }
            Ok(())
        }
        .await;
        let _ = slot.finish(Finish::Keep).await;
        res
    }

    /// Deletes an attachment: runs the plugins in reverse order with the
    /// cached result as `prevResult`, then removes the cache entry.
    ///
    /// A missing, corrupt or unusable cache does not stop DEL (libcni 1.1
    /// fails on a 0-byte cache file forever; 1.3 deletes the file before
    /// running anything): the plugins run without `prevResult` and the
    /// problem is logged. The cache entry is removed only once every plugin
    /// succeeded, so a failed DEL can be retried with the same prevResult.
    /// When `results/` is a symlink (or not a directory), nothing in the
    /// cache is touched.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidVersion`], [`ErrorKind::InvalidAttachment`] for
    /// names that would escape the cache directory, and the plugin lookup and
    /// run errors (the first failing plugin stops the run).
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group; the
    /// cache entry is kept.
    pub async fn del_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        let span = op_span(Op::Del, list.name(), Some(rt));
        let started = Instant::now();
        let res = until_deadline(
            rt.deadline(),
            Op::Del,
            list.name(),
            self.del_inner(list, rt),
        )
        .instrument(span.clone())
        .await;
        self.observe_op(&span, Op::Del, list.name(), Some(rt), started, &res);
        res
    }

    pub(super) async fn del_inner(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Del);
        let name = cache::entry_name(net, rt.container_id(), rt.ifname()).map_err(ctx)?;
        let cache = self.cache_for(rt);
        let path = cache.path().join(RESULTS).join(&name);
        let with_prev = version_at_least(list, V0_4_0).map_err(ctx)?;
        let (mut slot, paths) = self
            .find_and_open(Op::Del, list, &cache, name, with_prev)
            .await?;
        if let Some(problem) = slot.take_problem() {
            tracing::warn!(error = %ctx(problem), "the cache cannot be used; deleting without prevResult and leaving the cache as it is");
        }
        let cached = if with_prev {
            match slot
                .take_read()
                .and_then(|bytes| Self::parse_cached(list, bytes))
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %ctx(e.at_path(&path)), "cached result unusable; deleting without prevResult");
                    None
                }
            }
        } else {
            None
        };
        let res = async {
            let plan = self.build_found(Op::Del, list, Some(rt), cached, None, paths)?;
            for inv in plan.invocations() {
                self.run(inv, &inv.stdin(), net).await?;
            }
            Ok(())
        }
        .await;
        match res {
            Ok(()) => {
                if let Err(e) = slot.finish(Finish::Remove).await {
                    tracing::warn!(error = %ctx(e), "could not remove the cache entry");
                }
                Ok(())
            }
            Err(e) => {
                let _ = slot.finish(Finish::Keep).await;
                Err(e)
            }
        }
    }

    /// ADD of a single plugin configuration (a `.conf`), named and versioned
    /// by its own `name` and `cniVersion`; the plugin's JSON is cached as the
    /// config (libcni's `AddNetwork`).
    ///
    /// # Errors
    ///
    /// As [`add_network_list`](Self::add_network_list).
    ///
    /// # Cancellation
    ///
    /// As [`add_network_list`](Self::add_network_list).
    pub async fn add_network(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        self.add_network_list(&NetworkConfigList::single(plugin), rt)
            .await
    }

    /// CHECK of a single plugin configuration (libcni's `CheckNetwork`; no
    /// `disableCheck`).
    ///
    /// # Errors
    ///
    /// As [`check_network_list`](Self::check_network_list).
    ///
    /// # Cancellation
    ///
    /// As [`check_network_list`](Self::check_network_list).
    pub async fn check_network(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        self.check_network_list(&NetworkConfigList::single(plugin), rt)
            .await
    }

    /// DEL of a single plugin configuration (libcni's `DelNetwork`).
    ///
    /// # Errors
    ///
    /// As [`del_network_list`](Self::del_network_list).
    ///
    /// # Cancellation
    ///
    /// As [`del_network_list`](Self::del_network_list).
    pub async fn del_network(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        self.del_network_list(&NetworkConfigList::single(plugin), rt)
            .await
    }
}
