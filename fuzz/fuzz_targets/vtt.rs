#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = pipewise_ingest::vtt::parse(s);
    }
    mod_common::import_vtt(data);
});

#[path = "common.rs"]
mod common;
mod mod_common {
    pub fn import_vtt(data: &[u8]) {
        let link = pipewise_ingest::TranscriptLink { lead_id: Some("none".into()), ..Default::default() };
        super::common::import_bytes("call.vtt", data, |path| pipewise_ingest::Source::Vtt { path, link });
    }
}
