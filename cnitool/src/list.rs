//! `cnitool list`: every network of the configuration directory in load
//! order, the default marked, each plugin chain with where its binaries
//! are, and every skipped file with the reason. Runs no plugin.
//!
//! ```text
//! 3 networks in /etc/cni/net.d (* = default: the first that loads), plugins from /opt/cni/bin
//! * multus  0.3.1  multus                      00-multus.conf
//!   calico  1.0.0  calico -> portmap           10-calico.conflist   plugin `calico` not found
//!   mynet   1.0.0  bridge (host-local)         20-mynet.conflist
//! 1 file skipped:
//!   05-broken.conflist: invalid JSON at line 3, column 3
//! ```

use std::path::{Path, PathBuf};

use anyhow::Result;
use libcni::{ConfigLoader, NetworkConfigList};
use serde::Serialize;

use crate::explain::{Skipped, with_causes};
use crate::opts::Globals;
use crate::schema::json_line;

/// The report `cnitool list` prints.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    conf_dir: String,
    plugin_dirs: Vec<String>,
    default_network: Option<String>,
    networks: Vec<Network>,
    skipped: Vec<Skipped>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Network {
    name: String,
    cni_version: String,
    source: Option<String>,
    default: bool,
    /// Every plugin binary (and IPAM plugin binary) was found.
    ready: bool,
    plugins: Vec<Plugin>,
    capabilities: Vec<String>,
    disable_check: bool,
    disable_gc: bool,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Plugin {
    #[serde(rename = "type")]
    plugin_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The binary that would run, or null.
    path: Option<String>,
    /// Why it would not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    /// The `ipam.type`, when the plugin delegates to an IPAM plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    ipam: Option<Box<Plugin>>,
}

fn lookup(plugin_type: &str, dirs: &[PathBuf]) -> (Option<String>, Option<String>) {
    match libcni::exec::find_plugin(plugin_type, dirs) {
        Ok(p) => (Some(p.display().to_string()), None),
        Err(e) => (None, Some(with_causes(e.kind().to_string(), &e))),
    }
}

fn network(net: &NetworkConfigList, default: bool, dirs: &[PathBuf]) -> Network {
    let plugins: Vec<Plugin> = net
        .plugins()
        .iter()
        .map(|p| {
            let (path, problem) = lookup(p.plugin_type(), dirs);
            let ipam = p.ipam_type().map(|t| {
                let (path, problem) = lookup(&t, dirs);
                Box::new(Plugin {
                    plugin_type: t,
                    name: None,
                    path,
                    problem,
                    ipam: None,
                })
            });
            Plugin {
                plugin_type: p.plugin_type().to_owned(),
                name: Some(p.name()).filter(|n| !n.is_empty()).map(str::to_owned),
                path,
                problem,
                ipam,
            }
        })
        .collect();
    let ready = plugins
        .iter()
        .all(|p| p.path.is_some() && p.ipam.as_ref().is_none_or(|i| i.path.is_some()));
    Network {
        name: net.name().to_owned(),
        cni_version: net.cni_version().to_owned(),
        source: net.source().map(|p| p.display().to_string()),
        default,
        ready,
        plugins,
        capabilities: net.capabilities().into_iter().map(str::to_owned).collect(),
        disable_check: net.disable_check(),
        disable_gc: net.disable_gc(),
    }
}

impl Listing {
    pub fn new(g: &Globals) -> Result<Listing> {
        let dir = g.conf_dir();
        let dirs = g.plugin_dirs();
        let loaded = ConfigLoader::new(&dir).load_all()?;
        let networks: Vec<Network> = loaded
            .networks()
            .iter()
            .enumerate()
            .map(|(i, n)| network(n, i == 0, &dirs))
            .collect();
        Ok(Listing {
            conf_dir: dir.display().to_string(),
            plugin_dirs: dirs.iter().map(|d| d.display().to_string()).collect(),
            default_network: networks.first().map(|n| n.name.clone()),
            networks,
            skipped: loaded.skipped().iter().map(Skipped::new).collect(),
        })
    }

    pub fn json(&self) -> String {
        json_line("list", self)
    }

    pub fn human(&self) -> String {
        let short = |p: &str| -> String {
            Path::new(p)
                .strip_prefix(&self.conf_dir)
                .map(|r| r.display().to_string())
                .unwrap_or_else(|_| p.to_owned())
        };
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let mut out = format!(
            "{} in {} (* = default: the first that loads), plugins from {}\n",
            plural(self.networks.len(), "network"),
            self.conf_dir,
            if self.plugin_dirs.is_empty() {
                "nowhere (set CNI_PATH or --plugin-dir)".to_owned()
            } else {
                self.plugin_dirs.join(":")
            }
        );
        if self.networks.is_empty() && self.skipped.is_empty() {
            out.push_str(&if Path::new(&self.conf_dir).is_dir() {
                format!(
                    "  no .conf, .conflist or .json file in {}: write one, or point --conf-dir (NETCONFPATH) at your configs\n",
                    self.conf_dir
                )
            } else {
                format!(
                    "  {} is not a directory: point --conf-dir (NETCONFPATH) at your configs\n",
                    self.conf_dir
                )
            });
        }
        let rows: Vec<[String; 4]> = self
            .networks
            .iter()
            .map(|n| {
                let chain: Vec<String> = n
                    .plugins
                    .iter()
                    .map(|p| match &p.ipam {
                        Some(i) => format!("{} ({})", p.plugin_type, i.plugin_type),
                        None => p.plugin_type.clone(),
                    })
                    .collect();
                let problems: Vec<String> = n
                    .plugins
                    .iter()
                    .flat_map(|p| std::iter::once(p).chain(p.ipam.as_deref()))
                    .filter_map(|p| p.problem.as_ref().map(|why| (p, why)))
                    .map(|(p, why)| match why.strip_prefix("plugin ") {
                        Some(_) => why.clone(),
                        None => format!("plugin `{}`: {why}", p.plugin_type),
                    })
                    .collect();
                [
                    n.name.clone(),
                    if n.cni_version.is_empty() {
                        "-".to_owned()
                    } else {
                        n.cni_version.clone()
                    },
                    chain.join(" -> "),
                    match &n.source {
                        Some(s) => short(s),
                        None => "-".to_owned(),
                    } + &if problems.is_empty() {
                        String::new()
                    } else {
                        format!("   {}", problems.join("; "))
                    },
                ]
            })
            .collect();
        let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        let (w0, w1, w2) = (width(0), width(1), width(2));
        for (n, r) in self.networks.iter().zip(&rows) {
            let line = format!(
                "{} {:w0$}  {:w1$}  {:w2$}  {}",
                if n.default { "*" } else { " " },
                r[0],
                r[1],
                r[2],
                r[3]
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if !self.skipped.is_empty() {
            out.push_str(&format!(
                "{} skipped:\n",
                plural(self.skipped.len(), "file")
            ));
            for s in &self.skipped {
                out.push_str(&format!(
                    "  {}: {}\n",
                    s.file.as_deref().map(short).unwrap_or_default(),
                    s.reason
                ));
            }
        }
        out
    }
}
