//! Hostile input: names that try to escape, symlinks planted in the cache
//! directory, and config directories built to exhaust memory or stack.
//! Every case is a typed error, never a panic, and the files outside the
//! cache directory are compared byte for byte before and after.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;

use libcni::error::ConfigProblem;
use libcni::{ConfigLoader, ErrorKind, NetworkConfigList, PluginConfig, RuntimeConfig};
use serde_json::json;

use super::tree;
use crate::support::{TestEnv, block_on_mt as block_on};

fn list(env: &TestEnv) -> NetworkConfigList {
    env.plugin("hp");
    env.list(
        &json!({"cniVersion": "1.1.0", "name": "hnet", "plugins": [{"type": "hp"}]}).to_string(),
    )
}

/// A directory beside the cache with a file in it, that nothing may touch.
fn outside(env: &TestEnv) -> std::path::PathBuf {
    let o = env.path("outside");
    std::fs::create_dir_all(o.join("results")).unwrap();
    std::fs::write(o.join("secret"), "do not read or write").unwrap();
    std::fs::write(o.join("results/hnet-c1-eth0"), "outside entry").unwrap();
    o
}

const LONG: usize = 5000;

#[test]
fn hostile_attachment_names_are_typed_errors_and_touch_nothing_outside() {
    let env = TestEnv::new("adv-names");
    let l = list(&env);
    let out = outside(&env);
    let before = tree(&out);
    let watch = super::Untouched::watch(&[&out, &out.join("results")]);
    let long = "a".repeat(LONG);
    let cids = [
        "../outside",
        "../../etc/passwd",
        "a/b",
        "/abs",
        "nul\0byte",
        "new\nline",
        "..",
        long.as_str(),
        "",
    ];
    let ifnames = ["../x", "a/b", "nul\0", "new\nline", "..", long.as_str(), ""];
    let cni = env.cni();
    block_on(async {
        for cid in cids {
            let rt = RuntimeConfig::new(cid, "/run/netns/x", "eth0");
            let e = cni.add_network_list(&l, &rt).await.unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::InvalidAttachment { .. }),
                "ADD {cid:?}: {e:?}"
            );
            // CHECK and DEL validate less (as libcni) but never escape: a
            // typed error, or success on a harmless name in `results/`.
            for r in [
                cni.check_network_list(&l, &rt).await,
                cni.del_network_list(&l, &rt).await,
            ] {
                if let Err(e) = r {
                    assert!(
                        matches!(
                            e.kind(),
                            ErrorKind::InvalidAttachment { .. }
                                | ErrorKind::Io { .. }
                                | ErrorKind::Spawn { .. }
                        ),
                        "{cid:?}: {e:?}"
                    );
                }
            }
        }
        for ifname in ifnames {
            let rt = RuntimeConfig::new("c1", "/run/netns/x", ifname);
            let e = cni.add_network_list(&l, &rt).await.unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::InvalidAttachment { .. }),
                "ADD ifname {ifname:?}: {e:?}"
            );
            let _ = cni.del_network_list(&l, &rt).await;
        }
    });
    watch.assert_untouched("hostile names");
    assert_eq!(tree(&out), before, "something outside the cache changed");
    // Inside the cache, nothing but the (empty) directories.
    let left = super::names(&env.cache.join("results"));
    assert!(left.is_empty(), "left in results/: {left:?}");
}

#[test]
fn hostile_network_names_and_plugin_types_are_refused_at_load() {
    for name in ["../x", "a/b", "nul\u{0}", "new\nline", "-x", ""] {
        let text = json!({"cniVersion": "1.0.0", "name": name, "plugins": [{"type": "p"}]});
        let e = NetworkConfigList::from_bytes(text.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { .. }),
            "{name:?}: {e:?}"
        );
    }
    let long = "n".repeat(LONG);
    let text = json!({"cniVersion": "1.0.0", "name": long, "plugins": [{"type": "p"}]});
    // A long but valid name loads; ADD refuses it before any plugin runs,
    // as its cache entry could not be stored (file names are limited).
    let l = NetworkConfigList::from_bytes(text.to_string().as_bytes()).unwrap();
    let env = TestEnv::new("adv-longnet");
    env.plugin("p");
    let rt = RuntimeConfig::new("c1", "/run/netns/x", "eth0");
    let e = block_on(env.cni().add_network_list(&l, &rt)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidAttachment { .. }),
        "{e:?}"
    );
    assert!(env.calls("p").is_empty(), "a plugin ran");
    for t in ["../bin/sh", "/bin/sh", "a/b", "nul\u{0}", "..", "."] {
        let text = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": t}]});
        let e = NetworkConfigList::from_bytes(text.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::InvalidConfig {
                    problem: ConfigProblem::InvalidPluginType { .. },
                    ..
                }
            ),
            "{t:?}: {e:?}"
        );
        let e = libcni::exec::find_plugin(t, std::slice::from_ref(&env.bin)).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidPluginName { .. }),
            "{e:?}"
        );
    }
    // A `.conf` whose name would escape: refused at load, and a plugin
    // config built by hand cannot reach outside through DEL either.
    let p =
        PluginConfig::from_bytes(br#"{"cniVersion":"1.0.0","name":"../../x","type":"p"}"#).unwrap();
    let e = block_on(env.cni().del_network(&p, &rt)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidAttachment { .. }),
        "{e:?}"
    );
}

