//! Fuzz target `recipe`: see `fuzzing::recipe`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::recipe(data));
