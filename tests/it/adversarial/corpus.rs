//! Replays the fuzz corpus (`fuzz/corpus/<target>/`, seeded from
//! `testdata/` and grown by `cargo +nightly fuzz run`) through the same
//! entry points as the fuzz targets, on stable: CI never needs nightly, and
//! every input a fuzzer once found stays a regression test.

use std::path::Path;

/// The inputs of one corpus directory.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "{} is empty", dir.display());
    v
}

#[path = "../../../fuzz/fuzz_targets/common.rs"]
mod common;

#[test]
fn config_corpus() {
    for (name, input) in corpus("config") {
        eprintln!("config/{name}");
        common::config(&input);
    }
}

#[test]
fn config_dir_corpus() {
    for (name, input) in corpus("config_dir") {
        eprintln!("config_dir/{name}");
        common::config_dir(&input);
    }
}

#[test]
fn result_corpus() {
    for (name, input) in corpus("result") {
        eprintln!("result/{name}");
        common::result(&input);
    }
}

#[test]
fn plugin_error_corpus() {
    for (name, input) in corpus("plugin_error") {
        eprintln!("plugin_error/{name}");
        common::plugin_error(&input);
    }
}

#[test]
fn args_corpus() {
    for (name, input) in corpus("args") {
        eprintln!("args/{name}");
        common::args(&input);
    }
}
