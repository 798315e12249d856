//! The ground-truth simulator: whole sales organisations whose hidden truth is
//! known.
//!
//! `simulate` draws an org (regions, teams, reps with latent skills and a
//! forecast bias), a market (accounts in latent segments, contacts, products),
//! and then, week by week, inbound leads and their handling, outbound
//! prospecting, opportunities moving through stages with calls and activities,
//! rep-entered stages and close dates, and customers' usage, renewals and
//! expansions. It writes the canonical import files (`pipewise import dir`
//! reads them), a sample of transcripts as WebVTT, and `ground_truth.json`
//! with what no CRM records: every rep's skills and bias, every account's
//! segment, every lead's conversion probability, and every open deal's true
//! stage and win probability at each weekly snapshot.
//!
//! Deterministic: every entity draws from its own stream of a hand-written
//! generator keyed by (seed, kind, index), so the same seed and options give
//! byte-identical files. The causal model is written out in docs/simulator.md.

pub mod model;
mod output;
pub mod policy;
pub mod process;
pub mod rng;
pub mod text;
pub mod time;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::model::{PRODUCTS, REGIONS, SEGMENTS, SKILLS};
use crate::time::DAY;

pub(crate) const STREAM_ORG: u64 = 1;
pub(crate) const STREAM_ACCOUNT: u64 = 2;
pub(crate) const STREAM_LEAD_DAY: u64 = 3;
pub(crate) const STREAM_LEAD: u64 = 4;
pub(crate) const STREAM_OUTBOUND: u64 = 5;
pub(crate) const STREAM_OPP: u64 = 6;
pub(crate) const STREAM_BASE: u64 = 7;
pub(crate) const STREAM_LEAD_PATH: u64 = 8;
pub(crate) const STREAM_LEAD_LABELS: u64 = 9;
pub(crate) const STREAM_ABSENCE: u64 = 10;
pub(crate) const STREAM_ENTRY: u64 = 11;
pub(crate) const STREAM_ADHERENCE: u64 = 12;
pub(crate) const STREAM_FOCUS: u64 = 13;
pub(crate) const STREAM_FOCUS_CHOICE: u64 = 14;
pub(crate) const STREAM_MESSAGE_TEST: u64 = 15;

pub(crate) use pipewise_core::FROM_LIST_SEQUENCE;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("writing {0}: {1}")]
    Csv(String, String),
    #[error("{0}")]
    Config(String),
}

