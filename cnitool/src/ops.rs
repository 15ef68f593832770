//! `add`, `check`, `del`, `gc` and `status`: the reference cnitool's
//! commands, with its output (the result's JSON, indented by four spaces,
//! for `add`; nothing for the others) unless `--json` is given.

use std::path::Path;

use anyhow::{Context, Result};
use libcni::{
    AttachmentId, Cni, ConfigLoader, ErrorKind, GcReport, NetworkConfigList, Op, RuntimeConfig,
};
use serde::Serialize;

use crate::explain::{Skipped, Usage};
use crate::opts::Globals;
use crate::schema::{Attachment, json_line};

/// A network looked up by name, and the files skipped on the way.
pub struct Found {
    pub list: NetworkConfigList,
    pub skipped: Vec<Skipped>,
}

/// Prints one line per skipped file on stderr (human output only).
pub fn print_skipped(skipped: &[libcni::Error], json: bool) {
    if json {
        return;
    }
    for e in skipped {
        eprintln!("cnitool: skipped config file {e}");
    }
}

/// Looks the network up in the configuration directory. The files skipped
/// are printed (human output) or returned (JSON), also when it fails.
pub fn find(g: &Globals, net: &str) -> Result<Found> {
    match ConfigLoader::new(g.conf_dir()).find_network(net) {
        Ok(found) => {
            let (list, skipped) = found.into_parts();
            print_skipped(&skipped, g.json);
            Ok(Found {
                list,
                skipped: skipped.iter().map(Skipped::new).collect(),
            })
        }
        Err(e) => {
            if let ErrorKind::NetworkNotFound { skipped, .. }
            | ErrorKind::NoValidConfig { skipped, .. } = e.kind()
            {
                print_skipped(skipped, g.json);
            }
            Err(e.into())
        }
    }
}

/// The attachments to keep in `gc`.
pub fn valid_set(valid: &[AttachmentId], file: Option<&Path>) -> Result<Option<Vec<AttachmentId>>> {
    let mut set = valid.to_vec();
    if let Some(f) = file {
        set.extend(read_valid_file(f)?);
    }
    Ok((!set.is_empty() || file.is_some()).then_some(set))
}

/// The attachments in a `--valid-file`.
fn read_valid_file(path: &Path) -> Result<Vec<AttachmentId>> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "containerID")]
        container_id: String,
        ifname: String,
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("reading --valid-file {}", path.display()))?;
    let entries: Vec<Entry> = serde_json::from_slice(&bytes).map_err(|e| {
        Usage(format!(
            "--valid-file {}: expected a JSON array of {{\"containerID\": .., \"ifname\": ..}}: {e}",
            path.display()
        ))
    })?;
    Ok(entries
        .into_iter()
        .map(|e| AttachmentId::new(e.container_id, e.ifname))
        .collect())
}

/// One of the five operations, ready to run.
pub struct Job {
    pub cni: Cni,
    pub found: Found,
    pub rt: RuntimeConfig,
    pub op: Op,
    pub valid: Option<Vec<AttachmentId>>,
}

/// The JSON object an operation prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Done<'a> {
    command: &'a str,
    network: &'a str,
    /// ADD, CHECK, DEL: the attachment.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    attachment: Option<Attachment<'a>>,
    /// ADD: the result, in the network's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    /// GC: what was collected.
    #[serde(skip_serializing_if = "Option::is_none")]
    gc: Option<GcDone>,
    skipped: &'a [Skipped],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GcDone {
    deleted: Vec<Attached>,
    plugins: Vec<String>,
    skipped_cache_files: Vec<Skipped>,
    swept_lock_files: usize,
    swept_temp_files: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attached {
    container_id: String,
    ifname: String,
}

impl GcDone {
    fn new(r: &GcReport) -> GcDone {
        GcDone {
            deleted: r
                .deleted
                .iter()
                .map(|id| Attached {
                    container_id: id.container_id().to_owned(),
                    ifname: id.ifname().to_owned(),
                })
                .collect(),
            plugins: r.plugins.clone(),
            skipped_cache_files: r.skipped.iter().map(Skipped::new).collect(),
            swept_lock_files: r.swept_lock_files,
            swept_temp_files: r.swept_temp_files,
        }
    }
}

/// Runs the job; returns what to print on stdout.
pub async fn execute(job: &Job, json: bool) -> Result<Vec<u8>> {
    let list = &job.found.list;
    let mut done = Done {
        command: job.op.as_str(),
        network: list.name(),
        attachment: matches!(job.op, Op::Add | Op::Check | Op::Del)
            .then(|| Attachment::of(&job.rt)),
        result: None,
        gc: None,
        skipped: &job.found.skipped,
    };
    match job.op {
        Op::Add => {
            let result = job.cni.add_network_list(list, &job.rt).await?;
            if !json {
                // As the reference: indented by four spaces, no newline.
                return Ok(result.to_json_pretty());
            }
            done.result = serde_json::from_slice(&result.to_json()).ok();
        }
        Op::Check => job.cni.check_network_list(list, &job.rt).await?,
        Op::Del => job.cni.del_network_list(list, &job.rt).await?,
        Op::Gc => {
            let report = job.cni.gc_network_list(list, job.valid.as_deref()).await?;
            if !json {
                for id in &report.deleted {
                    eprintln!("cnitool: deleted stale attachment {id}");
                }
                for e in &report.skipped {
                    eprintln!("cnitool: skipped cache file {e}");
                }
            }
            done.gc = Some(GcDone::new(&report));
        }
        Op::Status => {
            job.cni.status_network_list(list).await?;
        }
        other => unreachable!("{other} is not a cnitool command"),
    }
    Ok(if json {
        json_line("done", &done).into_bytes()
    } else {
        Vec::new()
    })
}
