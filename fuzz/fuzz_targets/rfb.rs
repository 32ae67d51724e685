//! Fuzz target `rfb`: see `fuzzing::rfb`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::rfb(data));
