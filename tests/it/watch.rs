//! `ConfigWatcher` on real files: every test changes the directories and
//! waits for the published snapshot that shows the change (bounded by a
//! count of snapshots; the timeout only guards against hangs), never on
//! sleeps. The periodic rescan is off, so only file-system events can make
//! a test pass.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use libcni::{ConfigSnapshot, ConfigUpdates, ConfigWatcher, ErrorKind};

use crate::support::TestEnv;

/// A test fails if more snapshots than this are published before the one it
/// waits for.
const MAX_SNAPSHOTS: usize = 20;
/// Only a guard against a hang: a passing test never comes close.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn builder(env: &TestEnv) -> libcni::ConfigWatcherBuilder {
    ConfigWatcher::builder(&env.net_d)
        .plugin_dirs([&env.bin])
        .debounce(Duration::from_millis(20))
        .rescan_interval(None)
}

fn start(env: &TestEnv) -> ConfigWatcher {
    builder(env).start().unwrap()
}

fn conflist(name: &str, plugins: &str) -> String {
    format!(r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":{plugins}}}"#)
}

fn simple(name: &str) -> String {
    conflist(name, r#"[{"type":"p"}]"#)
}

/// A version of network `name` told apart by `mark`.
fn marked(name: &str, mark: u32) -> String {
    conflist(name, &format!(r#"[{{"type":"p","mark":{mark}}}]"#))
}

fn bytes_of<'a>(snap: &'a ConfigSnapshot, name: &str) -> Option<&'a [u8]> {
    snap.network(name).map(|n| n.bytes())
}

/// Waits for the first snapshot (the current one included) that satisfies
/// `ok`; fails after `MAX_SNAPSHOTS` others, or if the watcher stops.
async fn wait(
    updates: &mut ConfigUpdates,
    what: &str,
    mut ok: impl FnMut(&ConfigSnapshot) -> bool,
) -> Arc<ConfigSnapshot> {
    let search = async {
        // The current snapshot, marked seen (`snapshot()` does not mark it,
        // so a snapshot published just before would come back from the
        // first `changed()` with the same generation).
        let Some(mut snap) = updates.wait_for(|_| true).await else {
            return Err("the watcher stopped".to_owned());
        };
        let mut seen = 0;
        loop {
            if ok(&snap) {
                return Ok(snap);
            }
            if seen == MAX_SNAPSHOTS {
                return Err(format!(
                    "{seen} snapshots, none shows it; the last: {snap:#?}"
                ));
            }
            let Some(next) = updates.changed().await else {
                return Err("the watcher stopped".to_owned());
            };
            assert!(next.generation() > snap.generation(), "generations go up");
            snap = next;
            seen += 1;
        }
    };
    match tokio::time::timeout(HANG_GUARD, search).await {
        Ok(Ok(snap)) => snap,
        Ok(Err(why)) => panic!("waiting for {what}: {why}"),
        Err(_) => panic!(
            "waiting for {what}: hung; the last snapshot: {:#?}",
            updates.snapshot()
        ),
    }
}

#[tokio::test]
async fn good_file_appearing_makes_its_network_ready() {
    let env = TestEnv::new("watch-appear");
    env.plugin("p");
    let w = start(&env);
    let first = w.snapshot();
    assert_eq!(first.generation(), 1);
    assert!(first.networks().is_empty() && first.problems().is_empty());
    assert!(!first.has_usable_default());
    let mut updates = w.subscribe();
    env.write_config("10-a.conflist", &simple("a"));
    let snap = wait(&mut updates, "network a ready", |s| s.is_ready("a")).await;
    assert_eq!(snap.default_network().unwrap().name(), "a");
    assert!(snap.has_usable_default());
    assert!(snap.problems().is_empty(), "{:?}", snap.problems());
    assert_eq!(w.generation(), w.snapshot().generation());
}

#[tokio::test]
async fn broken_file_is_reported_and_other_networks_are_unaffected() {
    let env = TestEnv::new("watch-broken");
    env.plugin("p");
    env.write_config("10-a.conflist", &simple("a"));
    let w = builder(&env).start_async().await.unwrap();
    let mut updates = w.subscribe();
    assert!(w.snapshot().is_ready("a"));
    let bad = env.net_d.join("20-b.conflist");
    // Written whole, so that no scan sees it empty.
    write_whole(&bad, "{\n  \"name\": \"b\",\n  oops\n}");
    let snap = wait(&mut updates, "a problem for the broken file", |s| {
        s.problem(&bad).is_some()
    })
    .await;
    let problem = snap.problem(&bad).unwrap();
    assert_eq!(problem.path(), bad);
    assert!(
        matches!(
            problem.error().kind(),
            ErrorKind::Syntax {
                line: 3,
                column: 3,
                ..
            }
        ),
        "{:?}",
        problem.error()
    );
    assert!(!problem.serving_last_good());
    assert!(problem.to_string().contains("20-b.conflist"), "{problem}");
    // The good network is untouched.
    assert_eq!(snap.networks().len(), 1);
    assert!(snap.is_ready("a"));
    assert_eq!(snap.default_network().unwrap().name(), "a");
}

#[tokio::test]
async fn garbage_over_a_good_file_keeps_the_last_good_until_fixed() {
    let env = TestEnv::new("watch-garbage");
    env.plugin("p");
    let v1 = marked("a", 1);
    let path = env.write_config("10-a.conflist", &v1);
    let w = start(&env);
    let mut updates = w.subscribe();
    env.write_config("10-a.conflist", "\u{1}garbage");
    let snap = wait(&mut updates, "the problem while v1 is served", |s| {
        s.problem(&path).is_some()
    })
    .await;
    let problem = snap.problem(&path).unwrap();
    assert!(problem.serving_last_good());
    assert_eq!(problem.last_good_network(), Some("a"));
    assert_eq!(bytes_of(&snap, "a"), Some(v1.as_bytes()));
    let readiness = snap.network_readiness("a").unwrap();
    assert!(readiness.is_ready() && readiness.serving_last_good());
    assert_eq!(snap.default_network().unwrap().name(), "a");

    let v2 = marked("a", 2);
    env.write_config("10-a.conflist", &v2);
    let snap = wait(&mut updates, "v2 served", |s| {
        bytes_of(s, "a") == Some(v2.as_bytes())
    })
    .await;
    assert!(snap.problems().is_empty(), "{:?}", snap.problems());
    assert!(!snap.network_readiness("a").unwrap().serving_last_good());
}

#[tokio::test]
async fn emptied_file_keeps_the_last_good() {
    let env = TestEnv::new("watch-empty");
    env.plugin("p");
    let path = env.write_config(
        "10-a.conf",
        r#"{"cniVersion":"1.0.0","name":"a","type":"p"}"#,
    );
    let w = start(&env);
    let mut updates = w.subscribe();
    let before = w.snapshot().network("a").unwrap().bytes().to_vec();
    std::fs::File::create(&path).unwrap(); // truncates
    let snap = wait(&mut updates, "the problem of the empty file", |s| {
        s.problem(&path).is_some()
    })
    .await;
    assert_eq!(bytes_of(&snap, "a"), Some(&before[..]));
    assert!(snap.has_usable_default());
}

#[tokio::test]
async fn fixed_file_renaming_its_network_replaces_the_old_name() {
    let env = TestEnv::new("watch-rename");
    env.plugin("p");
    let path = env.write_config("10-net.conflist", &simple("old"));
    let w = start(&env);
    let mut updates = w.subscribe();
    env.write_config("10-net.conflist", "{");
    let snap = wait(&mut updates, "old served from the last good", |s| {
        s.problem(&path).is_some()
    })
    .await;
    assert_eq!(
        snap.problem(&path).unwrap().last_good_network(),
        Some("old")
    );
    assert!(snap.network("old").is_some());
    env.write_config("10-net.conflist", &simple("new"));
    let snap = wait(&mut updates, "new served, old gone", |s| {
        s.network("new").is_some() && s.network("old").is_none()
    })
    .await;
    assert_eq!(snap.networks().len(), 1);
    assert!(snap.problems().is_empty(), "{:?}", snap.problems());
    assert_eq!(snap.default_network().unwrap().name(), "new");
}

#[tokio::test]
async fn half_written_file_serves_the_old_version_until_complete() {
    let env = TestEnv::new("watch-half");
    env.plugin("p");
    let v1 = marked("a", 1);
    let path = env.write_config("10-a.conflist", &v1);
    let w = start(&env);
    let mut updates = w.subscribe();
    let v2 = marked("a", 2);
    let (head, tail) = v2.split_at(v2.len() / 2);
    // First step: truncate and write the first half.
    std::fs::write(&path, head).unwrap();
    // (Not the empty file `write` makes first: that fails at column 0.)
    let snap = wait(&mut updates, "the half-written file reported", |s| {
        s.problem(&path).is_some_and(|p| {
            matches!(p.error().kind(), ErrorKind::Syntax { line: 1, column, .. } if *column > 0)
        })
    })
    .await;
    assert_eq!(bytes_of(&snap, "a"), Some(v1.as_bytes()));
    assert!(snap.is_ready("a"));
    // Second step: the rest.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(tail.as_bytes()).unwrap();
    drop(f);
    let snap = wait(&mut updates, "the completed file served", |s| {
        bytes_of(s, "a") == Some(v2.as_bytes())
    })
    .await;
    assert!(snap.problems().is_empty(), "{:?}", snap.problems());
}

#[tokio::test]
async fn deleted_file_takes_its_network_away() {
    let env = TestEnv::new("watch-delete");
    env.plugin("p");
    let a = env.write_config("10-a.conflist", &simple("a"));
    env.write_config("20-b.conflist", &simple("b"));
    let w = start(&env);
    let mut updates = w.subscribe();
    assert_eq!(w.snapshot().default_network().unwrap().name(), "a");
    std::fs::remove_file(&a).unwrap();
    let snap = wait(&mut updates, "a gone", |s| s.network("a").is_none()).await;
    assert!(snap.is_ready("b"));
    assert_eq!(snap.default_network().unwrap().name(), "b");
    // A broken file that is then deleted leaves no network and no problem.
    let bad = env.write_config("05-bad.conflist", "{");
    wait(&mut updates, "the broken file reported", |s| {
        s.problem(&bad).is_some()
    })
    .await;
    std::fs::remove_file(&bad).unwrap();
    let snap = wait(&mut updates, "its problem gone", |s| {
        s.problems().is_empty()
    })
    .await;
    assert_eq!(snap.networks().len(), 1);
}

#[tokio::test]
async fn deleted_file_with_a_last_good_version_goes_away() {
    let env = TestEnv::new("watch-delete-stale");
    env.plugin("p");
    let a = env.write_config("10-a.conflist", &simple("a"));
    let w = start(&env);
    let mut updates = w.subscribe();
    env.write_config("10-a.conflist", "{");
    wait(&mut updates, "a served from its last good version", |s| {
        s.problem(&a).is_some_and(|p| p.serving_last_good())
    })
    .await;
    std::fs::remove_file(&a).unwrap();
    let snap = wait(&mut updates, "a gone", |s| s.networks().is_empty()).await;
    assert!(snap.problems().is_empty(), "{:?}", snap.problems());
}

#[tokio::test]
async fn conf_dir_deleted_and_recreated() {
    let env = TestEnv::new("watch-dir");
    env.plugin("p");
    env.write_config("10-a.conflist", &simple("a"));
    let w = start(&env);
    let mut updates = w.subscribe();
    std::fs::remove_dir_all(&env.net_d).unwrap();
    let snap = wait(&mut updates, "no networks", |s| s.networks().is_empty()).await;
    assert!(snap.problems().is_empty(), "{:?}", snap.problems());
    assert!(!snap.has_usable_default());

    std::fs::create_dir(&env.net_d).unwrap();
    env.write_config("10-b.conflist", &simple("b"));
    wait(&mut updates, "b back", |s| s.is_ready("b")).await;

    // Removed and created again at once: the new directory is watched too.
    std::fs::remove_dir_all(&env.net_d).unwrap();
    std::fs::create_dir(&env.net_d).unwrap();
    env.write_config("10-c.conflist", &simple("c"));
    let snap = wait(&mut updates, "c, and b gone", |s| {
        s.is_ready("c") && s.network("b").is_none()
    })
    .await;
    assert_eq!(snap.networks().len(), 1);
    // And the new directory's changes are seen.
    env.write_config("20-d.conflist", &simple("d"));
    wait(&mut updates, "d", |s| s.is_ready("d")).await;
}

#[tokio::test]
async fn conf_dir_missing_at_start() {
    let env = TestEnv::new("watch-missing");
    env.plugin("p");
    std::fs::remove_dir(&env.net_d).unwrap();
    let w = start(&env);
    let snap = w.snapshot();
    assert!(snap.networks().is_empty() && snap.problems().is_empty());
    let mut updates = w.subscribe();
    std::fs::create_dir(&env.net_d).unwrap();
    env.write_config("10-a.conflist", &simple("a"));
    wait(&mut updates, "a", |s| s.is_ready("a")).await;
}

#[tokio::test]
async fn conf_dir_and_its_parents_missing_at_start() {
    let env = TestEnv::new("watch-missing-deep");
    env.plugin("p");
    let dir = env.path("etc/cni/net.d");
    let w = ConfigWatcher::builder(&dir)
        .plugin_dirs([&env.bin])
        .debounce(Duration::from_millis(20))
        .rescan_interval(None)
        .start()
        .unwrap();
    assert!(w.snapshot().networks().is_empty());
    let mut updates = w.subscribe();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("10-a.conflist"), simple("a")).unwrap();
    let snap = wait(&mut updates, "a", |s| s.is_ready("a")).await;
    assert_eq!(snap.conf_dir(), dir);
}

#[tokio::test]
async fn plugin_installed_later_makes_the_network_ready() {
    let env = TestEnv::new("watch-plugin");
    env.write_config(
        "10-a.conflist",
        &conflist("a", r#"[{"type":"late","ipam":{"type":"late-ipam"}}]"#),
    );
    let w = start(&env);
    let snap = w.snapshot();
    let r = snap.network_readiness("a").unwrap();
    assert!(!r.is_ready() && !snap.has_usable_default());
    assert_eq!(
        r.missing_plugins().collect::<Vec<_>>(),
        ["late", "late-ipam"]
    );
    match r.reasons()[0].kind() {
        ErrorKind::PluginNotFound { plugin, dirs, .. } => {
            assert_eq!(plugin, "late");
            assert_eq!(dirs, std::slice::from_ref(&env.bin));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.reasons()[0].network(), Some("a"));
    assert!(r.to_string().contains("not ready"), "{r}");
    assert!(snap.default_network().is_none());

    let mut updates = w.subscribe();
    env.plugin("late");
    let snap = wait(&mut updates, "only the IPAM plugin missing", |s| {
        s.network_readiness("a")
            .is_some_and(|r| r.missing_plugins().eq(["late-ipam"]))
    })
    .await;
    assert!(!snap.is_ready("a"));
    env.plugin("late-ipam");
    let snap = wait(&mut updates, "a ready", |s| s.is_ready("a")).await;
    assert_eq!(snap.default_network().unwrap().name(), "a");
}

#[tokio::test]
async fn plugin_without_execute_bit_is_not_ready_until_chmod() {
    let env = TestEnv::new("watch-noexec");
    let bin = env.bin.join("p");
    std::fs::copy(crate::support::test_plugin_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.write_config("10-a.conflist", &simple("a"));
    let w = start(&env);
    let snap = w.snapshot();
    let r = snap.network_readiness("a").unwrap();
    assert!(
        matches!(r.reasons(), [e] if matches!(e.kind(), ErrorKind::PluginNotExecutable { path, .. } if *path == bin)),
        "{r}"
    );
    let mut updates = w.subscribe();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    wait(&mut updates, "a ready", |s| s.is_ready("a")).await;
}

#[tokio::test]
async fn dropin_file_added_grows_the_plugin_list() {
    let env = TestEnv::new("watch-dropin");
    env.plugin("p");
    env.plugin("q");
    env.write_config("10-dn.conflist", &simple("dn"));
    let w = start(&env);
    let mut updates = w.subscribe();
    assert_eq!(w.snapshot().network("dn").unwrap().plugins().len(), 1);
    let dropins = env.net_d.join("dn");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::write(dropins.join("x.conf"), r#"{"type":"q"}"#).unwrap();
    let snap = wait(&mut updates, "two plugins", |s| {
        s.network("dn").is_some_and(|n| n.plugins().len() == 2)
    })
    .await;
    let net = snap.network("dn").unwrap();
    assert_eq!(net.plugins()[1].plugin_type(), "q");
    assert!(snap.is_ready("dn"));
    // A second drop-in, now that the directory exists (and is watched).
    std::fs::write(dropins.join("y.conf"), r#"{"type":"r"}"#).unwrap();
    let snap = wait(&mut updates, "three plugins, r missing", |s| {
        s.network("dn").is_some_and(|n| n.plugins().len() == 3)
    })
    .await;
    let r = snap.network_readiness("dn").unwrap();
    assert_eq!(r.missing_plugins().collect::<Vec<_>>(), ["r"]);
    // A broken drop-in keeps the last good list; the problem names it.
    std::fs::write(dropins.join("z.conf"), "{").unwrap();
    let list = env.net_d.join("10-dn.conflist");
    let snap = wait(&mut updates, "the broken drop-in reported", |s| {
        s.problem(&list).is_some()
    })
    .await;
    let problem = snap.problem(&list).unwrap();
    assert_eq!(
        problem.error().path(),
        Some(dropins.join("z.conf").as_path())
    );
    assert_eq!(snap.network("dn").unwrap().plugins().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_always_see_the_good_network_during_churn() {
    let env = TestEnv::new("watch-churn");
    env.plugin("p");
    let path = env.write_config("10-stable.conflist", &marked("stable", 0));
    let w = Arc::new(builder(&env).start_async().await.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..16 {
        let (w, stop, reads) = (w.clone(), stop.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let snap = w.snapshot();
                assert!(
                    snap.is_ready("stable") && snap.has_usable_default(),
                    "generation {}: {snap:#?}",
                    snap.generation()
                );
                reads.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }));
    }
    // A subscriber checks every snapshot it is handed, too.
    let mut updates = w.subscribe();
    let watcher_side = tokio::spawn(async move {
        let mut n = 0;
        while let Some(snap) = updates.changed().await {
            assert!(snap.is_ready("stable"), "{snap:#?}");
            n += 1;
        }
        n
    });

    for i in 1..=30u32 {
        let good = marked("stable", i);
        match i % 3 {
            0 => std::fs::write(&path, "{\"name\": ").unwrap(),
            1 => std::fs::write(&path, &good[..good.len() / 2]).unwrap(),
            _ => std::fs::write(&path, "").unwrap(),
        }
        std::fs::write(env.net_d.join(format!("20-other-{i}.conf")), "{").unwrap();
        if i % 5 == 0 {
            let _ = std::fs::remove_file(env.net_d.join(format!("20-other-{}.conf", i - 1)));
        }
        std::fs::write(&path, &good).unwrap();
        tokio::task::yield_now().await;
    }
    let mut updates = w.subscribe();
    let last = marked("stable", 30);
    wait(&mut updates, "the last version", |s| {
        bytes_of(s, "stable") == Some(last.as_bytes())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) > 0);
    let w = Arc::try_unwrap(w).unwrap();
    drop(w);
    // The subscriber ends when the watcher is gone.
    let n = tokio::time::timeout(HANG_GUARD, watcher_side)
        .await
        .expect("the watcher stopped")
        .unwrap();
    assert!(n > 0);
}

#[test]
fn start_works_outside_a_runtime_and_drop_stops_the_watcher() {
    let env = TestEnv::new("watch-sync");
    env.plugin("p");
    env.write_config("10-a.conflist", &simple("a"));
    let w = start(&env);
    assert!(w.snapshot().is_ready("a"));
    let mut updates = w.subscribe();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        env.write_config("20-b.conflist", &simple("b"));
        wait(&mut updates, "b", |s| s.is_ready("b")).await;
        drop(w);
        let end = tokio::time::timeout(HANG_GUARD, updates.changed()).await;
        assert!(matches!(end, Ok(None)), "the watcher thread ended");
        // The last snapshot stays readable.
        assert!(updates.snapshot().is_ready("b"));
    });
}

#[tokio::test]
async fn rescan_on_request_publishes_nothing_new_without_changes() {
    let env = TestEnv::new("watch-rescan");
    env.plugin("p");
    env.write_config("10-a.conflist", &simple("a"));
    let w = start(&env);
    let mut updates = w.subscribe();
    let before = w.generation();
    w.rescan();
    // A marker change after the rescan request, written whole (renamed into
    // place): the first snapshot after it must be the marker's, so the
    // rescan itself published nothing.
    write_whole(&env.net_d.join("20-b.conflist"), &simple("b"));
    let snap = tokio::time::timeout(HANG_GUARD, updates.changed())
        .await
        .expect("hung")
        .unwrap();
    assert!(snap.is_ready("b"), "{snap:#?}");
    assert_eq!(snap.generation(), before + 1);
}

/// Writes a file whole: a temporary file (an extension the loader ignores)
/// renamed over it.
fn write_whole(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn no_plugin_dirs_is_one_reason() {
    let env = TestEnv::new("watch-nodirs");
    env.write_config(
        "10-a.conflist",
        &conflist("a", r#"[{"type":"p"},{"type":"q"}]"#),
    );
    let w = builder(&env)
        .plugin_dirs(Vec::<std::path::PathBuf>::new())
        .start()
        .unwrap();
    let snap = w.snapshot();
    let r = snap.network_readiness("a").unwrap();
    assert!(
        matches!(r.reasons(), [e] if matches!(e.kind(), ErrorKind::NoPluginDirs)),
        "{r}"
    );
    assert!(snap.plugin_dirs().is_empty() && !snap.has_usable_default());
}
