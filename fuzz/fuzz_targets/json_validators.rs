//! See `magnum_fuzz::api` for what this target feeds and checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| magnum_fuzz::api::run_validators(data));
