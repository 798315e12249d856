//! Transcripts as meeting tools export them: WebVTT (Zoom, Microsoft Teams,
//! Google Meet) and SubRip `.srt` (Otter, Meet, call recorders).
//!
//! A transcript is a list of cues, each with a timing line
//! (`00:01:02.500 --> 00:01:05.000`, SRT: `00:01:02,500 --> 00:01:05,000`) and
//! text. Speakers come from voice tags (`<v Jane Doe>Hello</v>`, Teams) or from
//! a `Name: text` prefix (Zoom, SRT) when the prefix looks like a name (see
//! [`speaker_prefix`]). Consecutive cues of the same speaker are one turn; the
//! turn spans its cues and its speech time is the sum of the cues' own
//! durations, not the silence between them.
//!
//! What exports really contain is read as it is: a byte-order mark, CR, LF or
//! CRLF line ends, timestamps without padding or hours and with 1 to 3 fraction
//! digits (`0:0:0.0`, older Teams), cue settings after the end time, NOTE, STYLE
//! and REGION blocks, inline tags (`<c>`, `<i>`, `<00:00:01.000>`), HTML
//! character references (`&amp;`, `&#39;`, `&#x27;`, `&eacute;`), and a timing
//! line that follows a cue's text without a blank line (it starts a new cue).
//! A cue that names no speaker is kept (speaker unknown) and listed in
//! [`Transcript::unnamed`] so the importer can warn.

use std::borrow::Cow;
use std::path::Path;

pub use pipewise_core::transcript::{Turn, render_vtt as render};

/// A problem at a line of a transcript (1-based line and column, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VttError {
    pub line: u64,
    pub column: usize,
    pub value: String,
    pub message: String,
}

/// The two transcript formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// WebVTT: a `WEBVTT` header, then cues.
    WebVtt,
    /// SubRip: numbered cues, comma before the milliseconds, no header.
    Srt,
}

impl Format {
    /// The format of a transcript: a `WEBVTT` header means WebVTT; otherwise
    /// SubRip when the file is named `.srt` or its first cue has SubRip's shape
    /// (a number over a timing line, or a timing line). Anything else is read
    /// as WebVTT, whose parser then says that the header is missing.
    pub fn detect(path: Option<&Path>, text: &str) -> Format {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.starts_with("WEBVTT") {
            return Format::WebVtt;
        }
        let srt_name = path
            .and_then(Path::extension)
            .is_some_and(|e| e.eq_ignore_ascii_case("srt"));
        if srt_name || looks_like_srt(text) {
            Format::Srt
        } else {
            Format::WebVtt
        }
    }
}

/// A parsed transcript.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transcript {
    pub turns: Vec<Turn>,
    /// Cues read (cues with neither text nor speaker are not counted).
    pub cues: usize,
    /// Cues that name no speaker, in file order.
    pub unnamed: Vec<UnnamedCue>,
    /// Lines of timings that start before the cue before them (out of order:
    /// kept where they are, and reported).
    pub out_of_order: Vec<u64>,
}

/// A cue without a speaker: where it is and how it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnnamedCue {
    /// Line of its timing.
    pub line: u64,
    /// Its text (at most 40 characters).
    pub text: String,
}

/// Parses a WebVTT transcript. All malformed cues are reported, not just the first.
pub fn parse(text: &str) -> Result<Transcript, Vec<VttError>> {
    parse_as(Format::WebVtt, text)
}

/// Parses a SubRip (`.srt`) transcript.
pub fn parse_srt(text: &str) -> Result<Transcript, Vec<VttError>> {
    parse_as(Format::Srt, text)
}

/// Parses a transcript in the given format.
pub fn parse_as(format: Format, text: &str) -> Result<Transcript, Vec<VttError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = split_lines(text);
    let mut i = 0;
    if format == Format::WebVtt {
        let first = lines.first().copied().unwrap_or("");
        if !first.starts_with("WEBVTT") {
            return Err(vec![VttError {
                line: 1,
                column: 1,
                value: first.chars().take(40).collect(),
                message: "expected the WEBVTT header on the first line (or a SubRip file: numbered cues with times such as 00:00:01,000 --> 00:00:02,000)".into(),
            }]);
        }
        // The header block runs to the first blank line (or to a timing line
        // written without one).
        i = 1;
        while i < lines.len() && !is_blank(lines[i]) && !lines[i].contains("-->") {
            i += 1;
        }
    }
    let mut p = Parser {
        format,
        out: Transcript::default(),
        errors: Vec::new(),
        last_start: None,
        lone: lone_labels(&lines[i..]),
    };
    let mut cue: Option<Cue<'_>> = None;
    while i < lines.len() {
        let line = lines[i];
        let line_no = i as u64 + 1;
        if is_blank(line) {
            p.finish(cue.take());
            i += 1;
            continue;
        }
        let next_is_timing = lines.get(i + 1).is_some_and(|l| l.contains("-->"));
        match cue.as_mut() {
            None => {
                if format == Format::WebVtt && is_special_block(line) {
                    // NOTE, STYLE and REGION blocks run to the next blank line.
                    while i < lines.len() && !is_blank(lines[i]) {
                        i += 1;
                    }
                    continue;
                }
                if line.contains("-->") {
                    cue = Some(p.start(line, line_no));
                } else if next_is_timing {
                    // A cue identifier (a number in SubRip).
                } else {
                    // After a cue number the timing line is wrong; otherwise this line is.
                    let at = match lines.get(i + 1) {
                        Some(next)
                            if !is_blank(next)
                                && line.trim().bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            i + 1
                        }
                        _ => i,
                    };
                    p.errors.push(VttError {
                        line: at as u64 + 1,
                        column: 1,
                        value: lines[at].chars().take(60).collect(),
                        message: "expected a cue timing line such as 00:01:02.500 --> 00:01:05.000"
                            .into(),
                    });
                    while i < lines.len() && !is_blank(lines[i]) {
                        i += 1;
                    }
                    continue;
                }
            }
            Some(c) => {
                if starts_like_timing(line) {
                    // A timing line without a blank line before it starts a new cue.
                    let done = cue.take();
                    p.finish(done);
                    cue = Some(p.start(line, line_no));
                } else if next_is_timing
                    && starts_like_timing(lines[i + 1])
                    && line.trim().bytes().all(|b| b.is_ascii_digit())
                {
                    // The next cue's number, written without a blank line before it.
                    let done = cue.take();
                    p.finish(done);
                } else {
                    c.payload.push(line);
                }
            }
        }
        i += 1;
    }
    p.finish(cue);
    if p.errors.is_empty() {
        Ok(p.out)
    } else {
        Err(p.errors)
    }
}

