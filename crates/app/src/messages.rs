//! Live message tests: the variants (`template_id`) of a sequence step as
//! the CRM recorded their sends, read as Thompson-sampling bandits
//! ([`pipewise_engines::bandit`]): where each test stands, the variant and
//! selection probability of the next sends, and what other policies would
//! have earned, estimated from the logged probabilities (IPS and doubly
//! robust).
//!
//! A test is every outbound email, SMS or social message with one
//! `sequence_id` and `sequence_step` and a `template_id`, when two or more
//! templates were sent there. A send's outcome is read from its `outcome`:
//! `meeting_booked` is a meeting; `replied_positive` a positive reply;
//! `replied_negative` or `unsubscribed` a negative one; anything else no
//! reply. A plain `replied` says nothing of the reply's sense: by default it
//! counts as no reply ([`ReplyReading::Unrewarded`]) and the test says how
//! many there were. When no send of the sequence records `meeting_booked`, a
//! meeting with the same lead or contact within [`MEETING_DAYS`] days after
//! a send counts as booked by the latest send of the test before it.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, bail};
use pipewise_engines::bandit::{
    self, BanditRng, Estimate, LoggedSend, MessageTest, Outcome, TestRules, Utilities,
};
use pipewise_store::read::MessageSend;
use pipewise_store::{CrmData, SqliteStore};
use serde::Serialize;

/// Days after a send within which a meeting with the same lead or contact
/// counts as booked by it (when the test's sends record no `meeting_booked`).
pub const MEETING_DAYS: i64 = 14;

/// How a reply recorded only as `replied` (sense unknown) is counted.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReplyReading {
    /// As no reply (the default: a raw reply may be "remove me").
    #[default]
    #[serde(rename = "none")]
    Unrewarded,
    /// As a positive reply.
    Positive,
}

impl ReplyReading {
    pub fn parse(s: &str) -> Option<ReplyReading> {
        match s {
            "none" | "unrewarded" => Some(ReplyReading::Unrewarded),
            "positive" => Some(ReplyReading::Positive),
            _ => None,
        }
    }
}

/// Which message tests, read how (`GET /api/v1/messages`).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Only this test (`SEQUENCE:STEP`); an unknown one answers 404.
    pub test: Option<String>,
    /// How a reply recorded only as `replied` counts (default `none`).
    pub replies: Option<ReplyReading>,
    /// Sends each variant needs before a winner may be declared (default
    /// 300).
    #[param(minimum = 1, maximum = 1000000)]
    pub min_sends: Option<u64>,
}

/// The next sends of a test (`GET /api/v1/messages/choose`).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChooseQuery {
    /// The test (`SEQUENCE:STEP`); an unknown one answers 404.
    pub test: String,
    /// Sends to choose, 1-1000 (default 1).
    #[param(minimum = 1, maximum = 1000)]
    pub sends: Option<u64>,
    /// How a reply recorded only as `replied` counts (default `none`).
    pub replies: Option<ReplyReading>,
    /// Sends each variant needs before a winner may be declared (default
    /// 300).
    #[param(minimum = 1, maximum = 1000000)]
    pub min_sends: Option<u64>,
}

/// The rules of a query's `min_sends`. Errors: 0 or over 1,000,000.
pub fn rules_of(min_sends: Option<u64>) -> Result<TestRules, crate::InputError> {
    let m = min_sends.unwrap_or(TestRules::default().min_sends);
    if !(1..=1_000_000).contains(&m) {
        return Err(crate::InputError::new(
            "min_sends",
            "sends from 1 to 1000000",
            &m.to_string(),
        ));
    }
    Ok(TestRules {
        min_sends: m,
        ..TestRules::default()
    })
}

/// The tests there are, for a "no such test" message.
pub fn test_names(store: &SqliteStore) -> Result<Vec<String>> {
    let sends = store.message_sends()?;
    Ok(gather(&sends)
        .0
        .iter()
        .map(|g| key_of(&g.sequence_id, g.step))
        .collect())
}

/// Every live test and where it stands.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessagesReport {
    pub tests: Vec<LiveTest>,
    /// Sequence steps with a template but only one (not a test).
    pub single_template_steps: usize,
    /// What each outcome is worth, in meetings.
    #[schema(value_type = Object)]
    pub utilities: Utilities,
    /// Sends each variant needs before a winner may be declared.
    pub min_sends: u64,
    /// The leader's posterior probability of being best a winner needs.
    pub confidence: f64,
    pub replies_read_as: ReplyReading,
}

