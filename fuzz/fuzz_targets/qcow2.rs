//! Fuzz target `qcow2`: see `fuzzing::qcow2`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::qcow2(data));