impl SimError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> SimError {
        SimError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<std::io::Error> for SimError {
    fn from(e: std::io::Error) -> Self {
        SimError::Io {
            path: String::new(),
            source: e,
        }
    }
}

/// What to simulate. Every mechanism can be switched off to test that an
/// engine (or a statistical test) notices.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub seed: u64,
    pub reps: usize,
    pub months: u32,
    /// Midnight UTC of the first day.
    #[serde(serialize_with = "ser_date")]
    pub start: i64,
    pub reps_per_team: usize,
    pub accounts_per_rep: usize,
    /// Inbound leads per active rep per month (before seasonality).
    pub leads_per_rep_month: f64,
    /// Outbound opportunities a typical rep creates per week.
    pub outbound_per_rep_week: f64,
    /// Share of stage calls that are recorded with a transcript.
    pub transcript_share: f64,
    /// How many recorded calls are also written as WebVTT files.
    pub vtt_sample: usize,
    /// Reps' forecast bias (optimistic / sandbagging). Off: every rep enters the true stage.
    pub bias: bool,
    /// Rep-segment affinity. Off: no rep is better in one segment than another.
    pub affinity: bool,
    /// Lead conversion falls with response time. Off: response time has no effect.
    pub speed_effect: bool,
    /// Lead conversion rises with follow-up touches: each touch may draw a
    /// reply, the eleventh and later barely do, and touches after a reply
    /// cost conversion. Off: touches have no effect.
    pub touch_effect: bool,
    /// A lead converts more with a rep who fits its segment (the rep's
    /// segment affinity). Off: every rep converts every segment alike.
    pub lead_fit: bool,
    /// A rep's response time and chance of never answering grow with their
    /// queue of unanswered leads. Off: queues do not matter.
    pub capacity: bool,
    /// Whether a call connects or a message is answered depends on the hour
    /// and weekday, differently by segment and channel. Off: timing does not
    /// matter.
    pub contact_timing: bool,
    /// A first reply naming the inquiry's product and pain point draws more
    /// replies. Off: it does not.
    pub personalisation: bool,
    /// Monthly seasonality of inbound demand.
    pub seasonality: bool,
    /// Negotiations pulled into the quarter's end.
    pub quarter_end: bool,
    /// Customers won before the window, whose renewals and expansions fall
    /// inside it. Off: the org starts with no customers, and renewals begin
    /// ten months in.
    pub installed_base: bool,
    /// Reps take holidays (three blocks of one to two weeks a year, recorded
    /// in `out_of_office.csv` as a CRM calendar would): a lead owned by a
    /// rep who is away waits for their return, and is more often never
    /// answered. Off (the default): nobody is ever away.
    pub absences: bool,
    /// The region whose entered stages run ahead of the buyer from
    /// [`Config::entry_bias_from`] on: [`ENTRY_BIAS_SHARE`] of its stage
    /// entries are a stage later than the deal is, with a forecast
    /// category one step rosier (as under a new regional pipeline target),
    /// while what happens, and so every outcome, is
    /// unchanged. A biased record of one group, for testing that the
    /// fairness report finds it. `None` (the default): stages are entered
    /// as each rep's own bias has it.
    pub entry_bias: Option<String>,
    /// When the entry bias begins (midnight UTC; `None`: three quarters
    /// through the window): records before it are as each rep's own bias
    /// has them.
    #[serde(serialize_with = "ser_opt_date")]
    pub entry_bias_from: Option<i64>,
    /// A market shift from this day on (midnight UTC): budgets tighten, so
    /// deals created from then on are [`DRIFT_AMOUNT`] times the size and
    /// harder to win (their strength [`DRIFT_STRENGTH`] lower, which the
    /// hidden truth reflects). For testing that `pipewise monitor` sees the
    /// inputs and the accuracy move. `None` (the default): no shift.
    #[serde(serialize_with = "ser_opt_date")]
    pub drift_at: Option<i64>,
}

/// Deal size under the market shift, against before ([`Config::drift_at`]).
pub const DRIFT_AMOUNT: f64 = 0.5;
/// Deal strength lost under the market shift (on the win model's log-odds-like scale).
pub const DRIFT_STRENGTH: f64 = 0.6;

fn ser_opt_date<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&time::date(*t)),
        None => s.serialize_none(),
    }
}

/// Share of a biased region's stage entries made a stage ahead
/// ([`Config::entry_bias`]).
pub const ENTRY_BIAS_SHARE: f64 = 1.0;

fn ser_date<S: serde::Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time::date(*t))
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 42,
            reps: 40,
            months: 24,
            start: time::days_from_civil(2024, 1, 1) * DAY,
            reps_per_team: 8,
            accounts_per_rep: 50,
            leads_per_rep_month: 14.0,
            outbound_per_rep_week: 0.6,
            transcript_share: 0.35,
            vtt_sample: 25,
            bias: true,
            affinity: true,
            speed_effect: true,
            touch_effect: true,
            lead_fit: true,
            capacity: true,
            contact_timing: true,
            personalisation: true,
            seasonality: true,
            quarter_end: true,
            installed_base: true,
            absences: false,
            entry_bias: None,
            entry_bias_from: None,
            drift_at: None,
        }
    }
}

impl Config {
    /// Midnight after the last simulated day.
    pub fn end(&self) -> i64 {
        let (y, m, _) = time::civil_from_days(self.start / DAY);
        let total = i64::from(m - 1) + i64::from(self.months);
        time::days_from_civil(y + total / 12, (total % 12) as u32 + 1, 1) * DAY
    }