/// One test.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveTest {
    /// `SEQUENCE:STEP` (or `SEQUENCE` when no step was recorded): what
    /// `messages choose --test` takes.
    pub test: String,
    pub sequence_id: String,
    pub sequence_step: Option<i64>,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub first_send: String,
    pub last_send: String,
    pub sends: u64,
    pub variants: Vec<VariantRow>,
    /// The declared winner's template, once the rules allow one.
    pub winner: Option<String>,
    /// The variant most likely best now.
    pub leader: String,
    /// Where the test stands, in words.
    pub verdict: String,
    /// Replies recorded only as `replied` (their sense unknown).
    pub unclassified_replies: u64,
    /// How meetings were read: `recorded` (outcome `meeting_booked`) or
    /// `inferred` (a meeting with the lead or contact within
    /// [`MEETING_DAYS`] days).
    pub meetings_from: String,
    /// Sends that carry their selection probability.
    pub logged_sends: u64,
    /// Other policies' value per send estimated from the logged sends;
    /// empty when none carries its probability.
    pub evaluation: Vec<PolicyValue>,
    /// Why some figures are missing or need care.
    pub notes: Vec<String>,
}

/// One variant of a test.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VariantRow {
    pub template_id: String,
    pub sends: u64,
    pub meetings: u64,
    /// Positive replies as counted: with `--replies positive`, the
    /// unclassified ones too.
    pub positive_replies: u64,
    /// Negative replies and unsubscribes.
    pub negative_replies: u64,
    /// Replies recorded only as `replied`.
    pub unclassified_replies: u64,
    /// Shares of the sends as observed (0-1; 0 without sends).
    pub meeting_rate: f64,
    pub positive_reply_rate: f64,
    pub negative_reply_rate: f64,
    /// Utility per send as observed (meetings per send: a meeting 1, a
    /// positive reply 0.3, a negative one -0.5).
    pub value: f64,
    /// The posterior mean utility per send and its 90% credible interval
    /// (a uniform Dirichlet prior over the four outcomes: one pseudo-send
    /// each, which pulls a variant with few sends towards 0.2).
    pub posterior_value: f64,
    pub value_low: f64,
    pub value_high: f64,
    /// Posterior probability of being the best variant.
    pub prob_best: f64,
    /// The probability the bandit sends it next (with the 1% floor).
    pub next_share: f64,
}

/// A policy's value per send, estimated from the logs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyValue {
    /// `even split`, `always TEMPLATE` or `the bandit now`.
    pub policy: String,
    /// Inverse propensity scoring and doubly robust estimates, with their
    /// standard errors (meetings per send).
    pub ips: f64,
    pub ips_se: f64,
    pub doubly_robust: f64,
    pub doubly_robust_se: f64,
    /// Logged sends of the variants the policy sends that drew a reply or
    /// a meeting: below [`MIN_EVENTS`] the estimates and their standard
    /// errors mean little (no reply at all gives 0 ± 0).
    pub events: u64,
    /// `events` ≥ [`MIN_EVENTS`].
    pub enough_data: bool,
}

/// Replies or meetings a policy's variants need in the logs before its
/// estimated value is reported as meaningful.
pub const MIN_EVENTS: u64 = 10;

/// The variants chosen for the next sends of a test.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChoiceReport {
    pub test: String,
    /// Each send's variant and the probability it had of being chosen:
    /// log it with the send as `selection_probability`.
    pub choices: Vec<ChosenSend>,
    /// The selection probability of every variant now.
    pub policy: Vec<VariantShare>,
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChosenSend {
    pub template_id: String,
    pub selection_probability: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VariantShare {
    pub template_id: String,
    pub selection_probability: f64,
}

/// A test's sends, gathered.
struct Gathered<'a> {
    sequence_id: String,
    step: Option<i64>,
    sends: Vec<&'a MessageSend>,
}

fn key_of(seq: &str, step: Option<i64>) -> String {
    match step {
        Some(s) => format!("{seq}:{s}"),
        None => seq.to_string(),
    }
}