/// `results/`, `locks/`, `results.tmp/` or an entry replaced by a symlink
/// to a directory or file outside: typed errors (or the documented
/// fallback), and nothing outside read or written.
#[test]
fn symlinks_planted_in_the_cache_are_never_followed() {
    for planted in ["results", "locks", "results.tmp", "entry"] {
        let env = TestEnv::new("adv-symlink");
        let l = list(&env);
        let out = outside(&env);
        std::fs::create_dir_all(&env.cache).unwrap();
        match planted {
            "entry" => {
                std::fs::create_dir_all(env.cache.join("results")).unwrap();
                symlink(out.join("secret"), env.cache.join("results/hnet-c1-eth0")).unwrap();
            }
            "results" => symlink(out.join("results"), env.cache.join("results")).unwrap(),
            d => symlink(&out, env.cache.join(d)).unwrap(),
        }
        let before = tree(&out);
        let watch = super::Untouched::watch(&[&out, &out.join("results")]);
        let rt = RuntimeConfig::new("c1", "/run/netns/x", "eth0");
        let cni = env.cni();
        let add = block_on(cni.add_network_list(&l, &rt));
        let check = block_on(cni.check_network_list(&l, &rt));
        let cached = cni.cached_result(&l, &rt);
        let atts = cni.cached_attachments(None);
        let del = block_on(cni.del_network_list(&l, &rt));
        let gc = block_on(cni.gc_network_list(&l, Some(&[])));
        let cache_err = |r: &Result<(), libcni::Error>| {
            assert!(
                matches!(r.as_ref().unwrap_err().kind(), ErrorKind::Cache { .. }),
                "{planted}: {r:?}"
            );
        };
        match planted {
            "results" => {
                cache_err(&add.map(|_| ()));
                cache_err(&check);
                cache_err(&cached.map(|_| ()));
                // DEL runs the plugins without prevResult and leaves the
                // cache alone (README); GC reports the unusable cache.
                del.unwrap();
                assert!(matches!(gc.unwrap_err().kind(), ErrorKind::Gc { .. }));
                let _ = atts;
            }
            "results.tmp" => {
                // The entry cannot be written durably: ADD fails, typed.
                cache_err(&add.map(|_| ()));
                del.unwrap();
                gc.unwrap();
                let _ = (check, cached, atts);
            }
            _ => {
                // `locks`: only the cross-process lock is lost; everything
                // works. An entry: the symlinked entry is replaced by ADD's
                // rename (never written through), so the rest sees a real
                // entry.
                add.unwrap();
                check.unwrap();
                assert!(cached.unwrap().is_some());
                assert_eq!(atts.unwrap().len(), 1);
                del.unwrap();
                gc.unwrap();
            }
        }
        watch.assert_untouched(planted);
        assert_eq!(tree(&out), before, "{planted}: something outside changed");
        // And a symlinked entry that DEL and GC meet directly: removed
        // itself, its target untouched.
        if planted == "entry" {
            symlink(out.join("secret"), env.cache.join("results/hnet-c1-eth0")).unwrap();
            let e = block_on(cni.check_network_list(&l, &rt)).unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Cache { .. }), "{e:?}");
            let watch = super::Untouched::watch(&[&out]);
            block_on(cni.del_network_list(&l, &rt)).unwrap();
            watch.assert_untouched("DEL of a symlinked entry");
            assert!(super::names(&env.cache.join("results")).is_empty());
            assert_eq!(tree(&out), before);
        }
    }
}

#[test]
fn symlinked_config_files_load_as_in_libcni() {
    // A Kubernetes ConfigMap mount: `..data -> ..2024_01_01`, and each file
    // a symlink through `..data`.
    let env = TestEnv::new("adv-cfgsymlink");
    let real = env.net_d.join("..2024_01_01");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(
        real.join("10-k.conflist"),
        json!({"cniVersion": "1.0.0", "name": "k", "plugins": [{"type": "p"}]}).to_string(),
    )
    .unwrap();
    symlink("..2024_01_01", env.net_d.join("..data")).unwrap();
    symlink("..data/10-k.conflist", env.net_d.join("10-k.conflist")).unwrap();
    let loader = ConfigLoader::new(&env.net_d);
    assert_eq!(loader.network("k").unwrap().name(), "k");
    let all = loader.load_all().unwrap();
    assert_eq!(all.networks().len(), 1);
    assert!(all.skipped().is_empty(), "{:?}", all.skipped());
}

