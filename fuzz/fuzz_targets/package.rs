//! Fuzz target `package`: see `fuzzing::package`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::package(data));
