//! What a call transcript says about the call: talk ratio, questions, monologues,
//! objections and whether they were handled, next steps, sentiment and fillers.
//!
//! Transparent lexicon rules over speaker turns (English), so that every figure
//! can be shown next to the words that produced it. They work on any transcript
//! with speaker roles (rep / customer), imported from WebVTT or CSV.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use pipewise_store::read::Turn;
use serde::Serialize;

/// The measures of one call that the deal features use.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CallMetrics {
    /// Rep speaking time / all speaking time.
    pub talk_ratio: f64,
    /// Questions asked by the rep per hour of call.
    pub question_rate: f64,
    /// The rep's longest uninterrupted stretch, seconds.
    pub longest_monologue_s: f64,
    /// Objections the customer raised.
    pub objections: u32,
    /// Of those, answered by acknowledging or asking about them.
    pub handled: u32,
    /// A concrete next step (a meeting with a date or an owner) proposed and accepted.
    pub next_steps: bool,
    /// Customer sentiment in [-1, 1]: (positive - negative) / (positive + negative).
    pub sentiment: f64,
    /// Rep filler words per minute of rep speech.
    pub filler_rate: f64,
}

/// The kinds of objection a buyer raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ObjectionKind {
    Price,
    Timing,
    Competitor,
    Authority,
    Need,
    StatusQuo,
}

impl ObjectionKind {
    pub const ALL: [ObjectionKind; 6] = [
        ObjectionKind::Price,
        ObjectionKind::Timing,
        ObjectionKind::Competitor,
        ObjectionKind::Authority,
        ObjectionKind::Need,
        ObjectionKind::StatusQuo,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ObjectionKind::Price => "price",
            ObjectionKind::Timing => "timing",
            ObjectionKind::Competitor => "competitor",
            ObjectionKind::Authority => "authority",
            ObjectionKind::Need => "need",
            ObjectionKind::StatusQuo => "status_quo",
        }
    }
    /// When one turn has words of several kinds, the most specific wins.
    const PRIORITY: [ObjectionKind; 6] = [
        ObjectionKind::Competitor,
        ObjectionKind::Authority,
        ObjectionKind::Timing,
        ObjectionKind::Need,
        ObjectionKind::StatusQuo,
        ObjectionKind::Price,
    ];
}

/// An objection the customer raised and what the rep did next.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Objection {
    /// Index of the customer's turn.
    pub turn: usize,
    pub kind: ObjectionKind,
    /// The rep's next turn, if any.
    pub reply_turn: Option<usize>,
    /// The reply acknowledged the concern ("I hear you", "that's fair"...).
    pub acknowledged: bool,
    /// The reply asked about it (a question).
    pub asked: bool,
    /// The reply answered with value (payback, a pilot, a business case, a comparison...).
    pub value: bool,
    /// The reply brushed it aside ("anyway", "later", "let me finish"...).
    pub dismissed: bool,
    /// Acknowledged or asked about, and not brushed aside; otherwise steamrolled.
    pub handled: bool,
}

/// A next step the rep proposed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NextStep {
    pub turn: usize,
    pub with_date: bool,
    pub with_owner: bool,
    /// The customer accepted it.
    pub agreed: bool,
}

/// Mentions of one keyword tracker in a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrackerHits {
    pub tracker: String,
    pub rep: u32,
    pub customer: u32,
    /// The first turn that mentions it.
    pub first_turn: usize,
    /// The keywords heard, each once, in order of first mention.
    pub keywords: Vec<String>,
}