/// One cue being read: its timing (`None` when the timing line was malformed,
/// so its text is skipped) and its text lines.
struct Cue<'a> {
    line: u64,
    timing: Option<(i64, i64)>,
    payload: Vec<&'a str>,
}

struct Parser {
    format: Format,
    out: Transcript,
    errors: Vec<VttError>,
    /// Start of the previous cue.
    last_start: Option<i64>,
    /// One-word `Label:` prefixes seen once in the file: a label of the
    /// text (`Preis:`, `Итог:`), not a speaker.
    lone: std::collections::HashSet<String>,
}

impl Parser {
    fn start<'a>(&mut self, line: &str, line_no: u64) -> Cue<'a> {
        let timing = match parse_timing(line) {
            Ok(t) => Some(t),
            Err((column, value, message)) => {
                self.errors.push(VttError {
                    line: line_no,
                    column,
                    value,
                    message,
                });
                None
            }
        };
        Cue {
            line: line_no,
            timing,
            payload: Vec::new(),
        }
    }

    /// Adds a cue to the transcript: merged into the last turn when the same
    /// speaker goes on, a new turn otherwise.
    fn finish(&mut self, cue: Option<Cue<'_>>) {
        let Some(Cue {
            line,
            timing: Some((start, end)),
            payload,
        }) = cue
        else {
            return;
        };
        if self.last_start.is_some_and(|s| start < s) {
            self.out.out_of_order.push(line);
        }
        self.last_start = Some(start);
        // Several speakers in one cue (a Zoom caption holding two lines, each
        // `Name: text`): one cue per speaker, the time shared by text length.
        let groups = speaker_groups(&payload, &self.lone);
        if groups.len() > 1 {
            let total: usize = groups
                .iter()
                .map(|g| g.iter().map(|l| l.len()).sum::<usize>())
                .sum();
            let mut at = start;
            for (k, g) in groups.iter().enumerate() {
                let len: usize = g.iter().map(|l| l.len()).sum();
                let to = if k + 1 == groups.len() {
                    end
                } else {
                    at + ((end - start) as f64 * len as f64 / total.max(1) as f64).round() as i64
                };
                self.add(line, at, to, g);
                at = to;
            }
        } else {
            self.add(line, start, end, &payload);
        }
    }

    /// Adds one speaker's cue: merged into the last turn when the same
    /// speaker goes on, a new turn otherwise.
    fn add(&mut self, line: u64, start: i64, end: i64, payload: &[&str]) {
        let (speaker, text) = speaker_and_text(&payload.join("\n"), self.format, &self.lone);
        if text.is_empty() && speaker.is_none() {
            return;
        }
        self.out.cues += 1;
        if speaker.is_none() {
            self.out.unnamed.push(UnnamedCue {
                line,
                text: text.chars().take(40).collect(),
            });
        }
        match self.out.turns.last_mut() {
            Some(last) if speaker.is_some() && last.speaker == speaker => {
                // Only the part of this cue not already covered is new speech.
                last.speech_ms += (end - start.max(last.end_ms)).max(0);
                last.end_ms = last.end_ms.max(end);
                if !text.is_empty() {
                    if !last.text.is_empty() {
                        last.text.push(' ');
                    }
                    last.text.push_str(&text);
                }
            }
            _ => self.out.turns.push(Turn::spoken(speaker, start, end, text)),
        }
    }
}

/// A cue's lines grouped by speaker: a new group at each line after the first
/// that starts with its own `Name:` prefix (only for cues without voice tags).
fn speaker_groups<'a>(
    payload: &[&'a str],
    lone: &std::collections::HashSet<String>,
) -> Vec<Vec<&'a str>> {
    let mut groups: Vec<Vec<&'a str>> = Vec::new();
    if payload.iter().any(|l| l.contains("<v")) {
        return vec![payload.to_vec()];
    }
    let named = |l: &str| {
        let l = collapse(l);
        speaker_prefix(&l).is_some_and(|(n, _)| !lone.contains(n))
    };
    for (i, l) in payload.iter().enumerate() {
        if i == 0 || !named(l) {
            match groups.last_mut() {
                Some(g) => g.push(l),
                None => groups.push(vec![l]),
            }
        } else {
            groups.push(vec![l]);
        }
    }
    // Only when the first line names a speaker too: otherwise a caption's
    // second line is the same person's words.
    if groups.len() > 1 && !named(groups[0][0]) {
        return vec![payload.to_vec()];
    }
    groups
}

