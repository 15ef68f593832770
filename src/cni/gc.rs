//! GC and STATUS (spec 1.1.0).

use std::os::fd::AsFd;

use tracing::Instrument;

use super::*;

impl<E: PluginExec + 'static> Cni<E> {
    /// Garbage-collects a network (libcni 1.3's `GCNetworkList`): every
    /// cached attachment of the network that is not in `valid` is deleted
    /// (DEL with the current config and the netns, `CNI_ARGS` and capability
    /// arguments cached at ADD, in file-name order); then, from spec 1.1.0
    /// on, every plugin gets `GC` in order, with `cni.dev/valid-attachments`
    /// (and the misspelt `cni.dev/attachments` libcni also sends) when
    /// `valid` is given. `None` means no attachment is valid: every one of
    /// the network is deleted, and plugins get no valid-attachments key.
    /// Failures do not stop the collection.
    ///
    /// With `disableGC` nothing happens. Cache files that are not valid
    /// entries are skipped (and listed in the report). Afterwards lock files
    /// without an entry, and temp files of crashed writers, are swept.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Gc`] listing every failure: each stale attachment whose
    /// DEL failed, each plugin whose GC failed, an unusable cache.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group; what
    /// was deleted stays deleted.
    pub async fn gc_network_list(
        &self,
        list: &NetworkConfigList,
        valid: Option<&[AttachmentId]>,
    ) -> Result<GcReport, Error> {
        let span = op_span(Op::Gc, list.name(), None);
        let started = Instant::now();
        let res = self.gc_inner(list, valid).instrument(span.clone()).await;
        self.observe_op(&span, Op::Gc, list.name(), None, started, &res);
        res
    }

    async fn gc_inner(
        &self,
        list: &NetworkConfigList,
        valid: Option<&[AttachmentId]>,
    ) -> Result<GcReport, Error> {
        let net = list.name();
        let mut report = GcReport::default();
        if list.disable_gc() {
            tracing::debug!("disableGC is set; not collecting");
            return Ok(report);
        }
        let mut failures = Vec::new();
        let dir = self.cache.clone();
        match blocking(move || cache::attachments(&dir, None)).await {
            Ok((atts, skipped)) => {
                for e in &skipped {
                    tracing::warn!(error = %e, "skipping a cache file that is not a valid entry");
                }
                report.skipped = skipped;
                // A set, so that a runtime passing all its attachments does
                // not make GC quadratic in them.
                let keep: Option<std::collections::HashSet<&AttachmentId>> =
                    valid.map(|v| v.iter().collect());
                for att in atts.into_iter().filter(|a| a.network == net) {
                    let id = AttachmentId::new(att.container_id.clone(), att.ifname.clone());
                    if keep.as_ref().is_some_and(|k| k.contains(&id)) {
                        continue;
                    }
                    let rt = att.runtime_config();
                    match self.del_inner(list, &rt).await {
                        Ok(()) => report.deleted.push(id),
                        Err(error) => failures.push(GcFailure::StaleAttachment {
                            container_id: id.container_id().to_owned(),
                            ifname: id.ifname().to_owned(),
                            error,
                        }),
                    }
                }
            }
            Err(error) => failures.push(GcFailure::Cache {
                error: error.in_network(net).during(Op::Gc),
            }),
        }
        if at_least_1_1(list) {
            // Every binary is looked up (off the reactor) first; one that is
            // missing fails that plugin's GC only.
            let mut lookups: Vec<Option<Error>> = Vec::new();
            let mut paths = self.find_all(list).await.into_iter();
            let plan = self.build_with(Op::Gc, list, None, None, valid, |_| {
                match paths.next().expect("one lookup per plugin") {
                    Ok(path) => {
                        lookups.push(None);
                        Ok(path)
                    }
                    Err(e) => {
                        lookups.push(Some(e));
                        Ok(PathBuf::new())
                    }
                }
            })?;
            for inv in plan.invocations() {
                let res = match lookups[inv.index()].take() {
                    Some(e) => Err(e
                        .for_plugin(inv.plugin_type())
                        .in_network(net)
                        .during(Op::Gc)),
                    None => self.run(inv, &inv.stdin(), net).await.map(|_| ()),
                };
                match res {
                    Ok(()) => report.plugins.push(inv.plugin_type().to_owned()),
                    Err(error) => failures.push(GcFailure::Plugin {
                        plugin: inv.plugin_type().to_owned(),
                        error,
                    }),
                }
            }
        }
        let dir = self.cache.clone();
        let (locks, temps) = blocking(move || -> Result<(usize, usize), Error> {
            let Some(cache) = dir.open(false)? else {
                return Ok((0, 0));
            };
            let results = cache.subdir(RESULTS, false).ok().flatten();
            let locks = cache::sweep_locks(&cache, results.as_ref().map(|r| r.as_fd()))?;
            Ok((locks, cache.sweep_temp_files()))
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not sweep the cache's lock and temp files");
            (0, 0)
        });
        report.swept_lock_files = locks;
        report.swept_temp_files = temps;
        if failures.is_empty() {
            Ok(report)
        } else {
            Err(Error::new(ErrorKind::Gc { failures })
                .in_network(net)
                .during(Op::Gc))
        }
    }

    /// Asks a network's plugins whether they are ready (libcni 1.3's
    /// `GetStatusNetworkList`): below spec 1.1.0 (or with an unparsable
    /// version) nothing runs and the answer is yes; otherwise each plugin
    /// gets `STATUS` in order and the first error is returned. A plugin
    /// reporting code 50 or 51 ([`ErrorCode::NotAvailable`],
    /// [`ErrorCode::LimitedConnectivity`](crate::ErrorCode)) means the
    /// network is not ready (see [`Error::is_not_ready`]).
    ///
    /// STATUS takes no attachment lock: it answers while other operations
    /// on the network run.
    ///
    /// # Errors
    ///
    /// The plugin lookup and run errors; [`ErrorKind::Plugin`] for a plugin
    /// that answers "not ready".
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group.
    ///
    /// [`ErrorCode::NotAvailable`]: crate::ErrorCode
    pub async fn status_network_list(&self, list: &NetworkConfigList) -> Result<(), Error> {
        let span = op_span(Op::Status, list.name(), None);
        let started = Instant::now();
        let res = async {
            if !at_least_1_1(list) {
                return Ok(());
            }
            let plan = self.build_async(Op::Status, list, None, None, None).await?;
            for inv in plan.invocations() {
                self.run(inv, &inv.stdin(), list.name()).await?;
            }
            Ok(())
        }
        .instrument(span.clone())
        .await;
        self.observe_op(&span, Op::Status, list.name(), None, started, &res);
        res
    }
}