#[test]
fn a_huge_config_dir_with_oversized_deep_and_odd_files() {
    let env = TestEnv::new("adv-bigdir");
    let n = 10_000;
    for i in 0..n {
        let text = format!(r#"{{"cniVersion":"1.0.0","name":"n{i}","plugins":[{{"type":"p"}}]}}"#);
        std::fs::write(env.net_d.join(format!("{i:05}.conflist")), text).unwrap();
    }
    // 50 MB, sparse: refused by its size before a byte is read.
    let big = env.net_d.join("50mb.conflist");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(50 << 20)
        .unwrap();
    // Nested 100,000 deep: no stack overflow, a typed error.
    let deep = env.net_d.join("deep.conflist");
    let mut text =
        String::from(r#"{"cniVersion":"1.0.0","name":"deep","plugins":[{"type":"p","x":"#);
    text.push_str(&"[".repeat(100_000));
    text.push_str(&"]".repeat(100_000));
    text.push_str("}]}");
    std::fs::write(&deep, text).unwrap();
    // A FIFO: must not block the loader.
    let fifo = env.net_d.join("fifo.conf");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // A non-UTF-8 file name with a valid config, and non-UTF-8 contents.
    let odd = env
        .net_d
        .join(std::ffi::OsStr::from_bytes(b"\xff\xfe-odd.conflist"));
    std::fs::write(
        &odd,
        r#"{"cniVersion":"1.0.0","name":"odd","plugins":[{"type":"p"}]}"#,
    )
    .unwrap();
    std::fs::write(
        env.net_d.join("latin1.conf"),
        b"{\"name\":\"caf\xe9\",\"type\":\"p\"}",
    )
    .unwrap();

    let all = ConfigLoader::new(&env.net_d).load_all().unwrap();
    assert_eq!(all.networks().len(), n + 1);
    let skipped: Vec<_> = all
        .skipped()
        .iter()
        .map(|e| (e.path().unwrap().file_name().unwrap().to_owned(), e))
        .collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    for (file, e) in skipped {
        match file.to_str() {
            Some("50mb.conflist") => assert!(
                matches!(e.kind(), ErrorKind::ConfigTooLarge { size, .. } if *size == 50 << 20),
                "{e:?}"
            ),
            Some("deep.conflist") => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::InvalidConfig {
                        problem: ConfigProblem::TooDeep { limit: 64 },
                        ..
                    }
                ),
                "{e:?}"
            ),
            Some("fifo.conf") => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::InvalidConfig {
                        problem: ConfigProblem::NotARegularFile,
                        ..
                    }
                ),
                "{e:?}"
            ),
            Some("latin1.conf") => {
                assert!(matches!(e.kind(), ErrorKind::Syntax { .. }), "{e:?}")
            }
            other => panic!("unexpected skip {other:?}: {e}"),
        }
    }
    assert!(all.get("odd").is_some());
    // The caps are configurable: a smaller size cap skips more; a deeper
    // depth cap still cannot overflow (the parser stops at 128).
    let strict = ConfigLoader::new(&env.net_d).with_max_file_size(10);
    assert_eq!(strict.max_file_size(), 10);
    let e = strict.network("n1").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::NetworkNotFound { .. }),
        "{e:?}"
    );
    // Past the depth cap the file is taken as raw JSON (never parsed
    // into a tree, so no recursion): it loads, and nothing overflows.
    let deeper = ConfigLoader::new(&env.net_d).with_max_depth(1_000_000);
    assert_eq!(deeper.max_depth(), 1_000_000);
    assert_eq!(deeper.network("deep").unwrap().name(), "deep");
}

/// Files with non-UTF-8 names, dot-files and directories planted in
/// `results/` and `locks/`: listing, GC and lookups skip them, untouched.
#[test]
fn odd_files_in_the_cache_are_skipped_not_fatal() {
    let env = TestEnv::new("adv-oddcache");
    let l = list(&env);
    let results = env.cache.join("results");
    let locks = env.cache.join("locks");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::create_dir_all(&locks).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"hnet-\xff\xfe-eth0");
    std::fs::write(results.join(odd), "{}").unwrap();
    std::fs::write(locks.join(odd), "").unwrap();
    std::fs::write(results.join(".hidden"), "x").unwrap();
    std::fs::create_dir_all(results.join("hnet-dir-eth0")).unwrap();
    let before = tree(&env.cache);
    let cni = env.cni();
    assert!(cni.cached_attachments(None).unwrap().is_empty());
    let report = block_on(cni.gc_network_list(&l, Some(&[]))).unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    // The directory is reported as a skipped file, typed and named.
    assert!(
        report.skipped.iter().all(|e| matches!(
            e.kind(),
            ErrorKind::Cache { .. } | ErrorKind::Io { .. }
        ) && e.path().is_some()),
        "{:?}",
        report.skipped
    );
    // A DEL on the directory's name: typed error or fallback, never a panic,
    // and the directory stays.
    let rt = RuntimeConfig::new("dir", "/run/netns/x", "eth0");
    let _ = block_on(cni.del_network_list(&l, &rt));
    assert!(results.join("hnet-dir-eth0").is_dir());
    let after = tree(&env.cache);
    for f in &before {
        assert!(after.contains(f), "{:?} changed or went", f.0);
    }
}