/// One-word `Label:` prefixes that start only one line of the file. Zoom
/// names a speaker on every line they say; a one-word label seen once is a
/// word of the text in a language whose labels are not known here (`Preis:`,
/// `Итог:`, `价格:`). Names of two words or more are always names.
fn lone_labels(lines: &[&str]) -> std::collections::HashSet<String> {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for l in lines {
        let l = collapse(l);
        if let Some((name, _)) = speaker_prefix(&l) {
            if !name.contains(' ') {
                *seen.entry(name.to_string()).or_default() += 1;
            }
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n == 1)
        .map(|(k, _)| k)
        .collect()
}

/// Lines split at LF, CRLF or a lone CR (old Mac exports), without their ends.
fn split_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let (mut from, mut i) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'\n' => {
                out.push(&text[from..i]);
                from = i + 1;
            }
            b'\r' => {
                out.push(&text[from..i]);
                if b.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                from = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if from < b.len() {
        out.push(&text[from..]);
    }
    out
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// `NOTE`, `STYLE` or `REGION` alone or followed by a blank (WebVTT's non-cue blocks).
fn is_special_block(line: &str) -> bool {
    ["NOTE", "STYLE", "REGION"].iter().any(|k| {
        line.strip_prefix(k)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    })
}

/// A line inside a cue's text that is really the next cue's timing: it starts
/// with a digit and has an arrow.
fn starts_like_timing(line: &str) -> bool {
    line.trim_start().starts_with(|c: char| c.is_ascii_digit()) && line.contains("-->")
}

/// The first cue of a file without a header: a number over a timing line, or a timing line.
fn looks_like_srt(text: &str) -> bool {
    let mut lines = split_lines(text).into_iter().filter(|l| !is_blank(l));
    match (lines.next(), lines.next()) {
        (Some(first), second) if first.trim().bytes().all(|b| b.is_ascii_digit()) => {
            second.is_some_and(|l| parse_timing(l).is_ok())
        }
        (Some(first), _) => parse_timing(first).is_ok(),
        _ => false,
    }
}

/// Column (1-based, in characters) of byte offset `at` of `line`.
fn column(line: &str, at: usize) -> usize {
    line[..at.min(line.len())].chars().count() + 1
}

/// `START --> END [cue settings]`: the times in milliseconds, or the column,
/// value and message of the problem.
fn parse_timing(line: &str) -> Result<(i64, i64), (usize, String, String)> {
    const EXPECTED: &str = "expected a timestamp such as 00:01:02.500, 1:02.5 or 00:01:02,500";
    let Some(arrow) = line.find("-->") else {
        return Err((
            1,
            line.chars().take(60).collect(),
            "expected a cue timing line such as 00:01:02.500 --> 00:01:05.000".into(),
        ));
    };
    let left = &line[..arrow];
    let start_text = left.trim();
    let start_at = left.len() - left.trim_start().len();
    let Some(start) = parse_timestamp(start_text) else {
        return Err((column(line, start_at), start_text.into(), EXPECTED.into()));
    };
    let right = &line[arrow + 3..];
    let end_at = arrow + 3 + (right.len() - right.trim_start().len());
    let end_text = right.split_whitespace().next().unwrap_or("");
    let Some(end) = parse_timestamp(end_text) else {
        return Err((column(line, end_at), end_text.into(), EXPECTED.into()));
    };
    if end < start {
        return Err((
            column(line, end_at),
            end_text.into(),
            "the cue ends before it starts; expected an end time after the start".into(),
        ));
    }
    Ok((start, end))
}

/// A timestamp in milliseconds: `[h:]m:s[.f]` with any number of digits in
/// each field (`0:0:0.0`, `00:01:02.500`, `1:02.5`) and a fraction of 1 to 3
/// digits after a period or a comma (SubRip). Minutes and seconds below 60.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let (hms, frac) = match s.find(['.', ',']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let ms = match frac {
        None => 0,
        Some(f) if (1..=3).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
            // "5" is 500 ms, "05" 50 ms, "005" 5 ms.
            f.parse::<i64>().ok()? * 10i64.pow(3 - f.len() as u32)
        }
        Some(_) => return None,
    };
    let mut fields = [0i64; 3];
    let mut n = 0;
    for part in hms.split(':') {
        if n == 3 || part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        fields[n] = part.parse().ok()?;
        n += 1;
    }
    let (h, m, sec) = match n {
        2 => (0, fields[0], fields[1]),
        3 => (fields[0], fields[1], fields[2]),
        _ => return None,
    };
    if m > 59 || sec > 59 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + ms)
}

