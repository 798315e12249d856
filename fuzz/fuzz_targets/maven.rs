#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

// The Maven pipeline file through the shipped Maven mapping.
fuzz_target!(|data: &[u8]| {
    let mapping = pipewise_ingest::Mapping::maven();
    let file = mapping.files.iter().position(|f| f.name.as_deref() == Some("sales_pipeline.csv")).unwrap();
    common::import_bytes("sales_pipeline.csv", data, |path| pipewise_ingest::Source::Csv { path, mapping, file, canonical: false });
});
