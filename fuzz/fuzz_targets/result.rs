//! Fuzz target `result`: see `common::result`.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::result(data));
