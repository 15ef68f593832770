//! The global options: each flag, or else the reference cnitool's
//! environment variable, or else the default.
//!
//! | flag             | environment        | default                  |
//! |------------------|--------------------|--------------------------|
//! | `--conf-dir`     | `NETCONFPATH`      | `/etc/cni/net.d`         |
//! | `--plugin-dir`   | `CNI_PATH`         | none (plugins not found) |
//! | `--cache-dir`    | `CNI_CACHE_DIR`    | `/var/lib/cni`           |
//! | `--ifname`       | `CNI_IFNAME`       | `eth0`                   |
//! | `--args`         | `CNI_ARGS`         | none                     |
//! | `--cap-args`     | `CAP_ARGS`         | none                     |
//! | `--container-id` | `CNI_CONTAINERID`  | derived from the netns   |
//! | `--timeout`      | `CNITOOL_TIMEOUT`  | libcni's (no limit)      |
//!
//! The environment is read as the reference reads it: an empty
//! `NETCONFPATH`, `CNI_ARGS`, `CAP_ARGS`, `CNI_CONTAINERID` or
//! `CNI_CACHE_DIR` counts as unset, while an empty `CNI_IFNAME` is used as
//! is (the default applies only when it is unset).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use libcni::{Cni, RuntimeConfig};
use sha2::{Digest, Sha512};

/// The default configuration directory.
pub const DEFAULT_NET_DIR: &str = "/etc/cni/net.d";

/// The flags every command accepts.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Globals {
    /// The network configuration directory [env: NETCONFPATH] [default:
    /// /etc/cni/net.d].
    #[arg(long, global = true, value_name = "DIR")]
    pub conf_dir: Option<PathBuf>,
    /// A plugin directory; repeat it or separate with `:` for several,
    /// searched in order [env: CNI_PATH].
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub plugin_dirs: Vec<String>,
    /// The result cache directory [env: CNI_CACHE_DIR] [default:
    /// /var/lib/cni].
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The interface name inside the container [env: CNI_IFNAME] [default:
    /// eth0].
    #[arg(long, global = true, value_name = "NAME")]
    pub ifname: Option<String>,
    /// Extra arguments for the plugins, `K=V;K2=V2` [env: CNI_ARGS].
    #[arg(long = "args", global = true, value_name = "K=V;...")]
    pub cni_args: Option<String>,
    /// Capability arguments, a JSON object, e.g.
    /// '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'
    /// [env: CAP_ARGS].
    #[arg(long, global = true, value_name = "JSON")]
    pub cap_args: Option<String>,
    /// The container id [env: CNI_CONTAINERID] [default: `cnitool-` and a
    /// hash of the netns path, as the reference cnitool derives it].
    #[arg(long, global = true, value_name = "ID")]
    pub container_id: Option<String>,
    /// Longest time one plugin may run, e.g. `30s`, `500ms`, `2m`, `1h 30m`
    /// (plain numbers are seconds); its process group is then killed [env:
    /// CNITOOL_TIMEOUT].
    #[arg(long, global = true, env = "CNITOOL_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Print JSON for scripts instead of text: one object per line, schema
    /// `cnitool/v1` (see the README). Errors too, on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Globals {
    /// The configuration directory.
    pub fn conf_dir(&self) -> PathBuf {
        self.conf_dir.clone().unwrap_or_else(|| {
            PathBuf::from(env_nonempty("NETCONFPATH").unwrap_or_else(|| DEFAULT_NET_DIR.to_owned()))
        })
    }

    /// The plugin directories, in search order; empty elements are ignored.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        let joined = if self.plugin_dirs.is_empty() {
            std::env::var("CNI_PATH").unwrap_or_default()
        } else {
            self.plugin_dirs.join(":")
        };
        joined
            .split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect()
    }

    /// Where the plugin directories came from, for messages.
    pub fn plugin_dirs_source(&self) -> &'static str {
        if self.plugin_dirs.is_empty() {
            "CNI_PATH"
        } else {
            "--plugin-dir"
        }
    }

    /// The cache directory, when set.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache_dir
            .clone()
            .or_else(|| env_nonempty("CNI_CACHE_DIR").map(PathBuf::from))
    }

    /// A `Cni` over the plugin directories, cache directory and timeout.
    pub fn cni(&self) -> Cni {
        let mut cni = Cni::new(self.plugin_dirs());
        if let Some(dir) = self.cache_dir() {
            cni = cni.with_cache_dir(dir);
        }
        if let Some(t) = self.timeout {
            cni = cni.with_timeout(t);
        }
        cni
    }

    /// The attachment for a netns path: container id, ifname, `CNI_ARGS`
    /// and capability arguments.
    pub fn runtime_config(&self, netns: &str) -> Result<RuntimeConfig> {
        let caps = match self.cap_args.clone().or_else(|| env_nonempty("CAP_ARGS")) {
            Some(caps) => {
                let flag = if self.cap_args.is_some() {
                    "--cap-args"
                } else {
                    "CAP_ARGS"
                };
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&caps)
                    .with_context(|| format!("{flag} must be a JSON object, got {caps:?}"))?
            }
            None => serde_json::Map::new(),
        };
        let args = match self.cni_args.clone().or_else(|| env_nonempty("CNI_ARGS")) {
            Some(a) => parse_cni_args(&a)?,
            None => Vec::new(),
        };
        let ifname = match &self.ifname {
            Some(i) => i.clone(),
            None => std::env::var("CNI_IFNAME").unwrap_or_else(|_| "eth0".to_owned()),
        };
        let netns = absolute(netns)?;
        let netns = netns
            .to_str()
            .ok_or_else(|| anyhow!("netns path {} is not UTF-8", netns.display()))?
            .to_owned();
        let cid = self
            .container_id
            .clone()
            .or_else(|| env_nonempty("CNI_CONTAINERID"))
            .unwrap_or_else(|| container_id(&netns));
        Ok(RuntimeConfig::new(cid, netns, ifname)
            .with_args(args)
            .with_capability_args(caps))
    }
}

