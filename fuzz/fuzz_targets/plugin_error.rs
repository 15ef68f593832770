//! Fuzz target `plugin_error`: see `common::plugin_error`.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::plugin_error(data));
