//! Transcript turns and their WebVTT form (with `<v Speaker>` voice tags).
//! Writing is pure and lives here so the simulator and the importers share it;
//! parsing WebVTT is an importer's job (`pipewise_ingest::vtt`).

use serde::Serialize;

/// One speaker turn, times in milliseconds from the start of the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Turn {
    pub speaker: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Time the speaker actually spoke: the sum of the turn's cues' own
    /// durations (overlaps counted once), so the silence between cues merged
    /// into one turn is not talk time. At most `end_ms - start_ms`.
    pub speech_ms: i64,
    pub text: String,
}

impl Turn {
    /// A turn of one stretch of speech (`speech_ms = end_ms - start_ms`).
    pub fn spoken(speaker: Option<String>, start_ms: i64, end_ms: i64, text: String) -> Turn {
        Turn {
            speaker,
            start_ms,
            end_ms,
            speech_ms: (end_ms - start_ms).max(0),
            text,
        }
    }
}

/// Writes turns as WebVTT, one cue per turn (a turn's speech time is not
/// written: read back, each turn is one cue that speaks throughout).
pub fn render_vtt(turns: &[Turn]) -> String {
    let mut s = String::from("WEBVTT\n\n");
    for (i, t) in turns.iter().enumerate() {
        s.push_str(&format!(
            "{}\n{} --> {}\n",
            i + 1,
            timestamp(t.start_ms),
            timestamp(t.end_ms)
        ));
        match &t.speaker {
            Some(sp) => s.push_str(&format!("<v {sp}>{}</v>\n\n", t.text)),
            None => s.push_str(&format!("{}\n\n", t.text)),
        }
    }
    s
}

fn timestamp(ms: i64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}
