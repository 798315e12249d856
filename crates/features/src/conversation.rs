//! What a call transcript says about the call: talk ratio, questions, monologues,
//! objections and whether they were handled, next steps, sentiment and fillers.
//!
//! Transparent lexicon rules over speaker turns (English), so that every figure
//! can be shown next to the words that produced it. They work on any transcript
//! with speaker roles (rep / customer), imported from WebVTT or CSV.

use pipewise_store::read::Turn;

/// The measures of one call.
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
    /// A concrete next step (a meeting, a date, an invite) proposed and accepted.
    pub next_steps: bool,
    /// Customer sentiment in [-1, 1]: (positive - negative) / (positive + negative).
    pub sentiment: f64,
    /// Rep filler words per minute of rep speech.
    pub filler_rate: f64,
}

const OBJECTION: &[&str] = &[
    "expensive",
    "too much",
    "cheaper",
    "budget",
    "cost too",
    "price is",
    "timing is",
    "next quarter",
    "next year",
    "not a priority",
    "not my call",
    "sign off",
    "need approval",
    "talking to",
    "competitor",
    "another vendor",
    "not sure we",
    "don't need",
    "do not need",
    "well enough",
    "happy with our",
    "not convinced",
];
const ACKNOWLEDGE: &[&str] = &[
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
];
const DISMISS: &[&str] = &[
    "later",
    "moving on",
    "anyway",
    "let me finish",
    "the rest of the features",
    "once you see",
];
const NEXT_STEP: &[&str] = &[
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
];
const DAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "tomorrow",
    "next week",
];
const ACCEPT: &[&str] = &[
    "works",
    "sounds good",
    "sounds great",
    "yes",
    "sure",
    "perfect",
    "see you",
    "i'll make sure",
];
const POSITIVE: &[&str] = &[
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
];
const NEGATIVE: &[&str] = &[
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
];
const FILLERS: &[&str] = &[
    "um",
    "uh",
    "basically",
    "you know",
    "like,",
    "kind of",
    "sort of",
];

fn count_any(text: &str, words: &[&str]) -> u32 {
    words.iter().map(|w| text.matches(w).count() as u32).sum()
}
fn any(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}
fn is_rep(t: &Turn) -> bool {
    t.speaker_role.as_deref() == Some("rep")
}
fn is_customer(t: &Turn) -> bool {
    t.speaker_role.as_deref() == Some("customer")
}
fn filler_count(text: &str) -> u32 {
    // Whole-word matches for the short ones ("um", "uh").
    let words = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| *w == "um" || *w == "uh")
        .count() as u32;
    words + count_any(text, &FILLERS[2..])
}

/// Measures one call; `None` when it has no turns with both roles known.
pub fn analyse(turns: &[Turn]) -> Option<CallMetrics> {
    let lower: Vec<String> = turns.iter().map(|t| t.text.to_lowercase()).collect();
    let dur = |t: &Turn| ((t.end_ms - t.start_ms).max(0)) as f64 / 1000.0;
    let rep_s: f64 = turns.iter().filter(|t| is_rep(t)).map(dur).sum();
    let cust_s: f64 = turns.iter().filter(|t| is_customer(t)).map(dur).sum();
    if rep_s + cust_s <= 0.0 || rep_s == 0.0 || cust_s == 0.0 {
        return None;
    }
    let span_h = (turns.iter().map(|t| t.end_ms).max().unwrap_or(0)
        - turns.iter().map(|t| t.start_ms).min().unwrap_or(0))
    .max(1) as f64
        / 3_600_000.0;
    let mut m = CallMetrics {
        talk_ratio: rep_s / (rep_s + cust_s),
        ..Default::default()
    };
    let mut questions = 0u32;
    let mut fillers = 0u32;
    let (mut run, mut pos, mut neg) = (0.0f64, 0u32, 0u32);
    let mut next_step_offered = false;
    for (i, t) in turns.iter().enumerate() {
        let text = &lower[i];
        if is_rep(t) {
            questions += text.matches('?').count() as u32;
            fillers += filler_count(text);
            run += dur(t);
            m.longest_monologue_s = m.longest_monologue_s.max(run);
            if any(text, NEXT_STEP) && any(text, DAYS) {
                next_step_offered = true;
            }
        } else {
            run = 0.0;
        }
        if is_customer(t) {
            if next_step_offered && any(text, ACCEPT) {
                m.next_steps = true;
            }
            pos += count_any(text, POSITIVE);
            neg += count_any(text, NEGATIVE);
            if any(text, OBJECTION) {
                m.objections += 1;
                // Handled when the rep's next turn acknowledges it or asks about
                // it, and does not brush it aside.
                if let Some(j) = (i + 1..turns.len()).find(|&j| is_rep(&turns[j])) {
                    let reply = &lower[j];
                    if (any(reply, ACKNOWLEDGE) || reply.contains('?')) && !any(reply, DISMISS) {
                        m.handled += 1;
                    }
                }
            }
        }
    }
    m.question_rate = f64::from(questions) / span_h;
    m.filler_rate = f64::from(fillers) / (rep_s / 60.0).max(0.5);
    m.sentiment = if pos + neg > 0 {
        (f64::from(pos) - f64::from(neg)) / f64::from(pos + neg)
    } else {
        0.0
    };
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(role: &str, start_s: i64, end_s: i64, text: &str) -> Turn {
        Turn {
            speaker_role: Some(role.into()),
            start_ms: start_s * 1000,
            end_ms: end_s * 1000,
            text: text.into(),
        }
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
}
