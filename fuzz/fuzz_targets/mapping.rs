#![no_main]
use libfuzzer_sys::fuzz_target;

// Mapping files are user input too: any text is a mapping or a clear error.
fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = pipewise_ingest::Mapping::from_toml(s, "fuzz.toml");
    }
});