/// The speaker (from a voice tag or a `Name:` prefix) and the plain text of a cue.
fn speaker_and_text(
    payload: &str,
    format: Format,
    lone: &std::collections::HashSet<String>,
) -> (Option<String>, String) {
    let mut speaker = None;
    let mut out = String::with_capacity(payload.len());
    let mut rest = payload;
    while let Some(open) = rest.find(['<', '{']) {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        if after.starts_with('{') {
            // SubRip's ASS override tags such as {\an8}; other braces are text.
            match (
                format == Format::Srt && after.starts_with("{\\"),
                after.find('}'),
            ) {
                (true, Some(close)) => rest = &after[close + 1..],
                _ => {
                    out.push('{');
                    rest = &after[1..];
                }
            }
            continue;
        }
        let Some(close) = after.find('>') else {
            out.push_str(after);
            rest = "";
            break;
        };
        let tag = &after[1..close];
        if let Some(v) = tag.strip_prefix('v')
            && (v.starts_with([' ', '\t', '.']))
        {
            // <v Name> or <v.class Name>
            let name = v.trim_start_matches(|c: char| c != ' ' && c != '\t');
            let name = collapse(&decode_entities(name));
            if speaker.is_none() && !name.is_empty() {
                speaker = Some(name);
            }
        }
        // Every other tag (<c>, <i>, <b>, <u>, <lang>, <ruby>, <rt>, <font>,
        // </v>, timestamp tags <00:00:01.000>) is markup, not words.
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    let mut text = collapse(&decode_entities(&out));
    if speaker.is_none()
        && let Some((name, said)) = speaker_prefix(&text).filter(|(n, _)| !lone.contains(*n))
    {
        let (name, said) = (name.to_string(), said.to_string());
        speaker = Some(name);
        text = said;
    }
    (speaker, text)
}

/// Words separated by single spaces.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A `Name: text` prefix (Zoom, SubRip) when it looks like a speaker's name:
/// returns the name and the rest. The prefix ends at the first colon followed
/// by a blank (or the end), so `10:30 Meeting: ...` is tested whole.
///
/// A name is 1 to 5 words, at most 50 characters, no digits (except the
/// generic `Speaker 2` labels recorders write), each word a capitalised word
/// of letters, hyphens and apostrophes (`Mary-Jo`, `O'Neil`, `José`), an
/// initial (`J.`, `J.R.`), a title or suffix (`Dr.`, `Prof.`, `Jr.`) or, inside
/// the name, a particle (`van`, `de`, `al`...). Labels of prose (`Note:`,
/// `Question:`, `Next Steps:`) and sentences (`So the plan:`) are not names.
pub fn speaker_prefix(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let colon = text.char_indices().find_map(|(i, c)| {
        (c == ':' && bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace())).then_some(i)
    })?;
    let name = text[..colon].trim();
    is_speaker_name(name).then(|| (name, text[colon + 1..].trim()))
}

/// Whether a `Name:` prefix is a person's name (see [`speaker_prefix`]).
pub fn is_speaker_name(name: &str) -> bool {
    let words: Vec<&str> = name.split_whitespace().collect();
    if words.is_empty() || words.len() > 5 || name.chars().count() > 50 {
        return false;
    }
    if let [label, n] = words.as_slice()
        && GENERIC_LABELS.contains(label)
        && (1..=3).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return true;
    }
    if name.chars().any(|c| c.is_numeric()) {
        return false;
    }
    let lower = name.to_lowercase();
    if PROSE_LABELS.contains(&lower.as_str())
        || SENTENCE_STARTS.contains(&words[0].to_lowercase().as_str())
    {
        return false;
    }
    let last = words.len() - 1;
    words.iter().enumerate().all(|(i, w)| {
        if i > 0 && i < last && PARTICLES.contains(w) {
            return true;
        }
        name_word(w)
    })
}

/// One word of a name: `Smith`, `Mary-Jo`, `O'Neil`, `d'Artagnan`, `José`,
/// `J.`, `J.R.`, `Dr.`.
fn name_word(w: &str) -> bool {
    if let Some(core) = w.strip_suffix('.') {
        // Initials (`J.`, `J.R.`) or a title or suffix (`Dr.`, `Jr.`).
        let initials = core.split('.').all(|p| {
            let mut cs = p.chars();
            matches!((cs.next(), cs.next()), (Some(c), None) if c.is_alphabetic() && !c.is_lowercase())
        });
        return initials || ABBREVIATIONS.contains(&core);
    }
    let mut chars = w.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    // An elided particle: d'Artagnan, l'Estrange.
    let body = match (first, chars.next(), chars.clone().next()) {
        (f, Some('\'' | '’'), Some(c))
            if f.is_lowercase() && c.is_alphabetic() && !c.is_lowercase() =>
        {
            &w[w.char_indices().nth(2).map_or(w.len(), |(i, _)| i)..]
        }
        _ => w,
    };
    let starts_capital = body
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() && !c.is_lowercase());
    starts_capital
        && body
            .split(['-', '\'', '’'])
            .all(|part| !part.is_empty() && part.chars().all(char::is_alphabetic))
}

/// Recorders' labels for speakers they could not name: `Speaker 1`.
const GENERIC_LABELS: &[&str] = &["Speaker", "Participant", "Guest", "Caller"];

/// Titles and suffixes written with a period.
#[rustfmt::skip]
const ABBREVIATIONS: &[&str] = &[
    "Dr", "Mr", "Mrs", "Ms", "Mx", "Prof", "Rev", "Fr", "Sr", "Jr", "St", "Hon", "Capt", "Col",
    "Gen", "Lt", "Sgt", "Maj", "Mme", "Mlle", "Esq", "Dott", "Ing", "Sra", "Srta",
];

/// Lower-case words inside names.
#[rustfmt::skip]
const PARTICLES: &[&str] = &[
    "van", "von", "der", "den", "de", "del", "della", "da", "das", "di", "do", "dos", "du", "la",
    "le", "bin", "ibn", "al", "el", "ten", "ter", "zu", "y", "e",
];

