//! Transcripts as real exports write them (../shared/cases/imports): each file
//! imported by the real binary into a database holding the deal it belongs to,
//! then read back with `calls show` and measured with `calls analyze`.

use std::path::{Path, PathBuf};

mod common;

use common::pipewise;

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/cases/imports")
}

fn case(name: &str) -> String {
    cases().join(name).display().to_string()
}

fn json(out: &(bool, String, String)) -> serde_json::Value {
    serde_json::from_str(&out.1).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.1, out.2))
}

/// A scratch database with user u1 ("Person A") and opportunity opp1.
fn base() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, entity) in [
        ("base-users.csv", "users"),
        ("base-opportunities.csv", "opportunities"),
    ] {
        let out = pipewise(
            dir.path(),
            &[
                "--db",
                "t.db",
                "import",
                "csv",
                &case(file),
                "--entity",
                entity,
            ],
        );
        assert!(out.0, "{}\n{}", out.1, out.2);
    }
    dir
}

/// Imports a transcript linked to opp1; returns the report as JSON.
fn import(dir: &Path, file: &str) -> serde_json::Value {
    let out = pipewise(
        dir,
        &[
            "--db",
            "t.db",
            "import",
            "vtt",
            file,
            "--opportunity",
            "opp1",
            "--json",
        ],
    );
    assert!(out.0, "{}\n{}", out.1, out.2);
    json(&out)
}

/// `calls show ID --json`.
fn show(dir: &Path, id: &str) -> serde_json::Value {
    let out = pipewise(dir, &["--db", "t.db", "calls", "show", id, "--json"]);
    assert!(out.0, "{}\n{}", out.1, out.2);
    json(&out)
}

/// (speaker, role, start, end, speech, text) of every turn.
type Row = (Option<String>, String, i64, i64, i64, String);