/// Everything measured in one call, with the turns that show it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallAnalysis {
    /// From the first turn's start to the last turn's end.
    pub duration_s: f64,
    /// Seconds the rep spoke (turns' speech time, not the silence inside
    /// turns merged from several cues).
    pub rep_talk_s: f64,
    pub customer_talk_s: f64,
    pub talk_ratio: f64,
    pub longest_monologue_s: f64,
    /// The first turn of the longest monologue.
    pub longest_monologue_turn: usize,
    pub questions_open: u32,
    pub questions_closed: u32,
    /// Rep questions per hour.
    pub question_rate: f64,
    /// Speaker switches per minute.
    pub switches_per_minute: f64,
    /// Mean pause before the rep answers the customer, seconds (None when the
    /// timestamps have no gaps between turns, so pauses cannot be seen).
    pub patience_s: Option<f64>,
    pub objections: Vec<Objection>,
    /// The last next step the rep proposed.
    pub next_step: Option<NextStep>,
    pub fillers: u32,
    /// Rep filler words per minute of rep speech.
    pub filler_rate: f64,
    /// The rep turn with the most filler words.
    pub filler_turn: Option<usize>,
    /// Lexicon sentiment of each side in [-1, 1].
    pub sentiment_customer: f64,
    pub sentiment_rep: f64,
    pub trackers: Vec<TrackerHits>,
}

