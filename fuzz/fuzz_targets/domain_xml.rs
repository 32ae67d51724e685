//! Fuzz target `domain_xml`: see `fuzzing::domain_xml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::domain_xml(data));
