//! Words: lead inquiries and call transcripts. A transcript's measurable traits
//! (talk ratio, questions, longest monologue, objections and their handling,
//! next steps, filler words, sentiment) are drawn from the rep's latent skills
//! and the deal's strength, and the words are chosen to carry exactly those
//! traits, so an analytics engine can measure them back.

use crate::model::{
    Account, CLOSING, DISCOVERY, OBJECTION_HANDLING, OBJECTIONS, PRODUCT_KNOWLEDGE, Rep, SEGMENTS,
};
use crate::rng::{Rng, sigmoid};

pub const PAINS: [&str; 8] = [
    "our reporting takes days every month",
    "we keep losing track of renewals",
    "our teams work from disconnected spreadsheets",
    "audits take far too much manual work",
    "we cannot see our pipeline in real time",
    "onboarding new staff is slow",
    "our current tool does not scale with us",
    "leadership wants better forecasts",
];

const COMPETITORS: [&str; 4] = ["Acmetrics", "Brightfunnel", "Clearpath", "Dealwise"];

pub fn inquiry(
    rng: &mut Rng,
    account: &Account,
    contact_name: &str,
    title: &str,
    product: &str,
) -> (String, usize) {
    let pain_idx = rng.below(PAINS.len());
    let pain = PAINS[pain_idx];
    let text = match rng.below(4) {
        0 => format!(
            "Hi, I'm {contact_name}, {title} at {}. We're looking at {product} because {pain}. Can someone walk us through pricing?",
            account.name
        ),
        1 => format!(
            "{} here ({title}). {} Interested in {product}; what would it take to get started?",
            account.name,
            capitalise_first(pain)
        ),
        2 => format!(
            "Hello - we are {} employees at {} and {pain}. Does {product} integrate with our systems? Please get in touch.",
            account.employees, account.name
        ),
        _ => format!(
            "Requesting a demo of {product} for {}. Main problem: {pain}. - {contact_name}",
            account.name
        ),
    };
    (text, pain_idx)
}

fn capitalise_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str() + ".",
        None => String::new(),
    }
}