impl CallAnalysis {
    pub fn handled(&self) -> u32 {
        self.objections.iter().filter(|o| o.handled).count() as u32
    }
    pub fn open_question_share(&self) -> Option<f64> {
        let n = self.questions_open + self.questions_closed;
        (n > 0).then(|| f64::from(self.questions_open) / f64::from(n))
    }
    pub fn next_steps_agreed(&self) -> bool {
        self.next_step.as_ref().is_some_and(|n| n.agreed)
    }
    pub fn metrics(&self) -> CallMetrics {
        CallMetrics {
            talk_ratio: self.talk_ratio,
            question_rate: self.question_rate,
            longest_monologue_s: self.longest_monologue_s,
            objections: self.objections.len() as u32,
            handled: self.handled(),
            next_steps: self.next_steps_agreed(),
            sentiment: self.sentiment_customer,
            filler_rate: self.filler_rate,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cat {
    Objection(ObjectionKind),
    Acknowledge,
    Dismiss,
    Value,
    NextStep,
    Day,
    Owner,
    Accept,
    Positive,
    Negative,
    Filler,
}

/// The built-in lexicons (English). Sentiment is a hand-made phrase lexicon in
/// the manner of Hu and Liu's opinion lexicon, limited to sales talk: the score
/// of a side is (positive - negative) / (positive + negative) phrases.
const LEXICON: &[(Cat, &[&str])] = &[
    (
        Cat::Objection(ObjectionKind::Price),
        &[
            "expensive",
            "costs too much",
            "cost too much",
            "cheaper",
            "budget",
            "cost too",
            "price is",
            "pricey",
        ],
    ),
    (
        Cat::Objection(ObjectionKind::Timing),
        &[
            "timing is",
            "next quarter",
            "next year",
            "not a priority",
            "bad time",
        ],
    ),
    (
        Cat::Objection(ObjectionKind::Competitor),
        &[
            "talking to",
            "competitor",
            "another vendor",
            "other vendors",
        ],
    ),
    (
        Cat::Objection(ObjectionKind::Authority),
        &[
            "not my call",
            "sign off",
            "need approval",
            "not my decision",
        ],
    ),
    (
        Cat::Objection(ObjectionKind::Need),
        &["not sure we", "don't need", "do not need", "not convinced"],
    ),
    (
        Cat::Objection(ObjectionKind::StatusQuo),
        &["well enough", "happy with our", "works fine for us"],
    ),
    (
        Cat::Acknowledge,
        &[
            "i hear you",
            "fair concern",
            "that's fair",
            "makes sense",
            "understood",
            "i understand",
            "good point",
            "great question",
            "that's important",
            "let me make sure i understand",
        ],
    ),
    (
        Cat::Dismiss,
        &[
            "later",
            "moving on",
            "anyway",
            "let me finish",
            "the rest of the features",
            "once you see",
        ],
    ),
    (
        Cat::Value,
        &[
            "recover the cost",
            "payback",
            "pilot",
            "business case",
            "cost of waiting",
            "side by side",
            "where we usually win",
            "hours saved",
            "return on",
            "roi",
        ],
    ),
    (
        Cat::NextStep,
        &[
            "follow-up",
            "follow up",
            "next call",
            "next meeting",
            "book",
            "schedule",
            "invite",
            "calendar",
            "send over",
            "next step",
        ],
    ),
    (
        Cat::Day,
        &[
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "tomorrow",
            "next week",
        ],
    ),
    (
        Cat::Owner,
        &["i'll send", "i will send", "will own", "owner"],
    ),
    (
        Cat::Accept,
        &[
            "works",
            "sounds good",
            "sounds great",
            "yes",
            "sure",
            "perfect",
            "see you",
            "i'll make sure",
        ],
    ),
    (
        Cat::Positive,
        &[
            "great",
            "love",
            "helpful",
            "excited",
            "like what",
            "impressive",
            "perfect",
            "exactly",
            "glad",
            "happy to",
        ],
    ),
    (
        Cat::Negative,
        &[
            "concerned",
            "frustrat",
            "not sure",
            "worried",
            "difficult",
            "burned",
            "disappoint",
            "problem with you",
            "too expensive",
            "not worth",
        ],
    ),
    (
        Cat::Filler,
        &["basically", "you know", "like,", "kind of", "sort of"],
    ),
];

struct Lexicon {
    ac: AhoCorasick,
    cats: Vec<Cat>,
}

fn lexicon() -> &'static Lexicon {
    static L: OnceLock<Lexicon> = OnceLock::new();
    L.get_or_init(|| {
        let mut pats = Vec::new();
        let mut cats = Vec::new();
        for (cat, words) in LEXICON {
            for w in *words {
                pats.push(*w);
                cats.push(*cat);
            }
        }
        Lexicon {
            ac: AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(&pats)
                .expect("the built-in lexicon compiles"),
            cats,
        }
    })
}

/// What the lexicons found in one turn.
#[derive(Default)]
struct TurnHits {
    objection: [bool; 6],
    acknowledge: bool,
    dismiss: bool,
    value: bool,
    next_step: bool,
    day: bool,
    owner: bool,
    accept: bool,
    positive: u32,
    negative: u32,
    fillers: u32,
    questions: u32,
    open_questions: u32,
}

impl TurnHits {
    fn objection(&self) -> Option<ObjectionKind> {
        ObjectionKind::PRIORITY
            .into_iter()
            .find(|k| self.objection[*k as usize])
    }
}

const OPEN_STARTS: &[&str] = &[
    "what", "how", "why", "who", "where", "when", "which", "tell", "walk", "describe", "explain",
    "help",
];
const SKIP_STARTS: &[&str] = &[
    "so", "and", "but", "ok", "okay", "um", "uh", "then", "now", "well",
];

fn scan(text: &str) -> TurnHits {
    let lx = lexicon();
    let mut h = TurnHits::default();
    for m in lx.ac.find_overlapping_iter(text) {
        match lx.cats[m.pattern().as_usize()] {
            Cat::Objection(k) => h.objection[k as usize] = true,
            Cat::Acknowledge => h.acknowledge = true,
            Cat::Dismiss => h.dismiss = true,
            Cat::Value => h.value = true,
            Cat::NextStep => h.next_step = true,
            Cat::Day => h.day = true,
            Cat::Owner => h.owner = true,
            Cat::Accept => h.accept = true,
            Cat::Positive => h.positive += 1,
            Cat::Negative => h.negative += 1,
            Cat::Filler => h.fillers += 1,
        }
    }
    // Short fillers as whole words; questions by their first word.
    let mut sentence_start = true;
    let mut first: Option<&str> = None;
    for w in text.split_inclusive(|c: char| c.is_whitespace() || c == '?' || c == '.' || c == '!') {
        let ends = w.ends_with(['?', '.', '!']);
        let word = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
        if word.eq_ignore_ascii_case("um") || word.eq_ignore_ascii_case("uh") {
            h.fillers += 1;
        }
        if sentence_start
            && !word.is_empty()
            && !SKIP_STARTS.iter().any(|s| word.eq_ignore_ascii_case(s))
        {
            first = Some(word);
            sentence_start = false;
        }
        if ends {
            if w.ends_with('?') {
                h.questions += 1;
                if first.is_some_and(|f| OPEN_STARTS.iter().any(|s| f.eq_ignore_ascii_case(s))) {
                    h.open_questions += 1;
                }
            }
            sentence_start = true;
            first = None;
        }
    }
    h
}

fn is_rep(t: &Turn) -> bool {
    t.speaker_role.as_deref() == Some("rep")
}
fn is_customer(t: &Turn) -> bool {
    t.speaker_role.as_deref() == Some("customer")
}
fn sentiment(pos: u32, neg: u32) -> f64 {
    if pos + neg > 0 {
        (f64::from(pos) - f64::from(neg)) / f64::from(pos + neg)
    } else {
        0.0
    }
}

/// Why a call cannot be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmeasured {
    /// The transcript has no turns.
    NoTurns,
    /// No turn is the rep's or the customer's (a transcript that names no
    /// speaker has only turns of role `other`).
    NoSpeakerRoles,
    /// The customer speaks, the rep does not.
    NoRepSpeech,
    /// The rep speaks, the customer does not.
    NoCustomerSpeech,
}

impl Unmeasured {
    /// Why, in words, and what to do about it.
    pub fn explain(self) -> &'static str {
        match self {
            Unmeasured::NoTurns => "the transcript has no turns",
            Unmeasured::NoSpeakerRoles => {
                "no turn has a rep or customer speaker role (the transcript names no speakers, or every speaker is `other`), so talk ratio, questions and the other measures cannot be computed; name the speakers in the transcript (<v Jane Doe> or `Jane Doe: text`) or give their roles in the sidecar's `speakers` and import it again"
            }
            Unmeasured::NoRepSpeech => {
                "no turn is the rep's: no speaker is a user with that name; give the rep's role in the sidecar's `speakers` and import it again"
            }
            Unmeasured::NoCustomerSpeech => {
                "no turn is the customer's: every speaker is a rep or `other`; give the customer's role in the sidecar's `speakers` and import it again"
            }
        }
    }
}

