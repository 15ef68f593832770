//! Fuzz target `config_dir`: see `common::config_dir`.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::config_dir(data));