    /// The index in [`model::REGIONS`] of [`Config::entry_bias`], matched
    /// without regard to case.
    pub fn entry_bias_region(&self) -> Option<usize> {
        let name = self.entry_bias.as_deref()?;
        model::REGIONS
            .iter()
            .position(|(r, _)| r.eq_ignore_ascii_case(name.trim()))
    }

    /// When the entry bias begins: [`Config::entry_bias_from`], or two
    /// thirds through the window.
    pub fn entry_bias_start(&self) -> i64 {
        self.entry_bias_from
            .unwrap_or_else(|| self.start + (self.end() - self.start) * 2 / 3 / DAY * DAY)
    }

    pub fn validate(&self) -> Result<(), SimError> {
        if let Some(name) = &self.entry_bias
            && self.entry_bias_region().is_none()
        {
            let names: Vec<&str> = model::REGIONS.iter().map(|r| r.0).collect();
            return Err(SimError::Config(format!(
                "--entry-bias {name:?}: expected one of the simulated regions: {}",
                names.join(", ")
            )));
        }
        if self.reps == 0 {
            return Err(SimError::Config("--reps must be at least 1".into()));
        }
        if self.months == 0 || self.months > 240 {
            return Err(SimError::Config(
                "--months must be between 1 and 240".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.transcript_share) {
            return Err(SimError::Config(
                "the transcript share must be between 0 and 1".into(),
            ));
        }
        Ok(())
    }
}

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub out: PathBuf,
    pub rows: Vec<(String, u64)>,
    pub leads: u64,
    pub lead_conversion_rate: f64,
    pub leads_never_answered: f64,
    pub opportunities: u64,
    pub win_rate: Option<f64>,
    pub transcripts: u64,
    pub vtt_files: usize,
    pub activities: u64,
    /// The leads under the run's policies, when they started in the window.
    pub policy: Option<PolicySummary>,
    /// Focus meetings on deals and bookings from the policy start, when a
    /// focus policy ran.
    pub focus: Option<FocusSummary>,
}

/// How deals fared under a focus policy from its start.
#[derive(Debug, Clone, Serialize)]
pub struct FocusSummary {
    /// `none`, the reps' own priorities, or pipewise's list.
    pub policy: String,
    /// The policy start (YYYY-MM-DD).
    pub start: String,
    /// Focus meetings made; deal weeks pipewise recommended and those the
    /// reps followed.
    pub meetings: u64,
    pub recommended: u64,
    pub followed: u64,
    /// followed / recommended.
    pub adherence: Option<f64>,
    /// The true effect of following a recommendation: the mean expected
    /// gain in win probability over the recommended deal weeks (hidden
    /// truth).
    pub true_effect: Option<f64>,
    /// The true worth of following a recommendation: the mean, over the
    /// recommended deal weeks inside the window (those the recommendation
    /// log holds), of the expected gain in win probability of
    /// following it rather than not (a meeting of the rep's own that week
    /// otherwise netted out; hidden truth). What `pipewise adherence
    /// effect` estimates.
    pub true_effect_of_following: Option<f64>,
    /// The expected bookings the focus meetings added when made: each
    /// meeting's expected gain in win probability × the deal's amount then
    /// (hidden truth; over the deal's whole life, inside the window or not).
    pub true_value: f64,
    /// Deals won and their amount (bookings) closed from the start to the
    /// window's end.
    pub won: u64,
    pub bookings: f64,
    /// Deals won from the start whenever they close (the simulator follows
    /// each deal past the window's end), with their amount at the window's
    /// end: the whole effect of what was done after the start.
    pub won_eventually: u64,
    pub bookings_eventually: f64,
}

/// How the leads that arrived from the policy start on fared.
#[derive(Debug, Clone, Serialize)]
pub struct PolicySummary {
    pub routing: String,
    pub cadence: String,
    /// The policy start (YYYY-MM-DD).
    pub start: String,
    pub leads: u64,
    pub converted: u64,
    /// converted / leads (0 without leads).
    pub conversion_rate: f64,
    /// Share (0-1) of the leads never answered.
    pub never_answered: f64,
}

/// Runs the simulation into `out` (created if needed), with the org's own
/// lead handling throughout.
pub fn simulate(
    cfg: &Config,
    out: &Path,
    progress: &mut dyn FnMut(f64),
) -> Result<Summary, SimError> {
    simulate_with(cfg, policy::Policies::default(), out, progress)
}

/// Runs the simulation into `out` with `policies` routing and following up
/// the leads that arrive from their start on. Every lead, and every draw of
/// its path, is the same under any policy (common random numbers); the
/// ground truth marks the leads under the policy (`under_policy`).
pub fn simulate_with(
    cfg: &Config,
    policies: policy::Policies,
    out: &Path,
    progress: &mut dyn FnMut(f64),
) -> Result<Summary, SimError> {
    cfg.validate()?;
    let org = model::build(cfg);
    let mut w = output::Out::create(out)?;
    write_org(cfg, &org, &mut w)?;
    let started = policies.start < cfg.end();
    let focus_name = policies
        .focus
        .as_ref()
        .map_or_else(|| "none".to_string(), |f| f.name());
    let policy_head = started.then(|| {
        (
            policies.routing_name(),
            policies.cadence_name(),
            time::date(policies.start),
        )
    });
    if started && policies.focus.as_ref().is_some_and(|f| f.list.is_some()) {
        w.start_recommendations()?;
    }
    let sending = policies
        .messages
        .as_ref()
        .map_or_else(|| "even split".to_string(), |m| m.name().to_string());
    let mut sim = process::Sim::new(cfg, &org, w, policies);
    sim.run(progress)?;
    let adherence = std::mem::take(&mut sim.adherence);
    let message_truth = std::mem::take(&mut sim.message_truth);
    let tally = sim.tally;
    let out_w = sim.out;
    let vtt_files = out_w.vtt_written;
    let mut head = ground_truth_head(cfg, &org);
    if let Some((routing, cadence, start)) = &policy_head {
        head["policy"] = json!({"routing": routing, "cadence": cadence, "start": start});
    }
    if !adherence.is_empty() {
        head["focus"] = json!({
            "policy": focus_name,
            "gain": policy::FOCUS_GAIN,
            "stalled_days": policy::STALLED_DAYS,
            "held": policy::FOCUS_HELD,
            "adherence": org.reps.iter().zip(&adherence)
                .map(|(r, a)| json!({"rep_id": r.id, "adherence": a}))
                .collect::<Vec<_>>(),
        });
    }
    head["message_tests"] = message_truth
        .steps
        .iter()
        .map(|(&k, (sends, sums))| {
            let shares = process::message_variant_shares(cfg.seed, k);
            let value = |v: usize| sums[v] / (*sends).max(1) as f64;
            let best = (0..shares.len())
                .max_by(|&a, &b| value(a).total_cmp(&value(b)))
                .unwrap_or(0);
            let (chosen, by_variant) = message_truth
                .sent
                .get(&k)
                .copied()
                .unwrap_or((0.0, [0; 3]));
            let even = sums.iter().sum::<f64>() / sums.len() as f64;
            let most_sent = (0..by_variant.len())
                .max_by_key(|&v| (by_variant[v], std::cmp::Reverse(v)))
                .unwrap_or(0);
            json!({
                "sequence_id": "seq-inbound",
                "sequence_step": k + 1,
                "sends": sends,
                "best": format!("seq-inbound-{}-{}", k + 1, process::MESSAGE_VARIANTS[best]),
                // The sending policy's choices against always sending the
                // best variant, in utility summed over the sends (meeting
                // 1, positive reply 0.3, negative -0.5): its regret, and an
                // even split's on the same sends.
                "sending": sending,
                "sends_by_variant": by_variant,
                "most_sent": format!("seq-inbound-{}-{}", k + 1, process::MESSAGE_VARIANTS[most_sent]),
                "regret": process::round4(sums[best] - chosen),
                "regret_even_split": process::round4(sums[best] - even),
                "variants": shares.iter().enumerate().map(|(v, (m, n))| json!({
                    "template_id": format!("seq-inbound-{}-{}", k + 1, process::MESSAGE_VARIANTS[v]),
                    "meeting_share_of_converting_replies": process::round4(*m),
                    "negative_share_of_other_replies": process::round4(*n),
                    "value_per_send": (value(v) * 1e6).round() / 1e6,
                })).collect::<Vec<_>>(),
            })
        })
        .collect::<Vec<_>>()
        .into();
    let focus = policy_head.as_ref().map(|(_, _, start)| FocusSummary {
        policy: focus_name.clone(),
        start: start.clone(),
        meetings: tally.focus_meetings,
        recommended: tally.focus_recommended,
        followed: tally.focus_followed,
        adherence: (tally.focus_recommended > 0)
            .then(|| tally.focus_followed as f64 / tally.focus_recommended as f64),
        true_effect: (tally.focus_recommended > 0)
            .then(|| tally.focus_recommended_gain / tally.focus_recommended as f64),
        true_effect_of_following: (tally.focus_logged > 0)
            .then(|| tally.focus_following_gain / tally.focus_logged as f64),
        true_value: tally.focus_value,
        won: tally.won_after,
        bookings: tally.bookings_after,
        won_eventually: tally.won_eventual,
        bookings_eventually: tally.bookings_eventual,
    });
    let policy = policy_head.map(|(routing, cadence, start)| PolicySummary {
        routing,
        cadence,
        start,
        leads: tally.policy_leads,
        converted: tally.policy_converted,
        conversion_rate: if tally.policy_leads > 0 {
            tally.policy_converted as f64 / tally.policy_leads as f64
        } else {
            0.0
        },
        never_answered: if tally.policy_leads > 0 {
            tally.policy_never as f64 / tally.policy_leads as f64
        } else {
            0.0
        },
    });
    let rows = out_w.finish(&head)?;
    let closed = tally.won + tally.lost;
    Ok(Summary {
        out: out.to_path_buf(),
        rows,
        leads: tally.leads,
        lead_conversion_rate: if tally.leads > 0 {
            tally.leads_converted as f64 / tally.leads as f64
        } else {
            0.0
        },
        leads_never_answered: if tally.leads > 0 {
            tally.leads_never_answered as f64 / tally.leads as f64
        } else {
            0.0
        },
        opportunities: tally.opportunities,
        win_rate: (closed > 0).then(|| tally.won as f64 / closed as f64),
        transcripts: tally.conversations,
        vtt_files,
        activities: tally.activities,
        policy,
        focus,
    })
}

/// Everyone's working week: the simulator's business hours (leads arriving
/// outside them wait for the morning).
const HOURS: &str = "Mon-Fri 08:00-18:00";

fn write_org(cfg: &Config, org: &model::Org, w: &mut output::Out) -> Result<(), SimError> {
    for t in &org.teams {
        w.teams.row([t.id.as_str(), &t.name, REGIONS[t.region].0])?;
    }
    let before = time::date(cfg.start - 3000 * DAY);
    w.users.row([
        "u-vp",
        "Sales VP",
        "vp@pipewise-demo.example",
        "director",
        "",
        "",
        "",
        before.as_str(),
        "UTC",
        HOURS,
    ])?;
    for t in &org.teams {
        let email = format!(
            "{}@pipewise-demo.example",
            t.manager_name.to_lowercase().replace(' ', ".")
        );
        w.users.row([
            t.manager_id.as_str(),
            &t.manager_name,
            &email,
            "manager",
            &org.vp_id,
            &t.id,
            REGIONS[t.region].0,
            &before,
            "UTC",
            HOURS,
        ])?;
    }
    for r in &org.reps {
        let team = &org.teams[r.team];
        w.users.row([
            r.id.as_str(),
            &r.name,
            &r.email,
            "rep",
            &r.manager_id,
            &team.id,
            REGIONS[r.region].0,
            &time::date(r.hired),
            "UTC",
            HOURS,
        ])?;
    }
    if cfg.absences {
        let periods: Vec<(&str, i64, i64)> = org
            .reps
            .iter()
            .flat_map(|r| r.away.iter().map(|&(a, b)| (r.id.as_str(), a, b)))
            .collect();
        w.write_out_of_office(&periods)?;
    }
    for p in &PRODUCTS {
        w.products
            .row([p.id, p.name, p.family, &format!("{:.0}", p.list_price)])?;
    }
    let created = time::instant(cfg.start - 400 * DAY);
    for a in &org.accounts {
        w.accounts.row([
            a.id.as_str(),
            &a.name,
            a.industry,
            &a.employees.to_string(),
            &format!("{:.0}", a.revenue),
            &time::civil_from_days(a.founded).0.to_string(),
            a.country,
            &org.reps[a.owner].id,
            &created,
        ])?;
        for c in &a.contacts {
            let email = format!(
                "{}@{}.example",
                c.name.to_lowercase().replace(' ', "."),
                a.name.split(' ').next().unwrap_or("x").to_lowercase()
            );
            w.contacts.row([
                c.id.as_str(),
                &a.id,
                &c.name,
                &email,
                c.title,
                c.seniority,
                &created,
            ])?;
        }
    }
    // Campaigns: a webinar series, content and an event each quarter.
    let mut q = time::quarter_end(cfg.start - DAY) + DAY;
    while q < cfg.end() {
        let qe = time::quarter_end(q);
        for (kind, channel, cost) in [
            ("webinar", "webinar", 12_000.0),
            ("content", "content syndication", 8_000.0),
            ("event", "field event", 30_000.0),
        ] {
            let id = process::campaign_id(
                q,
                if kind == "content" {
                    "content_download"
                } else {
                    kind
                },
            );
            let (y, m, _) = time::civil_from_days(q / DAY);
            w.campaigns.row([
                id.as_str(),
                &format!("{y} Q{} {channel}", (m - 1) / 3 + 1),
                channel,
                &time::date(q),
                &time::date(qe),
                &format!("{cost:.0}"),
            ])?;
        }
        q = qe + DAY;
    }
    Ok(())
}

fn ground_truth_head(cfg: &Config, org: &model::Org) -> serde_json::Value {
    let reps: Vec<serde_json::Value> = org
        .reps
        .iter()
        .map(|r| {
            let skills: serde_json::Map<String, serde_json::Value> =
                SKILLS.iter().zip(r.skills).map(|(k, v)| (k.to_string(), json!(process::round4(v)))).collect();
            let affinity: serde_json::Map<String, serde_json::Value> =
                SEGMENTS.iter().zip(&r.affinity).map(|(s, v)| (s.id.to_string(), json!(process::round4(*v)))).collect();
            json!({"id": r.id, "name": r.name, "team_id": org.teams[r.team].id, "region": REGIONS[r.region].0,
                   "hire_date": time::date(r.hired), "skills": skills, "forecast_bias": r.bias,
                   "bias_strength": process::round4(r.bias_strength), "segment_affinity": affinity})
        })
        .collect();
    let segments: Vec<serde_json::Value> = SEGMENTS
        .iter()
        .map(|s| {
            let need: serde_json::Map<String, serde_json::Value> =
                PRODUCTS.iter().zip(s.product_need).map(|(p, v)| (p.id.to_string(), json!(v))).collect();
            json!({"id": s.id, "name": s.name, "industries": s.industries, "tech_maturity": s.tech_maturity,
                   "growth": s.growth, "base": s.base, "product_need": need})
        })
        .collect();
    let accounts: Vec<serde_json::Value> = org
        .accounts
        .iter()
        .map(|a| json!({"id": a.id, "segment": SEGMENTS[a.segment].id}))
        .collect();
    json!({
        "generator": "pipewise-sim",
        "format_version": 1,
        "config": cfg,
        "end": time::date(cfg.end()),
        "skills": SKILLS,
        "stages": process::STAGES,
        "segments": segments,
        "reps": reps,
        "accounts": accounts,
    })
}