/// Why [`analyse_call`] cannot measure these turns, or `None` when it can.
pub fn unmeasured(turns: &[Turn]) -> Option<Unmeasured> {
    let talk = |f: fn(&Turn) -> bool| -> i64 {
        turns
            .iter()
            .filter(|t| f(t))
            .map(|t| t.speech_ms.max(0))
            .sum()
    };
    let (rep, customer) = (talk(is_rep), talk(is_customer));
    if turns.is_empty() {
        Some(Unmeasured::NoTurns)
    } else if rep <= 0 && customer <= 0 {
        Some(Unmeasured::NoSpeakerRoles)
    } else if rep <= 0 {
        Some(Unmeasured::NoRepSpeech)
    } else if customer <= 0 {
        Some(Unmeasured::NoCustomerSpeech)
    } else {
        None
    }
}

/// Measures one call; `None` when it lacks speaking time from either the rep
/// or the customer ([`unmeasured`] says why). Talk time is the turns' speech
/// time: a turn merged from several cues counts only the cues' own time.
pub fn analyse_call(turns: &[Turn], trackers: &Trackers) -> Option<CallAnalysis> {
    if unmeasured(turns).is_some() {
        return None;
    }
    let dur = |t: &Turn| t.speech_ms.max(0) as f64 / 1000.0;
    let rep_s: f64 = turns.iter().filter(|t| is_rep(t)).map(dur).sum();
    let cust_s: f64 = turns.iter().filter(|t| is_customer(t)).map(dur).sum();
    let span_ms = (turns.iter().map(|t| t.end_ms).max().unwrap_or(0)
        - turns.iter().map(|t| t.start_ms).min().unwrap_or(0))
    .max(1) as f64;
    let hits: Vec<TurnHits> = turns.iter().map(|t| scan(&t.text)).collect();
    let mut a = CallAnalysis {
        duration_s: span_ms / 1000.0,
        rep_talk_s: rep_s,
        customer_talk_s: cust_s,
        talk_ratio: rep_s / (rep_s + cust_s),
        ..Default::default()
    };
    let (mut run, mut run_start) = (0.0f64, 0usize);
    let (mut pos, mut neg, mut rpos, mut rneg) = (0u32, 0u32, 0u32, 0u32);
    let (mut switches, mut pauses, mut pause_sum, mut gaps) = (0u32, 0u32, 0.0f64, false);
    let mut most_fillers = 0;
    for (i, t) in turns.iter().enumerate() {
        let h = &hits[i];
        if i > 0 && turns[i - 1].speaker_role != t.speaker_role {
            switches += 1;
        }
        if is_rep(t) {
            a.questions_open += h.open_questions;
            a.questions_closed += h.questions - h.open_questions;
            a.fillers += h.fillers;
            if h.fillers > most_fillers {
                most_fillers = h.fillers;
                a.filler_turn = Some(i);
            }
            rpos += h.positive;
            rneg += h.negative;
            if run == 0.0 {
                run_start = i;
            }
            run += dur(t);
            if run > a.longest_monologue_s {
                a.longest_monologue_s = run;
                a.longest_monologue_turn = run_start;
            }
            if h.next_step && (h.day || h.owner) {
                a.next_step = Some(NextStep {
                    turn: i,
                    with_date: h.day,
                    with_owner: h.owner,
                    agreed: false,
                });
            }
            if i > 0 && is_customer(&turns[i - 1]) {
                let gap = (t.start_ms - turns[i - 1].end_ms) as f64 / 1000.0;
                gaps |= gap > 0.0;
                if gap >= 0.0 {
                    pauses += 1;
                    pause_sum += gap;
                }
            }
        } else {
            run = 0.0;
        }
        if is_customer(t) {
            if h.accept
                && let Some(n) = a.next_step.as_mut()
            {
                n.agreed = true;
            }
            pos += h.positive;
            neg += h.negative;
            if let Some(kind) = h.objection() {
                let reply = (i + 1..turns.len()).find(|&j| is_rep(&turns[j]));
                let r = reply.map(|j| &hits[j]);
                let acknowledged = r.is_some_and(|r| r.acknowledge);
                let asked = r.is_some_and(|r| r.questions > 0);
                let dismissed = r.is_some_and(|r| r.dismiss);
                a.objections.push(Objection {
                    turn: i,
                    kind,
                    reply_turn: reply,
                    acknowledged,
                    asked,
                    value: r.is_some_and(|r| r.value),
                    dismissed,
                    handled: (acknowledged || asked) && !dismissed,
                });
            }
        }
    }
    a.question_rate = f64::from(a.questions_open + a.questions_closed) / (span_ms / 3_600_000.0);
    a.switches_per_minute = f64::from(switches) / (span_ms / 60_000.0);
    a.patience_s = (gaps && pauses > 0).then(|| pause_sum / f64::from(pauses));
    a.filler_rate = f64::from(a.fillers) / (rep_s / 60.0).max(0.5);
    a.sentiment_customer = sentiment(pos, neg);
    a.sentiment_rep = sentiment(rpos, rneg);
    a.trackers = trackers.scan(turns);
    Some(a)
}

