//! Loader and parser tests, named after the behaviours of libcni they check
//! (SPEC-NOTES section 1) or the places where this crate differs on purpose.

use std::path::{Path, PathBuf};

use super::*;
use crate::error::ConfigProblem as P;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("libcni-cfg-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
    fn loader(&self) -> ConfigLoader {
        ConfigLoader::new(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn list(name: &str) -> String {
    format!(r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"bridge"}}]}}"#)
}

fn conf(name: &str) -> String {
    format!(r#"{{"cniVersion":"0.4.0","name":"{name}","type":"bridge"}}"#)
}

fn problem(e: &Error) -> &ConfigProblem {
    match e.kind() {
        ErrorKind::InvalidConfig { problem } => problem,
        other => panic!("expected InvalidConfig, got {other:?} ({e})"),
    }
}

fn parse_err(text: &str) -> Error {
    NetworkConfigList::from_bytes(text.as_bytes()).unwrap_err()
}

fn names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

// ---- 1.1-1.3 discovery ----

#[test]
fn discovery_is_not_recursive_and_skips_directories() {
    let d = TempDir::new("norecurse");
    d.write("sub/a.conflist", &list("a"));
    std::fs::create_dir(d.0.join("dir.conflist")).unwrap();
    d.write(".hidden.conf", &conf("hidden"));
    d.write("b.conflist", &list("b"));
    assert_eq!(
        names(&d.loader().files().unwrap()),
        [".hidden.conf", "b.conflist"]
    );
}

#[test]
fn symlinks_count_as_files_and_broken_ones_are_reported() {
    let d = TempDir::new("symlink");
    std::fs::create_dir(d.0.join("target")).unwrap();
    std::os::unix::fs::symlink(d.0.join("target"), d.0.join("todir.conflist")).unwrap();
    std::os::unix::fs::symlink(d.0.join("missing"), d.0.join("broken.conflist")).unwrap();
    let real = d.write("real.json", &list("x"));
    std::os::unix::fs::symlink(&real, d.0.join("link.conflist")).unwrap();
    assert_eq!(
        names(&d.loader().files().unwrap()),
        [
            "broken.conflist",
            "link.conflist",
            "real.json",
            "todir.conflist"
        ]
    );
    let all = d.loader().load_all().unwrap();
    assert_eq!(all.networks().len(), 1);
    assert_eq!(all.networks()[0].name(), "x");
    // The broken link, the link to a directory, and real.json (a list in a
    // single-plugin file: no `type`) are each reported with their path.
    assert_eq!(all.skipped().len(), 3);
    for e in all.skipped() {
        assert!(e.path().is_some(), "{e}");
    }
    assert!(matches!(all.skipped()[0].kind(), ErrorKind::Io { .. }));
}

#[test]
fn extension_is_exact_and_case_sensitive() {
    let d = TempDir::new("ext");
    for f in [
        "a.CONFLIST",
        "a.conflist.bak",
        "a.conflist~",
        "a.Conf",
        "conf",
        ".conflist",
        "b.json",
        "c.conf",
    ] {
        d.write(f, &list("x"));
    }
    assert_eq!(
        names(&d.loader().files().unwrap()),
        [".conflist", "b.json", "c.conf"]
    );
}

#[test]
fn missing_directory_has_no_files_but_lookup_says_no_configs() {
    let d = TempDir::new("missing");
    let loader = ConfigLoader::new(d.0.join("nope"));
    assert!(loader.files().unwrap().is_empty());
    let e = loader.network("x").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NoConfigs { .. }), "{e}");
    assert!(matches!(
        loader.default_network().unwrap_err().kind(),
        ErrorKind::NoConfigs { .. }
    ));
}

#[test]
fn a_file_as_directory_is_an_io_error() {
    let d = TempDir::new("notdir");
    let f = d.write("file", "x");
    let e = ConfigLoader::new(&f).files().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Io { .. }), "{e}");
    assert_eq!(e.path(), Some(f.as_path()));
}

