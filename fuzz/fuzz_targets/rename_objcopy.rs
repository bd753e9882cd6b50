#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dlstatic_fuzz::rename_objcopy::check(data));
