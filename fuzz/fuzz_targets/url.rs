//! Fuzz target `url`: see `fuzzing::url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::url(data));
