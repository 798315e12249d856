#![no_main]
//! Transcripts: the WebVTT and SubRip parsers on any text, and imports of the
//! bytes as a `.vtt` and as a `.srt` file (a failed import must write nothing).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = pipewise_ingest::vtt::parse(s);
        let _ = pipewise_ingest::vtt::parse_srt(s);
        let _ = pipewise_ingest::vtt::speaker_prefix(s);
    }
    mod_common::import_transcript("call.vtt", data);
    mod_common::import_transcript("call.srt", data);
});

#[path = "common.rs"]
mod common;
mod mod_common {
    pub fn import_transcript(file_name: &str, data: &[u8]) {
        let link = pipewise_ingest::TranscriptLink { lead_id: Some("none".into()), ..Default::default() };
        super::common::import_bytes(file_name, data, |path| pipewise_ingest::Source::Vtt { path, link });
    }
}