/// A `--timeout`: a plain number of seconds (`30`, `0.5`) or a `humantime`
/// duration (`30s`, `500ms`, `2m`, `1h 30m`). Zero is refused, and so is a
/// value beyond `Duration`'s range, with an error rather than a panic (up to
/// 18446744073709551615 s is accepted; the library takes a timeout it cannot
/// add to the clock as no limit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let plain = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1;
    let d = if plain {
        match s.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => {
                let secs: f64 = s.parse().map_err(|_| format!("invalid duration {s:?}"))?;
                Duration::try_from_secs_f64(secs)
                    .map_err(|_| format!("duration {s:?} is too large (at most {} s)", u64::MAX))?
            }
        }
    } else {
        humantime::parse_duration(s).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => {
                format!("duration {s:?} is too large (at most {} s)", u64::MAX)
            }
            e => format!("invalid duration {s:?}: {e} (e.g. 30s, 500ms, 2m, or seconds)"),
        })?
    };
    if d.is_zero() {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(d)
}

/// The reference cnitool's `CNI_ARGS` parsing: `;`-separated pairs of
/// exactly two non-empty `=`-separated parts.
pub fn parse_cni_args(args: &str) -> Result<Vec<(String, String)>> {
    args.split(';')
        .map(|pair| {
            let kv: Vec<&str> = pair.split('=').collect();
            match kv.as_slice() {
                [k, v] if !k.is_empty() && !v.is_empty() => Ok(((*k).to_owned(), (*v).to_owned())),
                _ => Err(anyhow!(
                    "invalid CNI_ARGS pair {pair:?}: expected KEY=VALUE pairs separated by `;`"
                )),
            }
        })
        .collect()
}

/// Go's `filepath.Abs`: join with the working directory, then clean
/// lexically (`.` and `..` removed, no symlinks resolved).
pub fn absolute(p: &str) -> Result<PathBuf> {
    let p = Path::new(p);
    let joined = if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()
            .context("cannot determine the working directory")?
            .join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// `cnitool-` + hex of the first 10 bytes of SHA-512 of the netns path.
pub fn container_id(netns: &str) -> String {
    let digest = Sha512::digest(netns.as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_matches_the_reference() {
        assert_eq!(
            container_id("/var/run/netns/foo"),
            "cnitool-0e6b52a07b770f1e750c"
        );
    }

    #[test]
    fn cni_args_need_two_non_empty_parts() {
        assert_eq!(
            parse_cni_args("A=1;B=2").unwrap(),
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "2".to_owned())
            ]
        );
        for bad in ["A=1;", "A=b=c", "=1", "A=", "A"] {
            let e = parse_cni_args(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid CNI_ARGS pair"), "{bad}: {e}");
        }
    }

    #[test]
    fn absolute_cleans_like_go() {
        assert_eq!(
            absolute("/var/run/../run/netns/./x/").unwrap(),
            PathBuf::from("/var/run/netns/x")
        );
        assert_eq!(absolute("/..").unwrap(), PathBuf::from("/"));
    }

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        // Plain numbers are seconds.
        assert_eq!(ok("30"), Duration::from_secs(30));
        assert_eq!(ok(" 30 "), Duration::from_secs(30));
        assert_eq!(ok("0.2"), Duration::from_millis(200));
        // Anything else goes through humantime.
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h 30m"), Duration::from_secs(5400));
        assert_eq!(ok("3days"), Duration::from_secs(3 * 86400));
        // The largest value is accepted (the library then sets no limit).
        assert_eq!(ok("18446744073709551615"), Duration::from_secs(u64::MAX));
        assert_eq!(ok("18446744073709551615s"), Duration::from_secs(u64::MAX));
        for (bad, why) in [
            ("0", "must be positive"),
            ("0s", "must be positive"),
            ("0.0", "must be positive"),
            ("0ms 0s", "must be positive"),
            ("", "invalid duration"),
            (".", "invalid duration"),
            ("1.2.3", "invalid duration"),
            ("5x", "invalid duration"),
            ("-1", "invalid duration"),
            ("ms", "invalid duration"),
            ("1e3", "invalid duration"),
            ("inf", "invalid duration"),
            ("NaN", "invalid duration"),
            // Beyond Duration's range: an error, not a panic.
            ("18446744073709551616", "too large"),
            ("99999999999999999999", "too large"),
            ("99999999999999999999.5", "too large"),
            ("99999999999999999999s", "too large"),
            ("18446744073709551615s 1s", "too large"),
            ("999999999999999999y", "too large"),
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