/// One speaker turn, times in milliseconds from the start of the call.
pub struct Turn {
    pub rep: bool,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

/// What a call was like, as drawn (before any measurement).
pub struct CallTraits {
    pub duration_s: i64,
    pub talk_ratio: f64,
    pub rep_questions: u32,
    pub objections: Vec<(usize, bool)>,
    pub next_steps: bool,
}

/// How strongly one call moves a deal (a deal sees up to four).
pub const CALL_WEIGHT: f64 = 0.4;

/// The effect of a call on the deal's strength, from its traits.
pub fn call_effect(tr: &CallTraits, product_knowledge: f64) -> f64 {
    CALL_WEIGHT * call_score(tr, product_knowledge)
}

fn call_score(tr: &CallTraits, product_knowledge: f64) -> f64 {
    let handled = tr.objections.iter().filter(|o| o.1).count() as f64;
    let unhandled = tr.objections.len() as f64 - handled;
    let q_per_hour = f64::from(tr.rep_questions) * 3600.0 / tr.duration_s.max(60) as f64;
    0.40 * handled - 0.45 * unhandled + 0.5 * f64::from(u8::from(tr.next_steps))
        - 1.5 * (tr.talk_ratio - 0.6)
        + 0.06 * (q_per_hour - 11.0)
        + 0.15 * product_knowledge
        - 0.15
}

/// Expected objections raised in a call at `stage` on a deal of strength `s`.
pub fn expected_objections(stage: usize, s: f64) -> f64 {
    (1.0 + 0.5 * f64::from(u8::from(stage >= 3)) - 0.35 * s).max(0.2)
}

pub fn p_handled(rep: &Rep, t: i64) -> f64 {
    sigmoid(0.2 + 1.1 * rep.skill(OBJECTION_HANDLING, t))
}

pub fn p_next_steps(rep: &Rep, t: i64, s: f64) -> f64 {
    sigmoid(-0.2 + 0.8 * rep.skill(CLOSING, t) + 0.5 * s)
}

pub fn expected_talk_ratio(rep: &Rep, t: i64) -> f64 {
    (0.70 - 0.10 * rep.skill(DISCOVERY, t)).clamp(0.3, 0.92)
}

pub fn expected_question_rate(rep: &Rep, t: i64) -> f64 {
    (11.0 + 4.5 * rep.skill(DISCOVERY, t)).max(2.0)
}

/// Mean and variance of a call's effect on strength, for the oracle.
pub fn call_effect_moments(rep: &Rep, t: i64, stage: usize, s: f64) -> (f64, f64) {
    let n = expected_objections(stage, s);
    let ph = p_handled(rep, t);
    let pn = p_next_steps(rep, t, s);
    let mean = n * (0.40 * ph - 0.45 * (1.0 - ph)) + 0.5 * pn
        - 1.5 * (expected_talk_ratio(rep, t) - 0.6)
        + 0.06 * (expected_question_rate(rep, t) - 11.0)
        + 0.15 * rep.skill(PRODUCT_KNOWLEDGE, t)
        - 0.15;
    let per_obj = ph * 0.40f64.powi(2) + (1.0 - ph) * 0.45f64.powi(2);
    let var =
        n * per_obj + 0.25 * pn * (1.0 - pn) + (1.5 * 0.05f64).powi(2) + 0.06f64.powi(2) * 2.25;
    // Plus the call's own noise (sd 0.25, added by the caller after weighting).
    (
        CALL_WEIGHT * mean,
        CALL_WEIGHT * CALL_WEIGHT * var + 0.25f64.powi(2),
    )
}

pub const STAGE_CALLS: [&str; 5] = [
    "",
    "Qualification call",
    "Discovery call",
    "Demo and proposal review",
    "Negotiation call",
];

/// Draws a call and writes its transcript.
#[allow(clippy::too_many_arguments)]
pub fn call(
    rng: &mut Rng,
    rep: &Rep,
    t: i64,
    stage: usize,
    strength: f64,
    account: &Account,
    contact: &str,
    product: &str,
    want_text: bool,
) -> (CallTraits, Vec<Turn>) {
    let duration_s = rng.int(18 * 60, 42 * 60);
    let talk_ratio = (expected_talk_ratio(rep, t) + rng.gauss(0.0, 0.05)).clamp(0.25, 0.95);
    let q_rate = (expected_question_rate(rep, t) + rng.gauss(0.0, 1.5)).max(1.0);
    let rep_questions = rng.poisson(q_rate * duration_s as f64 / 3600.0);
    let seg = &SEGMENTS[account.segment];
    let n_obj = rng.poisson(expected_objections(stage, strength));
    let ph = p_handled(rep, t);
    let objections: Vec<(usize, bool)> = (0..n_obj)
        .map(|_| (rng.weighted(&seg.objections), rng.chance(ph)))
        .collect();
    let next_steps = rng.chance(p_next_steps(rep, t, strength));
    let traits = CallTraits {
        duration_s,
        talk_ratio,
        rep_questions,
        objections,
        next_steps,
    };
    if !want_text {
        return (traits, Vec::new());
    }
    let turns = script(rng, rep, t, strength, account, contact, product, &traits);
    (traits, turns)
}

enum Beat {
    Greeting,
    Question(bool),
    Pitch,
    Objection(usize, bool),
    Close(bool),
}

#[allow(clippy::too_many_arguments)]
fn script(
    rng: &mut Rng,
    rep: &Rep,
    t: i64,
    s: f64,
    account: &Account,
    contact: &str,
    product: &str,
    tr: &CallTraits,
) -> Vec<Turn> {
    let open_share = sigmoid(0.3 + 0.6 * rep.skill(DISCOVERY, t));
    let n_pitch = (3 + rng.below(3)) as u32;
    // The order of the middle of the call: questions and pitches, objections among them.
    let mut middle: Vec<Beat> = (0..tr.rep_questions)
        .map(|_| Beat::Question(rng.chance(open_share)))
        .collect();
    middle.extend((0..n_pitch).map(|_| Beat::Pitch));
    for i in (1..middle.len()).rev() {
        let j = rng.below(i + 1);
        middle.swap(i, j);
    }
    for &(kind, handled) in &tr.objections {
        let at = rng.below(middle.len() + 1);
        middle.insert(at, Beat::Objection(kind, handled));
    }
    let mut beats = vec![Beat::Greeting];
    beats.extend(middle);
    beats.push(Beat::Close(tr.next_steps));

    // Raw speaking times; then scaled so the rep holds `talk_ratio` of the call.
    let monologue = (45.0 * (-0.25 * rep.skill(DISCOVERY, t)).exp()).clamp(15.0, 150.0);
    let mut raw: Vec<(bool, f64, String)> = Vec::new();
    let filler = sigmoid(-0.5 - 0.8 * rep.skill(PRODUCT_KNOWLEDGE, t));
    let positive = sigmoid(0.9 * s);
    for beat in beats {
        match beat {
            Beat::Greeting => {
                raw.push((true, rng.uniform(8.0, 15.0), format!("Hi {contact}, thanks for making the time today. I'd like to understand where {} is and see if {product} fits.", account.name)));
                raw.push((
                    false,
                    rng.uniform(5.0, 12.0),
                    format!("Sure, happy to. {}", mood(rng, positive)),
                ));
            }
            Beat::Question(open) => {
                let q = if open {
                    rng.pick(&OPEN_Q).replace("{product}", product)
                } else {
                    rng.pick(&CLOSED_Q).replace("{product}", product)
                };
                raw.push((true, rng.uniform(5.0, 12.0), q));
                let ans = format!(
                    "{} {}",
                    rng.pick(&ANSWERS).replace("{pain}", rng.pick(&PAINS)),
                    mood(rng, positive)
                );
                raw.push((false, rng.uniform(15.0, 60.0), ans));
            }
            Beat::Pitch => {
                let mut text = rng.pick(&PITCH).replace("{product}", product);
                if rng.chance(filler) {
                    text = format!("{} {text}", rng.pick(&FILLERS));
                }
                raw.push((true, rng.lognormal(monologue, 0.45), text));
                raw.push((false, rng.uniform(3.0, 10.0), rng.pick(&ACKS).to_string()));
            }
            Beat::Objection(kind, handled) => {
                let obj = OBJECTION_LINES[kind].replace("{competitor}", rng.pick(&COMPETITORS));
                raw.push((false, rng.uniform(8.0, 20.0), obj));
                if handled {
                    raw.push((
                        true,
                        rng.uniform(10.0, 25.0),
                        format!("{} {}", rng.pick(&ACKNOWLEDGE), HANDLE_LINES[kind]),
                    ));
                    raw.push((
                        false,
                        rng.uniform(8.0, 20.0),
                        "That's fair, and it helps to hear it that way.".into(),
                    ));
                } else {
                    raw.push((
                        true,
                        rng.uniform(15.0, 40.0),
                        rng.pick(&STEAMROLL).to_string(),
                    ));
                }
            }
            Beat::Close(agreed) => {
                if agreed {
                    let day = rng.pick(&["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]);
                    raw.push((true, rng.uniform(8.0, 15.0), format!("Let's book a follow-up on {day} at 10 with your {}; I'll send the invite and a summary today.", rng.pick(&["CFO", "IT lead", "VP Operations", "team"]))));
                    raw.push((
                        false,
                        rng.uniform(4.0, 8.0),
                        format!("Sounds good, {day} works. I'll make sure they join."),
                    ));
                } else {
                    raw.push((
                        true,
                        rng.uniform(6.0, 12.0),
                        "Great talking to you. Let me know if you have any questions.".into(),
                    ));
                    raw.push((
                        false,
                        rng.uniform(4.0, 8.0),
                        "Thanks, we'll think about it and get back to you.".into(),
                    ));
                }
            }
        }
    }
    let total_ms = tr.duration_s as f64 * 1000.0;
    let pauses: Vec<f64> = (0..raw.len()).map(|_| rng.uniform(300.0, 1500.0)).collect();
    let speech_ms = (total_ms - pauses.iter().sum::<f64>()).max(total_ms * 0.5);
    let rep_raw: f64 = raw.iter().filter(|r| r.0).map(|r| r.1).sum();
    let cust_raw: f64 = raw.iter().filter(|r| !r.0).map(|r| r.1).sum();
    let rep_scale = tr.talk_ratio * speech_ms / (rep_raw * 1000.0).max(1.0);
    let cust_scale = (1.0 - tr.talk_ratio) * speech_ms / (cust_raw * 1000.0).max(1.0);
    let mut out: Vec<Turn> = Vec::with_capacity(raw.len());
    let mut clock = 0.0;
    for ((is_rep, secs, text), pause) in raw.into_iter().zip(pauses) {
        let len = secs * 1000.0 * if is_rep { rep_scale } else { cust_scale };
        let start = clock;
        clock += len;
        let (start_ms, end_ms) = (start.round() as i64, clock.round() as i64);
        match out.last_mut() {
            // The same speaker again (after a steamroll, say) is one turn.
            Some(last) if last.rep == is_rep => {
                last.end_ms = end_ms;
                last.text.push(' ');
                last.text.push_str(&text);
            }
            _ => out.push(Turn {
                rep: is_rep,
                start_ms,
                end_ms,
                text,
            }),
        }
        clock += pause;
    }
    out
}

fn mood(rng: &mut Rng, positive: f64) -> &'static str {
    if rng.chance(positive) {
        rng.pick(&POSITIVE)
    } else {
        rng.pick(&NEGATIVE)
    }
}

const OPEN_Q: [&str; 10] = [
    "What prompted you to look at this now?",
    "How are you handling this today?",
    "What would success look like for your team in six months?",
    "Who else is involved in a decision like this?",
    "How do you measure the impact of this problem today?",
    "What have you tried so far, and what happened?",
    "How does your team decide on tools like {product}?",
    "What would happen if you changed nothing this year?",
    "Why is this a priority for leadership?",
    "What does your timeline look like?",
];
const CLOSED_Q: [&str; 6] = [
    "Is this a priority this quarter?",
    "Do you have budget set aside?",
    "Are you using a competitor today?",
    "Can we get your CFO on the next call?",
    "Did you see the pricing page?",
    "Would {product} replace your current tool?",
];
const ANSWERS: [&str; 6] = [
    "Honestly, {pain}.",
    "Right now {pain}, and it's getting worse as we grow.",
    "The main thing is that {pain}.",
    "It's mostly that {pain}; my team spends hours on it.",
    "We've looked at options before, but {pain}.",
    "Good question. I think {pain}.",
];
const PITCH: [&str; 6] = [
    "So {product} pulls everything into one place, the dashboards update in real time, and your managers get alerts before deals slip, which teams like yours use every week.",
    "Let me walk you through how {product} works: you connect your CRM, we clean the data, and within a day you see the pipeline, the forecast and the risks in one view.",
    "Customers your size usually start with {product} for one team, prove the value in a quarter, and then roll it out, and the rollout takes about two weeks.",
    "The reason teams pick {product} is that it explains every number, so nobody argues about where the data came from, and the audit trail is built in.",
    "On security, {product} is certified, encrypts everything at rest, and you control who sees what down to the individual deal.",
    "Pricing for {product} depends on seats and modules, and most customers see payback within the first two quarters because of the time saved.",
];
const FILLERS: [&str; 4] = [
    "Um, so, basically,",
    "You know, like,",
    "So, um,",
    "Basically, you know,",
];
const ACKS: [&str; 5] = ["Okay.", "Right.", "Makes sense.", "I see.", "Mm-hm."];
const POSITIVE: [&str; 5] = [
    "That would be great.",
    "We'd love to fix that.",
    "This looks really helpful.",
    "The team is excited about it.",
    "I like what I'm hearing.",
];
const NEGATIVE: [&str; 5] = [
    "I'm a bit concerned, to be honest.",
    "It's been frustrating.",
    "I'm not sure it's worth it.",
    "That sounds difficult for us.",
    "We've been burned before.",
];
const OBJECTION_LINES: [&str; 6] = [
    "Honestly, this looks expensive compared to what we budgeted.",
    "The timing is bad; we can't take this on until next quarter.",
    "We're also talking to {competitor}, and they came in cheaper.",
    "I'd need my VP to sign off on anything like this; it's not my call.",
    "I'm not sure we really need this right now.",
    "Our current spreadsheets work well enough, to be honest.",
];
const ACKNOWLEDGE: [&str; 4] = [
    "I hear you, that's a fair concern.",
    "That makes sense, thanks for being direct.",
    "Understood, and that's important.",
    "Good point, let me make sure I understand.",
];
const HANDLE_LINES: [&str; 6] = [
    "Can I ask what budget you had in mind? Most teams your size recover the cost within two quarters from the hours saved, and we can phase the rollout.",
    "What would need to be true to start this quarter? We could begin with a small pilot so nothing waits for next year.",
    "What did you like about their offer? Where we usually win is the explanations and the audit trail, which matter for your reviews.",
    "Who else should be part of the next conversation? I can prepare a one-page business case for your VP.",
    "What happens to your reporting if nothing changes? If the problem is real, the cost of waiting is usually bigger than the tool.",
    "What does the spreadsheet process cost your team each month? Can we compare it side by side on your own data?",
];
const STEAMROLL: [&str; 4] = [
    "Let me just show you the rest of the features first.",
    "I'm sure it'll be fine once you see the product. Moving on to the next screen.",
    "Everyone says that at first. Anyway, here's the reporting module.",
    "We can talk about that later. Let me finish the demo.",
];

pub fn objection_name(kind: usize) -> &'static str {
    OBJECTIONS[kind]
}