/// Labels that start a line of prose or notes, not a speaker's words.
#[rustfmt::skip]
const PROSE_LABELS: &[&str] = &[
    "note", "notes", "nb", "ps", "warning", "caution", "important", "tip", "hint", "example",
    "question", "questions", "answer", "q", "a", "summary", "agenda", "action", "actions",
    "action item", "action items", "next step", "next steps", "update", "reminder", "subject",
    "re", "fwd", "topic", "title", "goal", "goals", "objective", "result", "results", "outcome",
    "decision", "decisions", "conclusion", "status", "step", "time", "date", "location",
    "translation", "transcript", "caption", "captions", "edit", "correction", "definition",
    "reason", "problem", "solution", "issue", "fact", "point", "quote", "source", "reference",
    "attention", "fyi", "caveat", "disclaimer", "background", "context", "recap", "takeaway",
    "takeaways", "bottom line", "pros", "cons", "price", "pricing", "cost", "total", "budget",
    "timeline", "deadline", "owner", "feedback", "comment", "comments", "response", "reply",
    "music", "applause", "laughter", "silence", "inaudible", "crosstalk", "background noise",
];

/// Words that start a sentence, not a name (`So the plan:`, `The Agenda:`).
#[rustfmt::skip]
const SENTENCE_STARTS: &[&str] = &[
    "the", "an", "this", "that", "these", "those", "it", "its", "we", "i", "you", "he", "she",
    "they", "my", "our", "your", "his", "her", "their", "so", "and", "but", "or", "well", "here",
    "there", "yes", "no", "ok", "okay", "hey", "hi", "hello", "thanks", "also", "plus", "then",
    "now", "just", "first", "second", "third", "finally", "remember", "please", "let", "let's",
    "what", "why", "how", "when", "where", "who", "which", "if", "as", "in", "on", "at", "for",
    "with", "from", "to", "by", "all", "some", "any", "every", "one", "two", "today",
];

/// Decodes HTML character references as exports write them: `&amp;`, `&lt;`,
/// `&#39;`, `&#x27;`, and named references common in names and prose
/// (`&eacute;`, `&rsquo;`, `&nbsp;`...). Unknown or malformed references stay
/// as they are.
pub fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after
            .bytes()
            .take(33)
            .position(|b| b == b';')
            .filter(|&semi| semi > 0)
            .and_then(|semi| reference(&after[..semi]).map(|d| (d, semi)));
        match decoded {
            Some((d, semi)) => {
                if let Some(c) = d {
                    out.push(c);
                }
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The character a reference stands for (`Some(None)` for invisible ones
/// such as `&shy;`), or `None` when it is not a reference we know.
fn reference(name: &str) -> Option<Option<char>> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex)
                if !hex.is_empty()
                    && hex.len() <= 6
                    && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                u32::from_str_radix(hex, 16).ok()?
            }
            Some(_) => return None,
            None if !num.is_empty()
                && num.len() <= 7
                && num.bytes().all(|b| b.is_ascii_digit()) =>
            {
                num.parse().ok()?
            }
            None => return None,
        };
        return match code {
            0 => None,
            0xA0 => Some(Some(' ')),
            c => char::from_u32(c).map(Some),
        };
    }
    if matches!(name, "shy" | "zwj" | "zwnj" | "lrm" | "rlm") {
        return Some(None);
    }
    NAMED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, c)| Some(c))
}

/// Named character references that appear in transcripts and names.
#[rustfmt::skip]
const NAMED: &[(&str, char)] = &[
    ("amp", '&'), ("lt", '<'), ("gt", '>'), ("quot", '"'), ("apos", '\''), ("nbsp", ' '),
    ("ensp", ' '), ("emsp", ' '), ("thinsp", ' '), ("ndash", '–'), ("mdash", '—'),
    ("lsquo", '‘'), ("rsquo", '’'), ("sbquo", '‚'), ("ldquo", '“'), ("rdquo", '”'),
    ("bdquo", '„'), ("laquo", '«'), ("raquo", '»'), ("hellip", '…'), ("bull", '•'),
    ("middot", '·'), ("copy", '©'), ("reg", '®'), ("trade", '™'), ("euro", '€'),
    ("pound", '£'), ("yen", '¥'), ("cent", '¢'), ("deg", '°'), ("times", '×'),
    ("divide", '÷'), ("plusmn", '±'), ("sect", '§'), ("para", '¶'), ("iexcl", '¡'),
    ("iquest", '¿'), ("acute", '´'), ("cedil", '¸'), ("uml", '¨'),
    ("Agrave", 'À'), ("Aacute", 'Á'), ("Acirc", 'Â'), ("Atilde", 'Ã'), ("Auml", 'Ä'),
    ("Aring", 'Å'), ("AElig", 'Æ'), ("Ccedil", 'Ç'), ("Egrave", 'È'), ("Eacute", 'É'),
    ("Ecirc", 'Ê'), ("Euml", 'Ë'), ("Igrave", 'Ì'), ("Iacute", 'Í'), ("Icirc", 'Î'),
    ("Iuml", 'Ï'), ("ETH", 'Ð'), ("Ntilde", 'Ñ'), ("Ograve", 'Ò'), ("Oacute", 'Ó'),
    ("Ocirc", 'Ô'), ("Otilde", 'Õ'), ("Ouml", 'Ö'), ("Oslash", 'Ø'), ("Ugrave", 'Ù'),
    ("Uacute", 'Ú'), ("Ucirc", 'Û'), ("Uuml", 'Ü'), ("Yacute", 'Ý'), ("THORN", 'Þ'),
    ("szlig", 'ß'), ("agrave", 'à'), ("aacute", 'á'), ("acirc", 'â'), ("atilde", 'ã'),
    ("auml", 'ä'), ("aring", 'å'), ("aelig", 'æ'), ("ccedil", 'ç'), ("egrave", 'è'),
    ("eacute", 'é'), ("ecirc", 'ê'), ("euml", 'ë'), ("igrave", 'ì'), ("iacute", 'í'),
    ("icirc", 'î'), ("iuml", 'ï'), ("eth", 'ð'), ("ntilde", 'ñ'), ("ograve", 'ò'),
    ("oacute", 'ó'), ("ocirc", 'ô'), ("otilde", 'õ'), ("ouml", 'ö'), ("oslash", 'ø'),
    ("ugrave", 'ù'), ("uacute", 'ú'), ("ucirc", 'û'), ("uuml", 'ü'), ("yacute", 'ý'),
    ("thorn", 'þ'), ("yuml", 'ÿ'), ("OElig", 'Œ'), ("oelig", 'œ'), ("Scaron", 'Š'),
    ("scaron", 'š'), ("Yuml", 'Ÿ'), ("Zcaron", 'Ž'), ("zcaron", 'ž'),
];