/// Measures one call for the deal features; `None` when it has no turns with both roles known.
pub fn analyse(turns: &[Turn]) -> Option<CallMetrics> {
    analyse_call(turns, Trackers::none()).map(|a| a.metrics())
}

/// Public reference points shown next to a call's figures.
pub mod benchmarks {
    /// Share of a discovery call top performers talk (Gong Labs, 25,000+ calls).
    pub const TOP_TALK_RATIO: f64 = 0.43;
    /// The range average reps talk.
    pub const AVERAGE_TALK_RATIO: (f64, f64) = (0.65, 0.75);
    /// Longest rep monologue of top performers, seconds (Gong Labs).
    pub const TOP_LONGEST_MONOLOGUE_S: f64 = 76.0;
}

/// Keyword trackers (competitor names, product names, pricing words...): a
/// TOML file of `[[tracker]]` tables, each with a `name` and `keywords`.
#[derive(Debug, Clone, Default)]
pub struct Trackers {
    names: Vec<String>,
    keywords: Vec<String>,
    /// Tracker of each keyword.
    of: Vec<usize>,
    ac: Option<AhoCorasick>,
}

/// A tracker file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: tracker {name:?}: {message}")]
    Invalid {
        file: String,
        name: String,
        message: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackerFile {
    tracker: Vec<TrackerDef>,
}
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackerDef {
    name: String,
    keywords: Vec<String>,
}

/// The trackers used when none are given.
pub const DEFAULT_TRACKERS: &str = include_str!("../trackers.toml");

impl Trackers {
    pub fn none() -> &'static Trackers {
        static NONE: OnceLock<Trackers> = OnceLock::new();
        NONE.get_or_init(Trackers::default)
    }
    pub fn default_set() -> Trackers {
        Trackers::parse(DEFAULT_TRACKERS, "built-in trackers").expect("the built-in trackers parse")
    }
    /// Parses a tracker file; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Trackers, TrackerError> {
        let parsed: TrackerFile = toml::from_str(text).map_err(|e| TrackerError::Parse {
            file: file.into(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut t = Trackers::default();
        for (i, d) in parsed.tracker.into_iter().enumerate() {
            let invalid = |message: &str| TrackerError::Invalid {
                file: file.into(),
                name: d.name.clone(),
                message: message.into(),
            };
            if d.name.trim().is_empty() {
                return Err(invalid("the name is empty"));
            }
            if t.names.contains(&d.name) {
                return Err(invalid("the name is used twice"));
            }
            if d.keywords.is_empty() || d.keywords.iter().any(|k| k.trim().is_empty()) {
                return Err(invalid("needs at least one keyword, and no empty ones"));
            }
            for k in &d.keywords {
                t.keywords.push(k.trim().to_string());
                t.of.push(i);
            }
            t.names.push(d.name);
        }
        if !t.keywords.is_empty() {
            t.ac = Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(&t.keywords)
                    .map_err(|e| TrackerError::Parse {
                        file: file.into(),
                        message: e.to_string(),
                    })?,
            );
        }
        Ok(t)
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
    fn scan(&self, turns: &[Turn]) -> Vec<TrackerHits> {
        let Some(ac) = &self.ac else {
            return Vec::new();
        };
        let mut out: Vec<Option<TrackerHits>> = vec![None; self.names.len()];
        for (i, t) in turns.iter().enumerate() {
            for m in ac.find_iter(&t.text) {
                let text = t.text.as_bytes();
                // Whole words only: "Clearpath" but not "Clearpathway".
                let before = m.start() == 0 || !text[m.start() - 1].is_ascii_alphanumeric();
                let after = m.end() == text.len() || !text[m.end()].is_ascii_alphanumeric();
                if !(before && after) {
                    continue;
                }
                let k = m.pattern().as_usize();
                let h = out[self.of[k]].get_or_insert_with(|| TrackerHits {
                    tracker: self.names[self.of[k]].clone(),
                    rep: 0,
                    customer: 0,
                    first_turn: i,
                    keywords: Vec::new(),
                });
                if is_rep(t) {
                    h.rep += 1;
                } else {
                    h.customer += 1;
                }
                if !h.keywords.contains(&self.keywords[k]) {
                    h.keywords.push(self.keywords[k].clone());
                }
            }
        }
        out.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(role: &str, start_s: i64, end_s: i64, text: &str) -> Turn {
        Turn {
            speaker_role: Some(role.into()),
            start_ms: start_s * 1000,
            end_ms: end_s * 1000,
            speech_ms: (end_s - start_s) * 1000,
            text: text.into(),
        }
    }

    #[test]
    fn talk_time_is_speech_not_the_silence_inside_a_turn() {
        // The rep's turn spans 60 s but was merged from cues that speak 20 s.
        let mut rep = turn("rep", 0, 60, "Let me show you the reporting module.");
        rep.speech_ms = 20_000;
        let call = vec![
            rep,
            turn("customer", 60, 80, "Looks good."),
            turn("rep", 80, 90, "Great."),
        ];
        let a = analyse_call(&call, Trackers::none()).unwrap();
        assert!((a.rep_talk_s - 30.0).abs() < 1e-9);
        assert!((a.talk_ratio - 30.0 / 50.0).abs() < 1e-9);
        assert!((a.longest_monologue_s - 20.0).abs() < 1e-9);
        assert!(
            (a.duration_s - 90.0).abs() < 1e-9,
            "the call still lasts 90 s"
        );
    }

    #[test]
    fn says_why_a_call_is_not_measured() {
        let other = |t: Turn| Turn {
            speaker_role: Some("other".into()),
            ..t
        };
        assert_eq!(unmeasured(&[]), Some(Unmeasured::NoTurns));
        let unnamed = vec![other(turn("rep", 0, 1, "a")), other(turn("rep", 1, 2, "b"))];
        assert_eq!(unmeasured(&unnamed), Some(Unmeasured::NoSpeakerRoles));
        assert!(analyse(&unnamed).is_none());
        let reps = vec![turn("rep", 0, 1, "a")];
        assert_eq!(unmeasured(&reps), Some(Unmeasured::NoCustomerSpeech));
        let customers = vec![turn("customer", 0, 1, "a")];
        assert_eq!(unmeasured(&customers), Some(Unmeasured::NoRepSpeech));
        let both = vec![turn("rep", 0, 1, "a"), turn("customer", 1, 2, "b")];
        assert_eq!(unmeasured(&both), None);
        assert!(
            Unmeasured::NoSpeakerRoles
                .explain()
                .contains("names no speakers")
        );
    }

    #[test]
    fn measures_a_call() {
        let call = vec![
            turn(
                "rep",
                0,
                60,
                "Hi, thanks for the time. What prompted you to look at this now?",
            ),
            turn(
                "customer",
                60,
                120,
                "Honestly, this looks expensive compared to what we budgeted.",
            ),
            turn(
                "rep",
                120,
                150,
                "I hear you, that's a fair concern. What budget did you have in mind?",
            ),
            turn(
                "customer",
                150,
                170,
                "That would be great, this looks really helpful.",
            ),
            turn(
                "rep",
                170,
                200,
                "Um, so, basically, let's book a follow-up on Tuesday at 10; I'll send the invite.",
            ),
            turn(
                "rep",
                200,
                260,
                "And the reporting module pulls everything together.",
            ),
            turn("customer", 260, 270, "Sounds good, Tuesday works."),
        ];
        let m = analyse(&call).unwrap();
        assert!((m.talk_ratio - 180.0 / 270.0).abs() < 1e-9);
        assert_eq!(m.objections, 1);
        assert_eq!(m.handled, 1);
        assert!(m.next_steps);
        assert!(m.sentiment > 0.5, "{}", m.sentiment);
        assert!((m.longest_monologue_s - 90.0).abs() < 1e-9);
        assert!((m.question_rate - 2.0 / 0.075).abs() < 1e-6);
        assert!(m.filler_rate > 0.0);
    }

    #[test]
    fn steamrolled_objection_and_no_next_step() {
        let call = vec![
            turn("rep", 0, 30, "Let me show you the product."),
            turn(
                "customer",
                30,
                40,
                "We're also talking to Dealwise, and they came in cheaper.",
            ),
            turn(
                "rep",
                40,
                70,
                "Everyone says that at first. Anyway, here's the reporting module.",
            ),
            turn(
                "customer",
                70,
                80,
                "Thanks, we'll think about it and get back to you. I'm a bit concerned.",
            ),
        ];
        let m = analyse(&call).unwrap();
        assert_eq!((m.objections, m.handled), (1, 0));
        assert!(!m.next_steps);
        assert!(m.sentiment < 0.0);
        assert_eq!(analyse(&call[..1]), None);
    }

    #[test]
    fn objection_kinds_handling_questions_and_trackers() {
        let call = vec![
            turn(
                "rep",
                0,
                20,
                "So what prompted you to look at this now? Is it a priority this quarter?",
            ),
            turn(
                "customer",
                21,
                40,
                "We're also talking to Dealwise, and they came in cheaper.",
            ),
            turn(
                "rep",
                42,
                70,
                "That's fair. What did you like about their offer? Where we usually win is the audit trail.",
            ),
            turn(
                "customer",
                71,
                80,
                "I'd need my VP to sign off on this; it's not my call.",
            ),
            turn(
                "rep",
                80,
                95,
                "We can talk about that later. Let me finish the demo of the Core Platform pricing.",
            ),
            turn("customer", 96, 100, "Okay."),
        ];
        let trackers = Trackers::default_set();
        let a = analyse_call(&call, &trackers).unwrap();
        assert_eq!((a.questions_open, a.questions_closed), (2, 1));
        let kinds: Vec<_> = a.objections.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [ObjectionKind::Competitor, ObjectionKind::Authority]);
        let first = &a.objections[0];
        assert!(
            first.acknowledged && first.asked && first.value && first.handled && !first.dismissed
        );
        let second = &a.objections[1];
        assert!(second.dismissed && !second.handled);
        assert_eq!(second.reply_turn, Some(4));
        let names: Vec<_> = a
            .trackers
            .iter()
            .map(|t| (t.tracker.as_str(), t.rep, t.customer))
            .collect();
        assert_eq!(
            names,
            [
                ("competitors", 0, 1),
                ("products", 1, 0),
                ("pricing", 1, 1),
                ("security", 1, 0)
            ]
        );
        // 5 switches in 100 s; the rep waits 2, 1 and 0 s after the customer.
        assert!((a.switches_per_minute - 3.0).abs() < 1e-9);
        assert!((a.patience_s.unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(a.next_step, None);
    }

    #[test]
    fn tracker_files_are_checked() {
        let ok = Trackers::parse(
            "[[tracker]]\nname = \"rivals\"\nkeywords = [\"Gong\"]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(ok.names(), ["rivals"]);
        let e = Trackers::parse(
            "[[tracker]]\nname = \"rivals\"\nkeywords = \"Gong\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("t.toml") && e.to_string().contains("line 3"),
            "{e}"
        );
        let e = Trackers::parse("[[tracker]]\nname = \"rivals\"\nkeywords = []\n", "t.toml")
            .unwrap_err();
        assert!(e.to_string().contains("rivals"), "{e}");
        // Whole words only.
        let call = vec![
            turn("rep", 0, 10, "Gongs and gong."),
            turn("customer", 10, 20, "GONG!"),
        ];
        let a = analyse_call(&call, &ok).unwrap();
        assert_eq!((a.trackers[0].rep, a.trackers[0].customer), (1, 1));
    }
}