#[test]
fn files_sort_bytewise() {
    let d = TempDir::new("sort");
    for f in ["b.conf", "_x.conf", "A.conf", "9.conf", "10.conf"] {
        d.write(f, &conf("n"));
    }
    assert_eq!(
        names(&d.loader().files().unwrap()),
        ["10.conf", "9.conf", "A.conf", "_x.conf", "b.conf"]
    );
}

// ---- 1.4-1.6 lookup ----

#[test]
fn lookup_first_conflist_in_order_wins() {
    let d = TempDir::new("first");
    d.write("20-b.conflist", &list("net").replace("bridge", "second"));
    d.write("10-a.conflist", &list("net").replace("bridge", "first"));
    let net = d.loader().network("net").unwrap();
    assert_eq!(net.plugins()[0].plugin_type(), "first");
    assert_eq!(net.source().unwrap().file_name().unwrap(), "10-a.conflist");
}

#[test]
fn a_broken_file_before_the_match_does_not_abort_the_lookup() {
    // libcni aborts the lookup with the parse error; we skip and report it.
    let d = TempDir::new("broken");
    d.write(
        "00-broken.conflist",
        "{\"name\": \"other\",\n  \"plugins\": [ // comment\n]}",
    );
    d.write("10-good.conflist", &list("good"));
    let net = d.loader().network("good").unwrap();
    assert_eq!(net.name(), "good");
    let e = d.loader().network("absent").unwrap_err();
    let ErrorKind::NetworkNotFound { skipped, .. } = e.kind() else {
        panic!("{e}");
    };
    assert_eq!(skipped.len(), 1);
    assert!(
        matches!(
            skipped[0].kind(),
            ErrorKind::Syntax {
                line: 2,
                column: 16
            }
        ),
        "{}",
        skipped[0]
    );
    assert!(skipped[0].path().unwrap().ends_with("00-broken.conflist"));
    assert!(e.to_string().contains("00-broken.conflist"), "{e}");
}

#[test]
fn conflist_beats_conf_of_the_same_name() {
    let d = TempDir::new("beats");
    d.write("00-a.conf", &conf("net"));
    d.write("99-z.conflist", &list("net"));
    let net = d.loader().network("net").unwrap();
    assert_eq!(net.source().unwrap().file_name().unwrap(), "99-z.conflist");
    let all = d.loader().load_all().unwrap();
    assert_eq!(all.networks().len(), 2);
    assert_eq!(
        all.get("net")
            .unwrap()
            .source()
            .unwrap()
            .file_name()
            .unwrap(),
        "99-z.conflist"
    );
}

#[test]
fn conf_and_json_are_searched_together_in_order() {
    let d = TempDir::new("confjson");
    d.write("b.conf", &conf("net").replace("bridge", "from-conf"));
    d.write("a.json", &conf("net").replace("bridge", "from-json"));
    let net = d.loader().network("net").unwrap();
    assert_eq!(net.plugins()[0].plugin_type(), "from-json");
}

#[test]
fn no_match_is_not_found_even_with_only_conflists() {
    let d = TempDir::new("notfound");
    d.write("a.conflist", &list("a"));
    let e = d.loader().network("b").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::NetworkNotFound { network, skipped, .. } if network == "b" && skipped.is_empty()),
        "{e}"
    );
}

#[test]
fn default_network_is_the_first_valid_file_of_any_kind() {
    let d = TempDir::new("default");
    d.write("00-bad.conflist", "{");
    std::fs::copy(testdata("00-multus.conf"), d.0.join("00-multus.conf")).unwrap();
    std::fs::copy(
        testdata("10-calico.conflist"),
        d.0.join("10-calico.conflist"),
    )
    .unwrap();
    let net = d.loader().default_network().unwrap();
    assert_eq!(net.name(), "multus-cni-network");
    assert_eq!(net.plugins()[0].plugin_type(), "multus-shim");
    let only_bad = TempDir::new("default-bad");
    only_bad.write("a.conf", "{}");
    let e = only_bad.loader().default_network().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::NoValidConfig { skipped, .. } if skipped.len() == 1),
        "{e}"
    );
}