/// Writes turns as SubRip, one numbered cue per turn, with a `Name: ` prefix
/// for a known speaker (the form recorders export; used by tests).
pub fn render_srt(turns: &[Turn]) -> String {
    let ts = |ms: i64| {
        format!(
            "{:02}:{:02}:{:02},{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    let mut s = String::new();
    for (i, t) in turns.iter().enumerate() {
        s.push_str(&format!(
            "{}\n{} --> {}\n",
            i + 1,
            ts(t.start_ms),
            ts(t.end_ms)
        ));
        match &t.speaker {
            Some(sp) => s.push_str(&format!("{sp}: {}\n\n", t.text)),
            None => s.push_str(&format!("{}\n\n", t.text)),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn turns(text: &str) -> Vec<Turn> {
        parse(text).unwrap().turns
    }

    #[test]
    fn teams_voice_tags_and_merged_cues() {
        let vtt = "WEBVTT\n\n1\n00:00:00.000 --> 00:00:04.200\n<v Ann Rep>Hi, thanks for joining.</v>\n\n\
                   2\n00:00:04.200 --> 00:00:06.000\n<v Ann Rep>How are things?</v>\n\n\
                   00:00:06.500 --> 00:01:10.000\n<v.loud Bob Buyer>Busy.\nWe have a budget problem.</v>\n";
        let t = turns(vtt);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].speaker.as_deref(), Some("Ann Rep"));
        assert_eq!(t[0].text, "Hi, thanks for joining. How are things?");
        assert_eq!(
            (t[0].start_ms, t[0].end_ms, t[0].speech_ms),
            (0, 6000, 6000)
        );
        assert_eq!(t[1].speaker.as_deref(), Some("Bob Buyer"));
        assert_eq!(t[1].text, "Busy. We have a budget problem.");
        assert_eq!(t[1].end_ms, 70_000);
    }

    #[test]
    fn a_merged_turn_speaks_only_in_its_cues() {
        let vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n<v A>one</v>\n\n\
                   00:00:10.000 --> 00:00:13.000\n<v A>two</v>\n\n\
                   00:00:12.000 --> 00:00:14.000\n<v A>three</v>\n";
        let t = turns(vtt);
        assert_eq!(t.len(), 1);
        // 2 s, then 3 s, then the 1 s of the third cue not already covered.
        assert_eq!(
            (t[0].start_ms, t[0].end_ms, t[0].speech_ms),
            (0, 14_000, 6_000)
        );
    }

    #[test]
    fn zoom_name_prefix() {
        let vtt = "WEBVTT\n\n1\n00:00:01.000 --> 00:00:03.000\nAnn Rep: Hello there.\n\n2\n00:00:03.000 --> 00:00:05.000\nBob: Hi. Time: now.\n\n3\n00:00:05.000 --> 00:00:06.000\nAnn Rep: Good.\n\n4\n00:00:06.000 --> 00:00:07.000\nBob: Yes.\n";
        let t = turns(vtt);
        assert_eq!(t[0].speaker.as_deref(), Some("Ann Rep"));
        assert_eq!(t[1].speaker.as_deref(), Some("Bob"));
        assert_eq!(t[1].text, "Hi. Time: now.");
    }

    #[test]
    fn one_word_labels_seen_once_are_text() {
        // "Preis:" and "Итог:" open one line each: labels of the text in a
        // language whose labels are not known, not people; Bob speaks twice.
        let vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nBob: Hallo.\n\n00:00:02.000 --> 00:00:03.000\nPreis: 40 pro Sitz.\n\n\
                   00:00:03.000 --> 00:00:04.000\nBob: Gut.\n\n00:00:04.000 --> 00:00:05.000\nИтог: всё хорошо.\n";
        let t = turns(vtt);
        let speakers: Vec<Option<&str>> = t.iter().map(|t| t.speaker.as_deref()).collect();
        assert_eq!(speakers, vec![Some("Bob"), None, Some("Bob"), None]);
        assert_eq!(t[1].text, "Preis: 40 pro Sitz.");
    }

    #[test]
    fn names_are_speakers_and_prose_is_not() {
        for name in [
            "Dr. Person C",
            "Mary-Jo O'Neil",
            "J. R. Smith",
            "J.R. Smith",
            "José Müller",
            "Ludwig van Beethoven",
            "Anne d'Artagnan",
            "Prof. Ana María García-López",
            "Sam",
            "Person A",
            "SAM LEE",
            "Speaker 2",
            "Unknown Speaker",
            "Ó Súilleabháin",
            "王伟",
        ] {
            let line = format!("{name}: hello");
            assert_eq!(speaker_prefix(&line), Some((name, "hello")), "{name}");
        }
        for line in [
            "10:30 Meeting: agenda",
            "Note: this is a sentence.",
            "NOTE: nothing",
            "Next Steps: send the quote",
            "So the plan: ship it",
            "The Agenda: pricing",
            "we said: yes",
            "Hi. Time: now",
            "Call me at 5: ok",
            "Room 101: here",
            "Q: what is it?",
            "http://example.com: link",
            "A very long sentence that goes on and on: and then",
            "Hello, Ann: how are you",
            "Is that so?: hmm",
        ] {
            assert_eq!(speaker_prefix(line), None, "{line}");
        }
        // A colon not followed by a blank does not end the prefix.
        assert_eq!(speaker_prefix("Ratio 3:1 is fine"), None);
    }

    #[test]
    fn character_references_are_decoded() {
        let vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n<v Mary-Jo O&#39;Neil &amp; Co>It&#x27;s &lt;fine&gt; &eacute;t&eacute; &mdash; &bogus; &#0; AT&T.</v>\n";
        let t = turns(vtt);
        assert_eq!(t[0].speaker.as_deref(), Some("Mary-Jo O'Neil & Co"));
        assert_eq!(t[0].text, "It's <fine> été — &bogus; &#0; AT&T.");
        assert_eq!(decode_entities("&#233;&#xE9;&Uuml;&nbsp;x&shy;y"), "ééÜ xy");
    }

    #[test]
    fn timestamps_in_every_padding() {
        for (s, ms) in [
            ("00:00:13.540", 13_540),
            ("0:0:13.540", 13_540),
            ("0:0:0.0", 0),
            ("0:0:0.570", 570),
            ("01:02.5", 62_500),
            ("1:2.05", 62_050),
            ("10:00:00.000", 36_000_000),
            ("123:00:00,001", 442_800_001),
            ("00:00:01", 1_000),
        ] {
            assert_eq!(parse_timestamp(s), Some(ms), "{s}");
        }
        for s in [
            "",
            "1",
            "00:60.000",
            "00:00:60.000",
            "0:0:0.",
            "0:0:0.1234",
            "a:00.000",
            "1:2:3:4.000",
            "-1:00.000",
            "00:00.0x0",
            "1::2.000",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s}");
        }
    }

    #[test]
    fn legacy_teams_settings_notes_tags_and_line_ends() {
        let vtt = "\u{feff}WEBVTT Kind: captions\r\nLanguage: en\r\n\r\nNOTE exported\r\nby a tool\r\n\r\nSTYLE\r\n::cue { color: red }\r\n\r\n\
                   0:0:0.0 --> 0:0:0.570 align:start position:0%\r\n<v Person A><c.yellow>There</c> <00:00:00.300><i>you</i> go.</v>\r\n\r\n\
                   00:01.000 --> 00:02.000\rBob: Hi\r\r00:02.000 --> 00:03.000\rBob: Bye\r\r";
        let t = turns(vtt);
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t[0].speaker.as_deref(), Some("Person A"));
        assert_eq!(t[0].text, "There you go.");
        assert_eq!((t[0].start_ms, t[0].end_ms), (0, 570));
        assert_eq!(t[1].speaker.as_deref(), Some("Bob"));
        assert_eq!((t[1].start_ms, t[1].end_ms), (1_000, 3_000));
    }

    #[test]
    fn a_timing_line_without_a_blank_line_starts_a_cue() {
        let vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nyeah\n00:00:02.000 --> 00:00:03.000\nthis will happen\n2\n00:00:03.000 --> 00:00:04.000\nok\n";
        let p = parse(vtt).unwrap();
        let texts: Vec<&str> = p.turns.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["yeah", "this will happen", "ok"]);
        assert_eq!(p.cues, 3);
        assert_eq!(p.unnamed.len(), 3);
        assert_eq!(p.unnamed[1].line, 5);
    }

    #[test]
    fn cues_without_a_speaker_are_kept_and_listed() {
        let vtt = "WEBVTT\n\n00:00:00.050 --> 00:00:01.790\nPerson A: Hi!\n\n00:00:07.000 --> 00:00:08.000\nHmm.\n";
        let p = parse(vtt).unwrap();
        assert_eq!(p.cues, 2);
        assert_eq!(p.turns[1].speaker, None);
        assert_eq!(p.turns[1].text, "Hmm.");
        assert_eq!(
            p.unnamed,
            [UnnamedCue {
                line: 6,
                text: "Hmm.".into()
            }]
        );
    }

    #[test]
    fn every_bad_cue_is_located() {
        let vtt = "WEBVTT\n\n1\n00:00:xx.000 --> 00:00:03.000\n<v A>a</v>\n\n2\n00:00:05.000 --> 00:00:04.000\n<v B>b</v>\n\nno timing here\n\n00:00:01.000 --> 00:00:02.000\ntext\n00:00:02.000 --> 00:00:0y.000\n";
        let e = parse(vtt).unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert_eq!((e[0].line, e[0].column), (4, 1));
        assert_eq!((e[1].line, e[1].column), (8, 18));
        assert!(e[1].message.contains("ends before it starts"));
        assert_eq!(e[2].line, 11);
        assert_eq!(
            (e[3].line, e[3].column, e[3].value.as_str()),
            (15, 18, "00:00:0y.000")
        );
        assert!(parse("hello\n").unwrap_err()[0].message.contains("WEBVTT"));
    }

    #[test]
    fn subrip_is_detected_and_read() {
        let srt = "1\r\n00:00:01,000 --> 00:00:02,500\r\nDr. Person C: Hello <i>there</i>.\r\n\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\n{\\an8}Mary-Jo O'Neil: Hi!\r\n";
        assert_eq!(Format::detect(None, srt), Format::Srt);
        assert_eq!(
            Format::detect(Some(Path::new("a.SRT")), "junk"),
            Format::Srt
        );
        assert_eq!(
            Format::detect(Some(Path::new("a.srt")), "WEBVTT\n"),
            Format::WebVtt
        );
        assert_eq!(
            Format::detect(Some(Path::new("a.vtt")), "hello"),
            Format::WebVtt
        );
        let t = parse_srt(srt).unwrap().turns;
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].speaker.as_deref(), Some("Dr. Person C"));
        assert_eq!(t[0].text, "Hello there.");
        assert_eq!((t[0].start_ms, t[0].end_ms), (1_000, 2_500));
        assert_eq!(t[1].speaker.as_deref(), Some("Mary-Jo O'Neil"));
        assert_eq!(t[1].text, "Hi!");
        let e = parse_srt("1\n00:00:01,000 -> 00:00:02,000\nhi\n").unwrap_err();
        assert_eq!((e[0].line, e[0].column), (2, 1));
    }

    fn turn() -> impl Strategy<Value = (usize, i64, String)> {
        (
            0usize..4,
            0i64..100_000,
            "[a-zA-Z][a-zA-Z ,.?']{0,60}[a-z?.]",
        )
    }

    /// Turns of alternating named speakers, as the simulator and recorders write them.
    fn turns_from(raw: Vec<(usize, i64, String)>) -> Vec<Turn> {
        let names = ["Ann Rep", "Bob Buyer", "Dr. Cy Champion", "Mary-Jo O'Neil"];
        let mut turns: Vec<Turn> = Vec::new();
        let mut t = 0;
        for (who, len, text) in raw {
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if turns
                .last()
                .is_some_and(|l| l.speaker.as_deref() == Some(names[who]))
            {
                continue;
            }
            turns.push(Turn::spoken(Some(names[who].into()), t, t + len, text));
            t += len + 250;
        }
        turns
    }

    /// A timestamp written with the given padding and fraction digits.
    fn written(ms: i64, pad: usize, frac_digits: usize, hours: bool, comma: bool) -> String {
        let (h, m, s, f) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        let frac = match frac_digits {
            1 => format!("{}", f / 100),
            2 => format!("{:02}", f / 10),
            _ => format!("{f:03}"),
        };
        let sep = if comma { ',' } else { '.' };
        if hours {
            format!("{h:0pad$}:{m:0pad$}:{s:0pad$}{sep}{frac}")
        } else {
            format!("{m:0pad$}:{s:0pad$}{sep}{frac}")
        }
    }

    proptest! {
        #[test]
        fn render_then_parse_round_trips(raw in proptest::collection::vec(turn(), 1..30)) {
            let turns = turns_from(raw);
            let parsed = parse(&render(&turns)).unwrap();
            prop_assert_eq!(parsed.cues, turns.len());
            prop_assert!(parsed.unnamed.is_empty());
            prop_assert_eq!(parsed.turns, turns);
        }

        #[test]
        fn srt_round_trips(raw in proptest::collection::vec(turn(), 1..30), crlf in any::<bool>()) {
            let turns = turns_from(raw);
            let mut srt = render_srt(&turns);
            if crlf {
                srt = srt.replace('\n', "\r\n");
            }
            prop_assert_eq!(Format::detect(None, &srt), Format::Srt);
            prop_assert_eq!(parse_srt(&srt).unwrap().turns, turns);
        }

        #[test]
        fn timestamps_of_any_padding_round_trip(
            ms in 0i64..360_000_000,
            pad in 1usize..4,
            frac_digits in 1usize..4,
            hours in any::<bool>(),
            comma in any::<bool>(),
        ) {
            let hours = hours || ms >= 3_600_000;
            let keep = match frac_digits { 1 => 100, 2 => 10, _ => 1 };
            let want = ms - ms % 1000 % keep;
            prop_assert_eq!(parse_timestamp(&written(ms, pad, frac_digits, hours, comma)), Some(want));
        }

        #[test]
        fn parser_never_panics(s in "(WEBVTT\n\n)?[0-9:.,> \n\r<>/a-zA-Z&#;{}\\\\-]{0,200}") {
            let _ = parse(&s);
            let _ = parse_srt(&s);
        }

        #[test]
        fn parser_never_panics_on_any_text(s in "\\PC{0,200}") {
            let _ = parse(&format!("WEBVTT\n\n{s}"));
            let _ = parse_srt(&s);
            let _ = speaker_prefix(&s);
            let _ = decode_entities(&s);
        }
    }
}