/// The sends of each (sequence, step), in first-send order; and the number
/// of steps with only one template.
fn gather(sends: &[MessageSend]) -> (Vec<Gathered<'_>>, usize) {
    let mut by: BTreeMap<(String, Option<i64>), Vec<&MessageSend>> = BTreeMap::new();
    for s in sends {
        by.entry((s.sequence_id.clone(), s.sequence_step))
            .or_default()
            .push(s);
    }
    let mut single = 0;
    let mut out = Vec::new();
    for ((seq, step), v) in by {
        let mut t: Vec<&str> = v.iter().map(|s| s.template_id.as_str()).collect();
        t.sort_unstable();
        t.dedup();
        if t.len() < 2 {
            single += 1;
            continue;
        }
        out.push(Gathered {
            sequence_id: seq,
            step,
            sends: v,
        });
    }
    (out, single)
}

/// Send ids booked a meeting by inference: the latest send of the test to
/// the lead or contact before a meeting with it within [`MEETING_DAYS`].
fn inferred_meetings(crm: &CrmData, sends: &[&MessageSend]) -> std::collections::HashSet<String> {
    let mut by_target: HashMap<&str, Vec<(i64, &str)>> = HashMap::new();
    for s in sends {
        for t in [s.lead_id.as_deref(), s.contact_id.as_deref()]
            .into_iter()
            .flatten()
        {
            by_target
                .entry(t)
                .or_default()
                .push((s.occurred_at, s.id.as_str()));
        }
    }
    let mut booked = std::collections::HashSet::new();
    for a in &crm.activities {
        if a.kind != "meeting" {
            continue;
        }
        for t in [a.lead_id.as_deref(), a.contact_id.as_deref()]
            .into_iter()
            .flatten()
        {
            let Some(v) = by_target.get(t) else { continue };
            // v is in time order: the latest send at or before the meeting.
            let i = v.partition_point(|(at, _)| *at <= a.occurred_at);
            if i > 0 && a.occurred_at - v[i - 1].0 <= MEETING_DAYS * 86_400 {
                booked.insert(v[i - 1].1.to_string());
            }
        }
    }
    booked
}

/// How a send ended, as the bandit counts it; `true` when it was a reply of
/// unknown sense.
fn outcome_of(s: &MessageSend, booked: bool, replies: ReplyReading) -> (Outcome, bool) {
    match s.outcome.as_deref() {
        Some("meeting_booked") => (Outcome::Meeting, false),
        Some("replied_negative" | "unsubscribed") => (Outcome::NegativeReply, false),
        _ if booked => (Outcome::Meeting, false),
        Some("replied_positive") => (Outcome::PositiveReply, false),
        Some("replied") => match replies {
            ReplyReading::Positive => (Outcome::PositiveReply, true),
            ReplyReading::Unrewarded => (Outcome::NoReply, true),
        },
        _ => (Outcome::NoReply, false),
    }
}

/// A gathered test as the bandit sees it, with what was counted.
struct Built {
    test: MessageTest,
    names: Vec<String>,
    logs: Vec<LoggedSend>,
    unclassified: Vec<u64>,
    meetings_inferred: bool,
    bad_probability: u64,
}

/// The sequences some send of which records `meeting_booked`: their
/// meetings are read from the outcomes, other sequences' are inferred from
/// the meetings.
fn meetings_recorded(sends: &[MessageSend]) -> std::collections::HashSet<String> {
    sends
        .iter()
        .filter(|s| s.outcome.as_deref() == Some("meeting_booked"))
        .map(|s| s.sequence_id.clone())
        .collect()
}

fn build(
    crm: &CrmData,
    g: &Gathered<'_>,
    rules: TestRules,
    replies: ReplyReading,
    recorded: bool,
) -> Built {
    let mut names: Vec<String> = g.sends.iter().map(|s| s.template_id.clone()).collect();
    names.sort_unstable();
    names.dedup();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let booked = if recorded {
        Default::default()
    } else {
        inferred_meetings(crm, &g.sends)
    };
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut test = MessageTest::new(&refs, Utilities::default(), rules);
    let mut logs = Vec::new();
    let mut unclassified = vec![0u64; names.len()];
    let mut bad_probability = 0;
    for s in g.sends.iter() {
        let arm = index[s.template_id.as_str()];
        let (o, raw) = outcome_of(s, booked.contains(&s.id), replies);
        test.record(arm, o);
        unclassified[arm] += u64::from(raw);
        match s.selection_probability {
            Some(p) if p > 0.0 && p <= 1.0 => logs.push(LoggedSend {
                arm,
                propensity: p,
                outcome: o,
            }),
            Some(_) => bad_probability += 1,
            None => {}
        }
    }
    Built {
        test,
        names,
        logs,
        unclassified,
        meetings_inferred: !recorded,
        bad_probability,
    }
}

