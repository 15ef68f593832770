//! `cnitool validate [NETWORK]` and `cnitool version PLUGIN`.
//!
//! `validate` does what libcni's `ValidateNetworkList` does for each
//! network (or the one named): every plugin is found and its `VERSION`
//! reply supports the network's `cniVersion`. It also checks each plugin's
//! IPAM plugin (`ipam.type`), which libcni does not, and shows every
//! plugin's binary and supported versions. Exit status 1 when a network is
//! not valid.

use anyhow::Result;
use libcni::{Cni, ConfigLoader, NetworkConfigList};
use serde::Serialize;

use crate::explain::{Skipped, with_causes};
use crate::opts::Globals;
use crate::schema::json_line;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    networks: Vec<NetworkCheck>,
    skipped: Vec<Skipped>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkCheck {
    name: String,
    cni_version: String,
    source: Option<String>,
    valid: bool,
    /// The capabilities the plugins declare.
    capabilities: Vec<String>,
    plugins: Vec<PluginCheck>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PluginCheck {
    #[serde(rename = "type")]
    plugin_type: String,
    /// `plugin`, or `ipam` for a plugin's IPAM plugin.
    role: &'static str,
    path: Option<String>,
    supported_versions: Vec<String>,
    /// Why it cannot serve the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn check_plugin(
    cni: &Cni,
    plugin_type: &str,
    role: &'static str,
    version: &str,
) -> PluginCheck {
    let path = libcni::exec::find_plugin(plugin_type, cni.plugin_dirs())
        .ok()
        .map(|p| p.display().to_string());
    let (supported, error) = match cni.version_info(plugin_type).await {
        Ok(vi) if vi.supports(version) => (vi.supported_versions().to_vec(), None),
        Ok(vi) => (
            vi.supported_versions().to_vec(),
            Some(format!("does not support cniVersion {version:?}")),
        ),
        Err(e) => (Vec::new(), Some(with_causes(e.kind().to_string(), &e))),
    };
    PluginCheck {
        plugin_type: plugin_type.to_owned(),
        role,
        path,
        supported_versions: supported,
        error,
    }
}

async fn check_network(cni: &Cni, net: &NetworkConfigList) -> NetworkCheck {
    let version = if net.cni_version().is_empty() {
        "0.1.0"
    } else {
        net.cni_version()
    };
    let mut plugins = Vec::new();
    for p in net.plugins() {
        plugins.push(check_plugin(cni, p.plugin_type(), "plugin", version).await);
        if let Some(ipam) = p.ipam_type() {
            plugins.push(check_plugin(cni, &ipam, "ipam", version).await);
        }
    }
    NetworkCheck {
        name: net.name().to_owned(),
        cni_version: net.cni_version().to_owned(),
        source: net.source().map(|p| p.display().to_string()),
        valid: plugins.iter().all(|p| p.error.is_none()),
        capabilities: net.capabilities().into_iter().map(str::to_owned).collect(),
        plugins,
    }
}

impl Validation {
    /// Validates the named network, or every network of the directory.
    pub async fn run(g: &Globals, network: Option<&str>) -> Result<Validation> {
        let cni = g.cni();
        let (nets, skipped) = match network {
            Some(name) => {
                let found = crate::ops::find(g, name)?;
                (vec![found.list], found.skipped)
            }
            None => {
                let loaded = ConfigLoader::new(g.conf_dir()).load_all()?;
                let skipped = loaded.skipped().iter().map(Skipped::new).collect();
                (loaded.into_parts().0, skipped)
            }
        };
        let mut networks = Vec::new();
        for n in &nets {
            networks.push(check_network(&cni, n).await);
        }
        Ok(Validation { networks, skipped })
    }

    pub fn valid(&self) -> bool {
        self.networks.iter().all(|n| n.valid)
    }

    pub fn json(&self) -> String {
        json_line("validate", self)
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        for n in &self.networks {
            out.push_str(&format!(
                "{} (cniVersion {:?}{}): {}\n",
                n.name,
                n.cni_version,
                n.source
                    .as_deref()
                    .map(|s| format!(", {s}"))
                    .unwrap_or_default(),
                if n.valid { "valid" } else { "NOT valid" }
            ));
            for p in &n.plugins {
                let what = if p.role == "ipam" {
                    format!("  ipam {}", p.plugin_type)
                } else {
                    format!("  {}", p.plugin_type)
                };
                let path = p.path.as_deref().unwrap_or("not found");
                match &p.error {
                    None => out.push_str(&format!(
                        "{what}: {path}: ok (supports {})\n",
                        p.supported_versions.join(", ")
                    )),
                    Some(e) if p.supported_versions.is_empty() => {
                        out.push_str(&format!("{what}: {e}\n"))
                    }
                    Some(e) => out.push_str(&format!(
                        "{what}: {path}: {e} (supports {})\n",
                        p.supported_versions.join(", ")
                    )),
                }
            }
            if !n.capabilities.is_empty() {
                out.push_str(&format!("  capabilities: {}\n", n.capabilities.join(", ")));
            }
        }
        if self.networks.is_empty() {
            out.push_str("no network to validate\n");
        }
        for s in &self.skipped {
            out.push_str(&format!(
                "skipped {}: {}\n",
                s.file.as_deref().unwrap_or("-"),
                s.reason
            ));
        }
        out
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginVersion {
    plugin: String,
    path: String,
    /// The `cniVersion` of the plugin's reply.
    cni_version: String,
    supported_versions: Vec<String>,
}

impl PluginVersion {
    /// Runs the plugin's `VERSION`.
    pub async fn run(g: &Globals, plugin: &str) -> Result<PluginVersion> {
        let cni = g.cni();
        let vi = cni.version_info(plugin).await?;
        let path = libcni::exec::find_plugin(plugin, cni.plugin_dirs())?;
        Ok(PluginVersion {
            plugin: plugin.to_owned(),
            path: path.display().to_string(),
            cni_version: vi.cni_version().to_owned(),
            supported_versions: vi.supported_versions().to_vec(),
        })
    }

    pub fn json(&self) -> String {
        json_line("version", self)
    }

    pub fn human(&self) -> String {
        format!(
            "{} ({}): supports CNI {}\n",
            self.plugin,
            self.path,
            self.supported_versions.join(", ")
        )
    }
}