// ---- 1.7 list top level ----

#[test]
fn list_must_be_an_object() {
    assert!(matches!(
        problem(&parse_err("[]")),
        P::NotAnObject { found: "an array" }
    ));
    assert!(matches!(
        problem(&parse_err("null")),
        P::NotAnObject { found: "null" }
    ));
    assert!(matches!(parse_err("").kind(), ErrorKind::Syntax { .. }));
}

#[test]
fn list_name_is_required_and_a_string() {
    assert_eq!(
        problem(&parse_err(r#"{"plugins":[{"type":"x"}]}"#)),
        &P::MissingName
    );
    assert!(matches!(
        problem(&parse_err(r#"{"name":5,"plugins":[{"type":"x"}]}"#)),
        P::FieldType {
            found: "a number",
            ..
        }
    ));
    // Keys are looked up with exact case at the top level, as in libcni.
    assert_eq!(
        problem(&parse_err(r#"{"Name":"x","plugins":[{"type":"x"}]}"#)),
        &P::MissingName
    );
}

#[test]
fn list_cni_version_must_be_a_string() {
    let e = parse_err(r#"{"name":"n","cniVersion":null,"plugins":[{"type":"x"}]}"#);
    assert!(
        matches!(problem(&e), P::FieldType { field, found: "null", .. } if field == "cniVersion")
    );
    assert_eq!(e.network(), Some("n"));
}

#[test]
fn list_plugins_must_be_a_non_empty_array() {
    assert_eq!(problem(&parse_err(r#"{"name":"n"}"#)), &P::MissingPlugins);
    assert!(matches!(
        problem(&parse_err(r#"{"name":"n","plugins":null}"#)),
        P::FieldType { found: "null", .. }
    ));
    assert_eq!(
        problem(&parse_err(r#"{"name":"n","plugins":[]}"#)),
        &P::NoPlugins
    );
}

// ---- 1.8 plugin entries ----

#[test]
fn plugin_typed_keys_must_have_the_right_type() {
    for (plugin, field) in [
        (r#"{"type":5}"#, "plugins[0].type"),
        (r#"{"type":"x","name":[]}"#, "plugins[0].name"),
        (r#"{"type":"x","cniVersion":1}"#, "plugins[0].cniVersion"),
        (
            r#"{"type":"x","capabilities":{"a":"yes"}}"#,
            "plugins[0].capabilities",
        ),
        (
            r#"{"type":"x","capabilities":[]}"#,
            "plugins[0].capabilities",
        ),
        (r#"{"type":"x","ipam":{"type":1}}"#, "plugins[0].ipam"),
        (r#"{"type":"x","ipam":"host-local"}"#, "plugins[0].ipam"),
        (
            r#"{"type":"x","dns":{"nameservers":"8.8.8.8"}}"#,
            "plugins[0].dns",
        ),
        (r#"{"type":"x","prevResult":[]}"#, "plugins[0].prevResult"),
    ] {
        let e = parse_err(&format!(r#"{{"name":"n","plugins":[{plugin}]}}"#));
        assert!(
            matches!(problem(&e), P::FieldType { field: f, .. } if f == field),
            "{plugin}: {e}"
        );
    }
    // null is "absent" for typed keys.
    NetworkConfigList::from_bytes(
        br#"{"name":"n","plugins":[{"type":"x","ipam":null,"capabilities":null}]}"#,
    )
    .unwrap();
}

#[test]
fn plugin_type_is_required() {
    for plugin in [r#"{}"#, r#"{"type":""}"#, r#"{"type":null}"#, "null"] {
        let e = parse_err(&format!(
            r#"{{"name":"n","plugins":[{{"type":"a"}},{plugin}]}}"#
        ));
        assert_eq!(problem(&e), &P::MissingType { index: 1 }, "{plugin}");
    }
    let e = parse_err(r#"{"name":"n","plugins":[5]}"#);
    assert!(matches!(problem(&e), P::NotAnObject { found: "a number" }));
}

#[test]
fn plugin_keys_match_case_insensitively() {
    let net = NetworkConfigList::from_bytes(
        br#"{"name":"n","plugins":[{"Type":"upper","CAPABILITIES":{"portMappings":true}},{"TYPE":"a","type":"lower"}]}"#,
    )
    .unwrap();
    assert_eq!(net.plugins()[0].plugin_type(), "upper");
    assert!(net.plugins()[0].has_capability("portMappings"));
    assert_eq!(net.plugins()[1].plugin_type(), "lower");
}

// ---- 1.9 validation (stricter than libcni, on purpose) ----

#[test]
fn invalid_network_names_are_rejected() {
    for name in ["", "-x", "a b", "a/b", "../x", "é"] {
        let e = parse_err(&list(name));
        assert!(
            matches!(problem(&e), P::MissingName | P::InvalidName { .. }),
            "{name:?}: {e}"
        );
    }
    for name in ["a", "A.b_c-1", "0"] {
        NetworkConfigList::from_bytes(list(name).as_bytes()).unwrap();
    }
}

#[test]
fn plugin_types_that_are_paths_are_rejected() {
    for t in [
        "../bridge",
        "/usr/bin/bridge",
        "a/b",
        ".",
        "..",
        "a\\u0000b",
    ] {
        let e = parse_err(&format!(r#"{{"name":"n","plugins":[{{"type":"{t}"}}]}}"#));
        assert!(
            matches!(problem(&e), P::InvalidPluginType { index: 0, .. }),
            "{t}: {e}"
        );
    }
    NetworkConfigList::from_bytes(br#"{"name":"n","plugins":[{"type":"..bridge"}]}"#).unwrap();
}

#[test]
fn bogus_cni_version_is_rejected() {
    for v in ["bogus", "1.0.0-rc1", "1.0.0.0"] {
        let e = parse_err(&format!(
            r#"{{"name":"n","cniVersion":"{v}","plugins":[{{"type":"x"}}]}}"#
        ));
        assert!(
            matches!(problem(&e), P::InvalidVersion { field, .. } if field == "cniVersion"),
            "{v}"
        );
    }
    // A missing version is allowed (it means 0.1.0), and so is a future one.
    for text in [
        r#"{"name":"n","plugins":[{"type":"x"}]}"#,
        r#"{"name":"n","cniVersion":"2.0.0","plugins":[{"type":"x"}]}"#,
    ] {
        NetworkConfigList::from_bytes(text.as_bytes()).unwrap();
    }
}

#[test]
fn unknown_keys_are_kept() {
    let net = NetworkConfigList::from_bytes(
        br#"{"name":"n","whatever":1,"plugins":[{"type":"x","foo":{"bar":[1,2]}}]}"#,
    )
    .unwrap();
    assert_eq!(
        net.plugins()[0].get("foo").unwrap(),
        serde_json::json!({"bar":[1,2]})
    );
}

// ---- 1.10 bytes ----

#[test]
fn plugin_bytes_are_kept_as_written() {
    let text = r#"{"name":"n","plugins":[{"type":"x","z":1.0,"a":1E2,"big":12345678901234567890,"s":"\u00e9<>&\/","neg":-0}]}"#;
    let net = NetworkConfigList::from_bytes(text.as_bytes()).unwrap();
    assert_eq!(
        net.plugins()[0].raw(),
        r#"{"type":"x","z":1.0,"a":1E2,"big":12345678901234567890,"s":"\u00e9<>&\/","neg":-0}"#
    );
    assert_eq!(net.bytes(), text.as_bytes());
}

// ---- 1.11 .conf promotion ----

#[test]
fn conf_promotion_builds_a_one_plugin_list() {
    let p = PluginConfig::from_bytes(
        br#"{"cniVersion":"0.4.0","name":"c","type":"bridge","disableCheck":true, "mtu": 1.50}"#,
    )
    .unwrap();
    let net = NetworkConfigList::from_plugin(p).unwrap();
    assert_eq!(net.name(), "c");
    assert_eq!(net.cni_version(), "0.4.0");
    assert!(!net.disable_check());
    assert_eq!(
        std::str::from_utf8(net.bytes()).unwrap(),
        r#"{"cniVersion":"0.4.0","name":"c","plugins":[{"cniVersion":"0.4.0","name":"c","type":"bridge","disableCheck":true,"mtu":1.50}]}"#
    );
    // A .conf without a name cannot be a network (libcni matches it for "").
    let p = PluginConfig::from_bytes(br#"{"type":"bridge"}"#).unwrap();
    assert_eq!(
        problem(&NetworkConfigList::from_plugin(p).unwrap_err()),
        &P::MissingName
    );
}

// ---- 1.12 cniVersions ----

#[test]
fn cni_versions_picks_the_highest_supported() {
    let v = |text: &str| {
        NetworkConfigList::from_bytes(
            format!(r#"{{"name":"n",{text},"plugins":[{{"type":"x"}}]}}"#).as_bytes(),
        )
        .map(|n| n.cni_version().to_owned())
    };
    assert_eq!(v(r#""cniVersions":["1.0","0.4.0"]"#).unwrap(), "1.0");
    assert_eq!(
        v(r#""cniVersion":"0.3.1","cniVersions":["0.4.0","1.1.0","2.0.0"]"#).unwrap(),
        "1.1.0"
    );
    assert_eq!(
        v(r#""cniVersion":"2.0.0","cniVersions":["3.0.0"]"#).unwrap(),
        "2.0.0"
    );
    assert_eq!(
        v(r#""cniVersion":"1.1.0","cniVersions":["0.4.0"]"#).unwrap(),
        "1.1.0"
    );
    let e = v(r#""cniVersions":"1.0.0""#).unwrap_err();
    assert!(matches!(problem(&e), P::FieldType { field, .. } if field == "cniVersions"));
    let e = v(r#""cniVersions":[1]"#).unwrap_err();
    assert!(matches!(problem(&e), P::FieldType { field, .. } if field == "cniVersions[0]"));
    let e = v(r#""cniVersions":["1.0.0","x"]"#).unwrap_err();
    assert!(matches!(problem(&e), P::InvalidVersion { field, .. } if field == "cniVersions[1]"));
    let e = v(r#""cniVersion":"bogus","cniVersions":["1.0.0"]"#).unwrap_err();
    assert!(matches!(problem(&e), P::InvalidVersion { field, .. } if field == "cniVersion"));
}

// ---- 1.13 booleans ----

#[test]
fn booleans_accept_strings_in_any_case() {
    let b = |v: &str| {
        NetworkConfigList::from_bytes(
            format!(
                r#"{{"name":"n","disableCheck":{v},"disableGC":{v},"plugins":[{{"type":"x"}}]}}"#
            )
            .as_bytes(),
        )
    };
    for (v, want) in [
        ("true", true),
        ("false", false),
        (r#""TRUE""#, true),
        (r#""False""#, false),
    ] {
        let n = b(v).unwrap();
        assert_eq!((n.disable_check(), n.disable_gc()), (want, want), "{v}");
    }
    let e = b(r#""Yes""#).unwrap_err();
    assert_eq!(
        problem(&e),
        &P::InvalidBool {
            field: "disableCheck",
            value: "yes".into()
        }
    );
    assert!(matches!(
        problem(&b("1").unwrap_err()),
        P::FieldType {
            found: "a number",
            ..
        }
    ));
}

// ---- 1.14 drop-ins ----

#[test]
fn dropin_plugins_are_appended_after_inline_ones() {
    let d = TempDir::new("dropin");
    let f = d.write("10-net.conflist", &list("net"));
    d.write("net/20-b.conf", r#"{"type":"second"}"#);
    d.write("net/10-a.conf", r#"{"type":"first"}"#);
    d.write("net/30-c.json", r#"{"type":"ignored"}"#);
    d.write("net/sub/x.conf", r#"{"type":"ignored"}"#);
    let net = NetworkConfigList::from_file(&f).unwrap();
    let types: Vec<_> = net.plugins().iter().map(|p| p.plugin_type()).collect();
    assert_eq!(types, ["bridge", "first", "second"]);
    assert!(
        net.plugins()[1]
            .source()
            .unwrap()
            .ends_with("net/10-a.conf")
    );
    // Inline-only.
    let f = d.write(
        "20-inl.conflist",
        r#"{"name":"net","loadOnlyInlinedPlugins":"true","plugins":[{"type":"only"}]}"#,
    );
    assert_eq!(NetworkConfigList::from_file(&f).unwrap().plugins().len(), 1);
}

#[test]
fn plugins_may_come_only_from_dropins() {
    let d = TempDir::new("dropin-only");
    let f = d.write("n.conflist", r#"{"name":"n","cniVersion":"1.1.0"}"#);
    assert_eq!(
        problem(&NetworkConfigList::from_file(&f).unwrap_err()),
        &P::MissingPlugins
    );
    d.write("n/a.conf", r#"{"type":"x"}"#);
    assert_eq!(
        NetworkConfigList::from_file(&f).unwrap().plugins()[0].plugin_type(),
        "x"
    );
    let f = d.write(
        "m.conflist",
        r#"{"name":"m","loadOnlyInlinedPlugins":true}"#,
    );
    assert_eq!(
        problem(&NetworkConfigList::from_file(&f).unwrap_err()),
        &P::InlinedPluginsMissing
    );
}

#[test]
fn a_bad_dropin_is_reported_with_its_own_path() {
    let d = TempDir::new("dropin-bad");
    let f = d.write("n.conflist", &list("n"));
    let bad = d.write("n/a.conf", r#"{"type":""}"#);
    let e = NetworkConfigList::from_file(&f).unwrap_err();
    assert_eq!(e.path(), Some(bad.as_path()));
    assert_eq!(e.network(), Some("n"));
}

// ---- test data ----

#[test]
fn classic_examples_load() {
    let net =
        NetworkConfigList::from_plugin(PluginConfig::from_file(testdata("mynet.conf")).unwrap())
            .unwrap();
    assert_eq!((net.name(), net.cni_version()), ("mynet", "0.2.0"));
    assert_eq!(
        net.plugins()[0].get("ipam").unwrap()["subnet"],
        "10.22.0.0/16"
    );

    let net = NetworkConfigList::from_file(testdata("10-calico.conflist")).unwrap();
    assert_eq!(
        (net.name(), net.cni_version()),
        ("k8s-pod-network", "0.3.1")
    );
    assert_eq!(net.plugins()[0].plugin_type(), "calico");
    assert_eq!(net.plugins()[0].get("ipam").unwrap()["assign_ipv4"], "true");
    assert_eq!(net.capabilities(), ["portMappings"]);

    let net = NetworkConfigList::from_plugin(
        PluginConfig::from_file(testdata("00-multus.conf")).unwrap(),
    )
    .unwrap();
    assert_eq!(net.name(), "multus-cni-network");
    assert_eq!(net.capabilities(), ["bandwidth", "portMappings"]);
}

#[test]
fn calico_with_comments_fails_with_line_and_column() {
    let path = testdata("10-calico-comments.conflist");
    let e = NetworkConfigList::from_file(&path).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Syntax { line: 5, column: 5 }),
        "{e}"
    );
    assert_eq!(e.path(), Some(path.as_path()));
    assert!(e.to_string().contains("line 5, column 5"), "{e}");
}

#[test]
fn every_real_world_config_loads() {
    let mut n = 0;
    let mut stack = vec![testdata("real")];
    while let Some(dir) = stack.pop() {
        let all = ConfigLoader::new(&dir).load_all().unwrap();
        assert!(
            all.skipped().is_empty(),
            "{}: {:?}",
            dir.display(),
            all.skipped()
        );
        n += all.networks().len();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    assert!(n >= 15, "only {n} networks");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn config_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = NetworkConfigList::from_bytes(&bytes);
            let _ = PluginConfig::from_bytes(&bytes);
        }

        #[test]
        fn config_parser_never_panics_on_jsonish(
            s in r#"\{("(name|cniVersion|cniVersions|plugins|type|disableCheck|capabilities|ipam|Type)":("[a-z0-9./]{0,8}"|[0-9.e-]{1,5}|null|true|\[("[0-9.]{0,6}"|\{"type":"[a-z]{0,4}"\}|null|1),?\]|\{("[a-z]{1,5}":(true|"x"|1)),?\}),?){0,6}\}"#
        ) {
            let _ = NetworkConfigList::from_bytes(s.as_bytes());
            let _ = PluginConfig::from_bytes(s.as_bytes()).map(NetworkConfigList::from_plugin);
        }

        #[test]
        fn plugin_raw_bytes_survive_loading(key in "[a-z]{1,8}", num in "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?") {
            let text = format!(r#"{{"name":"n","plugins":[{{"type":"x","{key}x":{num}}}]}}"#);
            let net = NetworkConfigList::from_bytes(text.as_bytes()).unwrap();
            let want = format!("\"{key}x\":{num}");
            prop_assert!(net.plugins()[0].raw().contains(&want));
        }
    }
}

#[test]
fn huge_numbers_load_without_loss() {
    let text = r#"{"name":"n","plugins":[{"type":"x","a":1e999,"b":-123456789012345678901234567890.5e-400}]}"#;
    let net = NetworkConfigList::from_bytes(text.as_bytes()).unwrap();
    assert!(
        net.plugins()[0]
            .raw()
            .contains(r#""a":1e999,"b":-123456789012345678901234567890.5e-400"#)
    );
}

#[test]
fn invalid_utf8_is_a_syntax_error_with_position() {
    let e = NetworkConfigList::from_bytes(
        b"{\"name\":\"n\",\n \"x\":\"\xff\",\"plugins\":[{\"type\":\"x\"}]}",
    )
    .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Syntax { line: 2, column: 7 }),
        "{e}"
    );
}

#[test]
fn a_large_directory_loads_in_file_order_whichever_thread_parses_it() {
    // Enough files for several loader threads (256 each); broken files
    // interleaved, so each chunk has good and bad ones.
    let d = TempDir::new("parallel");
    for i in 0..1100 {
        let name = format!("{i:05}-net.conflist");
        if i % 97 == 0 {
            d.write(&name, "{ broken");
        } else {
            d.write(&name, &list(&format!("net{i:05}")));
        }
    }
    let all = d.loader().load_all().unwrap();
    let want: Vec<String> = (0..1100)
        .filter(|i| i % 97 != 0)
        .map(|i| format!("net{i:05}"))
        .collect();
    let got: Vec<&str> = all.networks().iter().map(|n| n.name()).collect();
    assert_eq!(got, want);
    let skipped: Vec<String> = all
        .skipped()
        .iter()
        .map(|e| {
            e.path()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let want: Vec<String> = (0..1100)
        .filter(|i| i % 97 == 0)
        .map(|i| format!("{i:05}-net.conflist"))
        .collect();
    assert_eq!(skipped, want);
}
