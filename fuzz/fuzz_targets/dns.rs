//! Fuzz target `dns`: see `fuzzing::dns`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::dns(data));