fn turns(call: &serde_json::Value) -> Vec<Row> {
    call["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["speaker"].as_str().map(str::to_string),
                t["speaker_role"].as_str().unwrap().to_string(),
                t["start_ms"].as_i64().unwrap(),
                t["end_ms"].as_i64().unwrap(),
                t["speech_ms"].as_i64().unwrap(),
                t["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(speaker: Option<&str>, role: &str, start: i64, end: i64, speech: i64, text: &str) -> Row {
    (
        speaker.map(str::to_string),
        role.to_string(),
        start,
        end,
        speech,
        text.to_string(),
    )
}

fn warnings(report: &serde_json::Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn zoom_speaker_with_a_title() {
    let dir = base();
    let r = import(dir.path(), &case("zoom-speaker-with-title.vtt"));
    assert_eq!(r["transcript_cues"], 4);
    assert_eq!(r["cues_without_speaker"], 1);
    assert_eq!(r["entities"]["conversation_turns"]["inserted"], 3);
    let w = warnings(&r);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("zoom-speaker-with-title.vtt: 1 of 4 cues name no speaker")
            && w[0].contains("line 16 \"Hmm.\""),
        "{w:?}"
    );
    let call = show(dir.path(), "zoom-speaker-with-title");
    assert_eq!(call["opportunity_id"], "opp1");
    assert_eq!(call["user_id"], "u1", "Person A is the rep, a known user");
    assert_eq!(call["user_name"], "Person A");
    assert_eq!(call["source_file"], "zoom-speaker-with-title.vtt");
    assert_eq!(call["duration_s"], 8);
    assert_eq!(
        turns(&call),
        [
            row(Some("Person A"), "rep", 50, 1790, 1740, "Hi!"),
            row(
                Some("Dr. Person C"),
                "customer",
                2000,
                6000,
                3500,
                "and I'll just do a little walkthrough. Can you zoom it?"
            ),
            row(None, "other", 7000, 8000, 1000, "Hmm."),
        ]
    );
    // Importing it again changes nothing.
    let again = import(dir.path(), &case("zoom-speaker-with-title.vtt"));
    assert_eq!(again["entities"]["conversation_turns"]["unchanged"], 3);
    // The text report shows the counts and the warning too.
    let out = pipewise(
        dir.path(),
        &[
            "--db",
            "t.db",
            "import",
            "vtt",
            &case("zoom-speaker-with-title.vtt"),
            "--opportunity",
            "opp1",
        ],
    );
    assert!(out.0, "{}", out.2);
    assert!(
        out.1
            .contains("transcript cues read: 4; without a speaker: 1"),
        "{}",
        out.1
    );
    assert!(out.1.contains("warning: "), "{}", out.1);
    // And `calls show` in words.
    let out = pipewise(
        dir.path(),
        &["--db", "t.db", "calls", "show", "zoom-speaker-with-title"],
    );
    assert!(out.0, "{}", out.2);
    for want in [
        "opportunity:  opp1",
        "rep:          Person A (u1)",
        "Dr. Person C",
        "(none)",
        "3.500",
    ] {
        assert!(out.1.contains(want), "{want:?} in\n{}", out.1);
    }
}

#[test]
fn teams_legacy_timestamps() {
    let dir = base();
    let r = import(dir.path(), &case("teams-legacy-timestamps.vtt"));
    assert_eq!(r["transcript_cues"], 1);
    assert_eq!(r["cues_without_speaker"], 0);
    assert!(warnings(&r).is_empty(), "{r}");
    let call = show(dir.path(), "teams-legacy-timestamps");
    assert_eq!(
        turns(&call),
        [row(Some("Person A"), "rep", 0, 570, 570, "There you go.")]
    );
}

#[test]
fn a_cue_without_a_blank_line_before_it() {
    let dir = base();
    let r = import(dir.path(), &case("vtt-cue-without-blank-line.vtt"));
    assert_eq!(r["transcript_cues"], 2);
    assert_eq!(r["cues_without_speaker"], 2);
    assert!(warnings(&r)[0].contains("no cue names a speaker"), "{r}");
    let call = show(dir.path(), "vtt-cue-without-blank-line");
    assert_eq!(
        turns(&call),
        [
            row(None, "other", 1000, 2000, 1000, "yeah"),
            row(None, "other", 2000, 3000, 1000, "this will happen"),
        ]
    );
}

#[test]
fn zoom_captions_without_speakers_are_imported_and_left_out_with_why() {
    let dir = base();
    let r = import(dir.path(), &case("zoom-captions-no-speakers.vtt"));
    assert_eq!(r["transcript_cues"], 2);
    assert_eq!(r["cues_without_speaker"], 2);
    let w = warnings(&r);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("zoom-captions-no-speakers.vtt: no cue names a speaker (2 cues)"),
        "{w:?}"
    );
    // No speaker is a known user: the call is the opportunity owner's, with no roles.
    assert_eq!(
        show(dir.path(), "zoom-captions-no-speakers")["user_id"],
        "u1"
    );
    let call = show(dir.path(), "zoom-captions-no-speakers");
    assert_eq!(
        turns(&call),
        [
            row(None, "other", 68_000, 69_000, 1000, "This doesn't."),
            row(
                None,
                "other",
                69_000,
                73_000,
                4000,
                "This is the window that we use to write our code."
            ),
        ]
    );
    // The call is left out of the figures, and the analysis says so and why.
    let out = pipewise(dir.path(), &["--db", "t.db", "calls", "analyze"]);
    assert!(out.0, "{}", out.2);
    assert!(out.1.contains("0 analysed, 1 left out"), "{}", out.1);
    assert!(
        out.1.contains("zoom-captions-no-speakers")
            && out.1.contains("no turn has a rep or customer speaker role"),
        "{}",
        out.1
    );
    let out = pipewise(dir.path(), &["--db", "t.db", "calls", "analyze", "--json"]);
    assert!(out.0, "{}", out.2);
    let v = json(&out);
    assert_eq!(v["left_out"][0]["call"], "zoom-captions-no-speakers");
    assert_eq!(v["left_out"][0]["reason"], "no_speaker_roles");
    assert!(
        v["left_out"][0]["why"]
            .as_str()
            .unwrap()
            .contains("names no speakers")
    );
    // One call asked for by id says the same.
    let out = pipewise(
        dir.path(),
        &[
            "--db",
            "t.db",
            "calls",
            "analyze",
            "--call",
            "zoom-captions-no-speakers",
            "--json",
        ],
    );
    assert!(out.0, "{}", out.2);
    let v = json(&out);
    assert!(v["analysis"].is_null());
    assert_eq!(v["left_out"]["reason"], "no_speaker_roles");
    // The rep's own figures say it too.
    let out = pipewise(
        dir.path(),
        &["--db", "t.db", "calls", "analyze", "--rep", "Person A"],
    );
    assert!(out.0, "{}", out.2);
    assert!(out.1.contains("zoom-captions-no-speakers"), "{}", out.1);
}

#[test]
fn srt_imports_through_the_same_path() {
    let dir = base();
    let srt = dir.path().join("otter-call.srt");
    std::fs::write(
        &srt,
        "1\r\n00:00:01,000 --> 00:00:04,000\r\nPerson A: What made you look at this now?\r\n\r\n\
         2\r\n00:00:04,500 --> 00:00:06,000\r\nJosé Müller: Our budget &amp; the renewal.\r\n\r\n\
         3\r\n00:00:10,000 --> 00:00:12,000\r\nJosé Müller: And <i>security</i>.\r\n",
    )
    .unwrap();
    let r = import(dir.path(), srt.to_str().unwrap());
    assert_eq!(r["transcript_cues"], 3);
    assert_eq!(r["cues_without_speaker"], 0);
    let call = show(dir.path(), "otter-call");
    assert_eq!(
        turns(&call),
        [
            row(
                Some("Person A"),
                "rep",
                1000,
                4000,
                3000,
                "What made you look at this now?"
            ),
            row(
                Some("José Müller"),
                "customer",
                4500,
                12_000,
                3500,
                "Our budget & the renewal. And security."
            ),
        ]
    );
    // Measured on speech time: the rep spoke 3 s, the customer 3.5 s (not the 7.5 s the turn spans).
    let out = pipewise(
        dir.path(),
        &[
            "--db",
            "t.db",
            "calls",
            "analyze",
            "--call",
            "otter-call",
            "--json",
        ],
    );
    assert!(out.0, "{}", out.2);
    let a = &json(&out)["analysis"];
    assert_eq!(a["rep_talk_s"], 3.0);
    assert_eq!(a["customer_talk_s"], 3.5);
    // A SubRip file without the .srt extension is recognised by its shape.
    let txt = dir.path().join("recorder-export.txt");
    std::fs::copy(&srt, &txt).unwrap();
    let r = import(dir.path(), txt.to_str().unwrap());
    assert_eq!(r["transcript_cues"], 3);
    // A broken SubRip timing is located.
    let bad = dir.path().join("bad.srt");
    std::fs::write(&bad, "1\n00:00:01,000 --> 00:00:0x,000\nPerson A: hi\n").unwrap();
    let out = pipewise(
        dir.path(),
        &[
            "--db",
            "t.db",
            "import",
            "srt",
            bad.to_str().unwrap(),
            "--opportunity",
            "opp1",
        ],
    );
    assert!(!out.0);
    assert!(out.1.contains("bad.srt:2:18"), "{}", out.1);
}

#[test]
fn unknown_call_is_an_error() {
    let dir = base();
    let out = pipewise(dir.path(), &["--db", "t.db", "calls", "show", "nope"]);
    assert!(!out.0);
    assert!(out.2.contains("no call with id \"nope\""), "{}", out.2);
}

#[test]
fn display_names_two_speaker_cues_and_cues_out_of_order() {
    let dir = base();
    // Person A as Teams writes a "Last, First" display name or a guest tag
    // is the rep; a Zoom cue holding two speakers' lines is two turns; a cue
    // that starts before the one above it is reported.
    let vtt = dir.path().join("mixed.vtt");
    std::fs::write(
        &vtt,
        "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v A, Person>Thanks for joining.</v>\n\n\
         00:00:03.000 --> 00:00:05.000\n<v Dana Buyer>Glad to.</v>\n\n\
         00:00:05.000 --> 00:00:07.000\n<v Person A (Guest)>Shall we start?</v>\n\n\
         00:00:08.000 --> 00:00:12.000\nPerson A: Hi.\nDana Buyer: Hello there, all good.\n\n\
         00:00:07.500 --> 00:00:07.900\nDana Buyer: Sorry.\n",
    )
    .unwrap();
    let r = import(dir.path(), &vtt.display().to_string());
    let w = warnings(&r);
    assert!(
        w.iter()
            .any(|w| w.contains("1 cue starts before the cue before it (first at line 16)")),
        "{w:?}"
    );
    let call = show(dir.path(), "mixed");
    let got: Vec<(Option<String>, String)> = turns(&call).into_iter().map(|t| (t.0, t.1)).collect();
    let rep = |s: &str| (Some(s.to_string()), "rep".to_string());
    let customer = |s: &str| (Some(s.to_string()), "customer".to_string());
    assert_eq!(
        got,
        vec![
            rep("A, Person"),
            customer("Dana Buyer"),
            rep("Person A (Guest)"),
            rep("Person A"),
            customer("Dana Buyer"),
        ]
    );
    // The two-speaker cue's time is shared by the length of what each said.
    let t = turns(&call);
    assert_eq!((t[3].2, t[4].3), (8_000, 12_000));
    assert!(t[3].3 > 8_000 && t[3].3 < 10_000, "{:?}", t[3]);
    assert_eq!(t[4].5, "Hello there, all good. Sorry.");
}