fn observed(n: u64, sends: u64) -> f64 {
    if sends == 0 {
        0.0
    } else {
        n as f64 / sends as f64
    }
}

fn instant_text(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn est(e: Estimate) -> (f64, f64) {
    (e.value, e.se)
}

/// Every live test in the database and where it stands: each variant's
/// sends, outcomes, value per send with a 90% interval and probability of
/// being best (4,000 posterior draws from a fixed seed, so the figures
/// repeat), the verdict under `rules`, and other policies' value from the
/// logged selection probabilities. Errors: the database cannot be read.
pub fn report(
    store: &SqliteStore,
    crm: &CrmData,
    rules: TestRules,
    replies: ReplyReading,
) -> Result<MessagesReport> {
    let sends = store.message_sends()?;
    let (gathered, single) = gather(&sends);
    let recorded = meetings_recorded(&sends);
    let mut tests = Vec::new();
    for g in &gathered {
        let b = build(crm, g, rules, replies, recorded.contains(&g.sequence_id));
        let mut rng = BanditRng::new(1);
        let standing = b.test.standing(&mut rng);
        let variants: Vec<VariantRow> = standing
            .arms
            .iter()
            .zip(&b.test.arms)
            .zip(&b.unclassified)
            .map(|((s, a), &u)| VariantRow {
                template_id: s.name.clone(),
                sends: s.sends,
                meetings: a.counts[0],
                positive_replies: a.counts[1],
                negative_replies: a.counts[3],
                unclassified_replies: u,
                meeting_rate: observed(a.counts[0], s.sends),
                positive_reply_rate: observed(a.counts[1], s.sends),
                negative_reply_rate: observed(a.counts[3], s.sends),
                value: if s.sends == 0 {
                    0.0
                } else {
                    Utilities::default().value(&[
                        observed(a.counts[0], s.sends),
                        observed(a.counts[1], s.sends),
                        observed(a.counts[2], s.sends),
                        observed(a.counts[3], s.sends),
                    ])
                },
                posterior_value: s.value,
                value_low: s.value_low,
                value_high: s.value_high,
                prob_best: s.prob_best,
                next_share: s.next_share,
            })
            .collect();
        let leader = variants
            .iter()
            .max_by(|a, b| a.prob_best.total_cmp(&b.prob_best))
            .map(|v| v.template_id.clone())
            .unwrap_or_default();
        let unclassified: u64 = b.unclassified.iter().sum();
        let mut notes = Vec::new();
        if unclassified > 0 {
            notes.push(match replies {
                ReplyReading::Unrewarded => format!(
                    "{unclassified} replies are recorded only as `replied`, their sense unknown: counted as no reply (a raw reply may be \"remove me\"). Record replied_positive / replied_negative, or read them as positive (--replies positive)"
                ),
                ReplyReading::Positive => format!(
                    "{unclassified} replies recorded only as `replied` are counted as positive replies, as asked"
                ),
            });
        }
        if b.meetings_inferred {
            notes.push(format!(
                "no send of this sequence records meeting_booked: a meeting with the same lead or contact within {MEETING_DAYS} days counts as booked by the latest send of the test before it"
            ));
        }
        let n = b.test.arms.iter().map(|a| a.sends()).sum::<u64>();
        let logged = b.logs.len() as u64;
        if b.bad_probability > 0 {
            notes.push(format!(
                "{} sends carry a selection probability outside (0, 1]: left out of the policy estimates",
                b.bad_probability
            ));
        }
        let mut evaluation = Vec::new();
        if logged == 0 {
            notes.push(
                "no send carries its selection probability: other policies cannot be evaluated from these logs (log the probability `messages choose` gives as the activity's selection_probability)".into(),
            );
        } else {
            if logged < n {
                notes.push(format!(
                    "{} of {n} sends carry their selection probability: the policy estimates use those only",
                    logged
                ));
            }
            let k = b.names.len();
            let u = Utilities::default();
            let mut policies: Vec<(String, Vec<f64>)> =
                vec![("even split".into(), vec![1.0 / k as f64; k])];
            for (i, name) in b.names.iter().enumerate() {
                policies.push((
                    format!("always {name}"),
                    (0..k).map(|j| f64::from(u8::from(i == j))).collect(),
                ));
            }
            policies.push((
                "the bandit now".into(),
                variants.iter().map(|v| v.next_share).collect(),
            ));
            for (name, target) in policies {
                let (ips, ips_se) = est(bandit::ips(&b.logs, &target, &u));
                let (dr, dr_se) = est(bandit::doubly_robust(&b.logs, &target, &u));
                let events = b
                    .logs
                    .iter()
                    .filter(|l| target[l.arm] > 0.0 && l.outcome != Outcome::NoReply)
                    .count() as u64;
                evaluation.push(PolicyValue {
                    policy: name,
                    ips,
                    ips_se,
                    doubly_robust: dr,
                    doubly_robust_se: dr_se,
                    events,
                    enough_data: events >= MIN_EVENTS,
                });
            }
        }
        tests.push(LiveTest {
            test: key_of(&g.sequence_id, g.step),
            sequence_id: g.sequence_id.clone(),
            sequence_step: g.step,
            first_send: instant_text(g.sends[0].occurred_at),
            last_send: instant_text(g.sends[g.sends.len() - 1].occurred_at),
            sends: n,
            winner: standing.winner.map(|w| b.names[w].clone()),
            leader,
            verdict: standing.verdict,
            unclassified_replies: unclassified,
            meetings_from: if b.meetings_inferred {
                "inferred".into()
            } else {
                "recorded".into()
            },
            logged_sends: logged,
            evaluation,
            variants,
            notes,
        });
    }
    Ok(MessagesReport {
        tests,
        single_template_steps: single,
        utilities: Utilities::default(),
        min_sends: rules.min_sends,
        confidence: rules.confidence,
        replies_read_as: replies,
    })
}

/// Chooses the variants of the next `n` sends of `test` (`SEQUENCE:STEP`,
/// or `SEQUENCE` for a sequence recorded without steps) by Thompson
/// sampling over the sends recorded so far, each with the probability it
/// had of being chosen (to log with the send). A test with a declared
/// winner sends it with probability 1. Errors: no such test (the message
/// names the tests there are), `n` of 0.
pub fn choose(
    store: &SqliteStore,
    crm: &CrmData,
    test: &str,
    n: usize,
    rules: TestRules,
    replies: ReplyReading,
    seed: u64,
) -> Result<ChoiceReport> {
    if n == 0 {
        bail!("--sends 0: choose 1 or more");
    }
    let sends = store.message_sends()?;
    let (gathered, _) = gather(&sends);
    let Some(g) = gathered
        .iter()
        .find(|g| key_of(&g.sequence_id, g.step) == test)
    else {
        let known: Vec<String> = gathered
            .iter()
            .map(|g| key_of(&g.sequence_id, g.step))
            .collect();
        let single = sends
            .iter()
            .any(|s| key_of(&s.sequence_id, s.sequence_step) == test);
        if single {
            bail!(
                "no message test {test:?}: that step sends one template only (a test needs two or more); the tests are {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        if known.is_empty() {
            bail!(
                "no message test {test:?}: the database has no message tests (outbound emails, SMS or social messages with a sequence_id and two or more template_ids at one step)"
            );
        }
        bail!(
            "no message test {test:?}: expected one of {}",
            known.join(", ")
        );
    };
    let b = build(
        crm,
        g,
        rules,
        replies,
        meetings_recorded(&sends).contains(&g.sequence_id),
    );
    let mut rng = BanditRng::new(seed);
    let policy = b.test.policy(&mut rng);
    // One batch: every send drawn from the same probabilities, as a
    // sending system updating daily would.
    let choices = (0..n)
        .map(|_| {
            let u = rng.f64();
            let mut acc = 0.0;
            let mut arm = policy.len() - 1;
            for (i, p) in policy.iter().enumerate() {
                acc += p;
                if u < acc {
                    arm = i;
                    break;
                }
            }
            ChosenSend {
                template_id: b.names[arm].clone(),
                selection_probability: policy[arm],
            }
        })
        .collect();
    let standing = b.test.standing(&mut BanditRng::new(1));
    Ok(ChoiceReport {
        test: test.to_string(),
        choices,
        policy: b
            .names
            .iter()
            .zip(policy)
            .map(|(t, p)| VariantShare {
                template_id: t.clone(),
                selection_probability: p,
            })
            .collect(),
        verdict: standing.verdict,
    })
}
