#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::import_bytes("opportunities.csv", data, |path| {
        pipewise_ingest::Source::canonical(path, pipewise_core::Entity::Opportunity)
    });
});
