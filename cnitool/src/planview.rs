//! `cnitool plan OP NETWORK [NETNS]` (and the older `--dry-run`): what an
//! operation would run, without running anything: each plugin's binary,
//! its CNI variables, its exact stdin, and where its `prevResult` comes
//! from ("from plugin N" for ADD, "from the cache" for CHECK and DEL).
//!
//! ```text
//! ADD network "mynet" (cniVersion "1.0.0"): 2 plugin runs; nothing was run
//!   container cnitool-0e6b52a07b770f1e750c, ifname eth0, netns /var/run/netns/foo
//! 1. bridge: /usr/lib/cni/bridge
//!    CNI_COMMAND=ADD
//!    ...
//!    stdin: {"cniVersion":"1.0.0","name":"mynet","type":"bridge",...}
//!    prevResult: none
//! 2. portmap: /usr/lib/cni/portmap
//!    ...
//!    prevResult: from plugin 1 (bridge), added to stdin when it has run
//! ```

use std::collections::BTreeMap;

use libcni::plan::PrevResult;
use libcni::{Invocation, Op, Plan, RuntimeConfig};
use serde::Serialize;

use crate::explain::Skipped;
use crate::schema::{Attachment, json_line};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanJson<'a> {
    command: &'a str,
    network: &'a str,
    cni_version: &'a str,
    /// ADD, CHECK, DEL: the attachment.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    attachment: Option<Attachment<'a>>,
    invocations: Vec<Step<'a>>,
    skipped: &'a [Skipped],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Step<'a> {
    /// 1-based position in execution order.
    step: usize,
    /// The plugin's 0-based index in the network's list.
    index: usize,
    #[serde(rename = "type")]
    plugin_type: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    path: String,
    /// The CNI variables set over the caller's environment.
    env: BTreeMap<&'a str, &'a str>,
    /// The stdin, parsed (as a string if it is not JSON).
    stdin: serde_json::Value,
    /// `null`, `{"from": "cache"}` or `{"from": "plugin", "step": N}`.
    prev_result: Option<Prev>,
}

#[derive(Serialize)]
#[serde(tag = "from", rename_all = "camelCase")]
enum Prev {
    Cache,
    Plugin { step: usize },
}

fn prev(inv: &Invocation, step: usize) -> Option<Prev> {
    match inv.prev_result() {
        PrevResult::Cached => Some(Prev::Cache),
        PrevResult::PreviousPlugin => Some(Prev::Plugin { step: step - 1 }),
        _ => None,
    }
}

fn attachment(plan: &Plan, rt: &RuntimeConfig) -> bool {
    matches!(plan.op(), Op::Add | Op::Check | Op::Del) && !rt.container_id().is_empty()
}

/// The plan as one JSON line (kind `plan`).
pub fn json(plan: &Plan, rt: &RuntimeConfig, skipped: &[Skipped]) -> String {
    let steps = plan
        .invocations()
        .iter()
        .enumerate()
        .map(|(i, inv)| {
            let stdin = inv.stdin();
            Step {
                step: i + 1,
                index: inv.index(),
                plugin_type: inv.plugin_type(),
                name: inv.plugin_name(),
                path: inv.path().display().to_string(),
                env: inv
                    .env()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                stdin: serde_json::from_slice(&stdin).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&stdin).into_owned())
                }),
                prev_result: prev(inv, i + 1),
            }
        })
        .collect();
    let body = PlanJson {
        command: plan.op().as_str(),
        network: plan.network(),
        cni_version: plan.cni_version(),
        attachment: attachment(plan, rt).then(|| Attachment::of(rt)),
        invocations: steps,
        skipped,
    };
    json_line("plan", &body)
}

/// The plan for a person.
pub fn human(plan: &Plan, rt: &RuntimeConfig) -> String {
    let n = plan.invocations().len();
    let mut out = format!(
        "{} network {:?} (cniVersion {:?}): {} plugin run{}; nothing was run\n",
        plan.op(),
        plan.network(),
        plan.cni_version(),
        n,
        if n == 1 { "" } else { "s" }
    );
    if attachment(plan, rt) {
        out.push_str(&format!(
            "  container {}, ifname {}, netns {}\n",
            rt.container_id(),
            rt.ifname(),
            rt.netns()
        ));
    }
    if n == 0 {
        out.push_str(match plan.op() {
            Op::Check => "  (the network sets disableCheck: CHECK runs no plugin)\n",
            Op::Gc => "  (GC runs no plugin: the network sets disableGC or is older than 1.1.0; stale cached attachments are still deleted)\n",
            Op::Status => "  (STATUS runs no plugin below cniVersion 1.1.0)\n",
            _ => "",
        });
    }
    let types: Vec<&str> = plan
        .invocations()
        .iter()
        .map(Invocation::plugin_type)
        .collect();
    for (i, inv) in plan.invocations().iter().enumerate() {
        out.push_str(&format!(
            "{}. {}: {}\n",
            i + 1,
            inv.plugin_type(),
            inv.path().display()
        ));
        for (k, v) in inv.env() {
            out.push_str(&format!("   {k}={v}\n"));
        }
        out.push_str(&format!(
            "   stdin: {}\n",
            String::from_utf8_lossy(&inv.stdin())
        ));
        let from = match prev(inv, i + 1) {
            Some(Prev::Cache) => {
                "from the cache (the attachment's cached result, in stdin above)".to_owned()
            }
            Some(Prev::Plugin { step }) => format!(
                "from plugin {step} ({}), added to stdin when it has run",
                types[step - 1]
            ),
            None => match plan.op() {
                Op::Del | Op::Check => "none (no cached result)".to_owned(),
                _ => "none".to_owned(),
            },
        };
        out.push_str(&format!("   prevResult: {from}\n"));
    }
    out
}
