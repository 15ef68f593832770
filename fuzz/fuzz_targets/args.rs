//! Fuzz target `args`: see `common::args`.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::args(data));
