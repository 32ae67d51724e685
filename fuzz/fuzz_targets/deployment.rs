//! Fuzz target `deployment`: see `fuzzing::deployment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::deployment(data));
