//! pipewise's lead policies: who owns each new inbound lead, and which
//! follow-up touches are made when.
//!
//! **Routing** ([`Router`]). A conversion model over (lead, rep) pairs,
//! learned from the leads that arrived before a date: the log-odds of a
//! lead converting is an org intercept plus offsets for the lead's source,
//! industry and size band, for its owner's team, for the owner within the
//! team, for the owner within the lead's industry (the rep-segment fit), and
//! a slope on the owner's queue of unanswered leads at the lead's arrival.
//! Every offset has a Gaussian prior around its parent (partial pooling: a
//! rep with few leads is shrunk towards their team, a rep-industry cell
//! towards the rep), fitted by maximum a posteriori backfitting. The
//! priors' widths for reps and cells are chosen on the latest fifth of the
//! training leads (time-ordered validation, log loss). A new lead goes to
//! the candidate with the highest predicted conversion at their current
//! queue, among those within capacity (at most [`RouterOptions::max_queue`]
//! unanswered leads and [`RouterOptions::max_share`] times the candidates'
//! mean count of leads) and the fairness band (each rep's count of
//! high-quality leads, the top third by the lead-only score, within
//! ±[`RouterOptions::fairness_band`] of the candidates' mean).
//!
//! **Cadence** ([`PipewiseCadence`]). Touches from a [`CadenceDef`] (TOML;
//! the default is 8 touches over three weeks), each on its day at the hour
//! the lead's industry answers that channel best, from the history of
//! connects and replies (a send-time model pooled from industry × channel ×
//! hour to channel × hour to channel), with 10% of touches at a random
//! business hour to keep learning; stopping on a reply; the first reply
//! names the product and pain point read from the inquiry
//! ([`inquiry_details`]).

use std::collections::HashMap;

use pipewise_sim::policy::{
    CadencePlan, CadencePolicy, Channel, LeadView, PlannedTouch, RepView, RoutingPolicy,
    business_day_at,
};
use pipewise_store::read::CrmData;
use serde::{Deserialize, Serialize};

const DAY: i64 = 86_400;

/// Leads younger than this at the training date are left out of training:
/// their outcome may not have happened yet (days).
pub const MATURE_DAYS: i64 = 35;
/// Training looks back this far from the training date (days).
pub const LOOKBACK_DAYS: i64 = 400;
/// A lead never answered counts as in its owner's queue for this long (days).
const QUEUE_DAYS: i64 = 2;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Options of the router.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// A rep with more unanswered leads than this gets no new one while a
    /// candidate with fewer exists (count).
    pub max_queue: u32,
    /// Each rep's count of high-quality leads stays within this share of
    /// the candidates' mean (0.5: between half and one and a half times,
    /// give or take one lead).
    pub fairness_band: f64,
    /// No rep gets more than this multiple of the candidates' mean count of
    /// leads (give or take one).
    pub max_share: f64,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            max_queue: 2,
            fairness_band: 0.5,
            max_share: 2.5,
        }
    }
}

/// One group of offsets with a shared Gaussian prior (mean 0, sd `tau`).
#[derive(Debug, Clone, Default)]
struct Block {
    tau: f64,
    offsets: HashMap<String, f64>,
}

impl Block {
    fn get(&self, key: &str) -> f64 {
        self.offsets.get(key).copied().unwrap_or(0.0)
    }
}

/// A training lead: its group keys per block, queue, outcome.
struct Row {
    keys: [String; BLOCKS],
    queue: f64,
    y: f64,
    created: i64,
}

const BLOCKS: usize = 6;
const SOURCE: usize = 0;
const INDUSTRY: usize = 1;
const SIZE: usize = 2;
const TEAM: usize = 3;
const REP: usize = 4;
const CELL: usize = 5;

/// The (lead, rep) conversion model.
#[derive(Debug, Clone)]
pub struct ConversionModel {
    intercept: f64,
    blocks: [Block; BLOCKS],
    /// Log-odds per unanswered lead in the owner's queue.
    queue_slope: f64,
    /// The lead-only log-odds above which a lead counts as high quality.
    high_quality: f64,
    /// Training leads and conversions.
    pub leads: usize,
    pub converted: usize,
    /// Validation log loss of the chosen priors against the lead-only model
    /// on the latest fifth of the training leads.
    pub validation: (f64, f64),
    /// The chosen prior sds (log-odds) of rep and rep-industry offsets.
    pub tau_rep: f64,
    pub tau_cell: f64,
}

fn size_band(employees: Option<f64>) -> &'static str {
    match employees {
        None => "unknown",
        Some(e) if e < 200.0 => "small",
        Some(e) if e < 2000.0 => "mid",
        Some(_) => "enterprise",
    }
}

impl ConversionModel {
    fn lead_logit(&self, source: &str, industry: &str, size: &str) -> f64 {
        self.intercept
            + self.blocks[SOURCE].get(source)
            + self.blocks[INDUSTRY].get(industry)
            + self.blocks[SIZE].get(size)
    }

    /// Log-odds that a lead with this source, industry and size converts
    /// with `rep` of `team` holding `queue` unanswered leads.
    fn logit(&self, lead: [&str; 3], team: &str, rep: &str, queue: f64) -> f64 {
        self.lead_logit(lead[0], lead[1], lead[2])
            + self.blocks[TEAM].get(team)
            + self.blocks[REP].get(rep)
            + self.blocks[CELL].get(&cell(rep, lead[1]))
            + self.queue_slope * queue
    }

    /// Fits on the leads that arrived at least [`MATURE_DAYS`] and at most
    /// [`LOOKBACK_DAYS`] before `as_of` (epoch seconds), with their outcome
    /// as known at `as_of`. Errors when fewer than 200 leads or 20
    /// conversions are there to learn from.
    pub fn fit(data: &CrmData, as_of: i64) -> anyhow::Result<ConversionModel> {
        let rows = training_rows(data, as_of);
        let converted = rows.iter().filter(|r| r.y > 0.5).count();
        if rows.len() < 200 || converted < 20 {
            anyhow::bail!(
                "cannot learn routing: {} leads with a known outcome and {} conversions before {} \
                 (needs 200 and 20)",
                rows.len(),
                converted,
                pipewise_core::value::format_instant(
                    chrono::DateTime::from_timestamp(as_of, 0).unwrap_or_default()
                )
            );
        }
        // Priors chosen on the latest fifth, by time.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| rows[i].created);
        let cut = rows.len() * 4 / 5;
        let (fit_rows, val_rows): (Vec<&Row>, Vec<&Row>) = (
            order[..cut].iter().map(|&i| &rows[i]).collect(),
            order[cut..].iter().map(|&i| &rows[i]).collect(),
        );
        let mut best = (f64::INFINITY, 0.0, 0.0);
        let lead_only = backfit(&fit_rows, 0.0, 0.0).log_loss(&val_rows);
        for tau_rep in [0.05, 0.15, 0.3, 0.5] {
            for tau_cell in [0.0, 0.15, 0.3, 0.5] {
                let loss = backfit(&fit_rows, tau_rep, tau_cell).log_loss(&val_rows);
                if loss < best.0 - 1e-9 {
                    best = (loss, tau_rep, tau_cell);
                }
            }
        }
        let all: Vec<&Row> = rows.iter().collect();
        let mut m = backfit(&all, best.1, best.2);
        let mut lead_scores: Vec<f64> = rows
            .iter()
            .map(|r| m.lead_logit(&r.keys[SOURCE], &r.keys[INDUSTRY], &r.keys[SIZE]))
            .collect();
        lead_scores.sort_by(f64::total_cmp);
        m.high_quality = lead_scores[lead_scores.len() * 2 / 3];
        m.leads = rows.len();
        m.converted = converted;
        m.validation = (best.0, lead_only);
        m.tau_rep = best.1;
        m.tau_cell = best.2;
        Ok(m)
    }

    fn log_loss(&self, rows: &[&Row]) -> f64 {
        let mut s = 0.0;
        for r in rows {
            let p = sigmoid(self.row_logit(r)).clamp(1e-6, 1.0 - 1e-6);
            s -= r.y * p.ln() + (1.0 - r.y) * (1.0 - p).ln();
        }
        s / rows.len().max(1) as f64
    }

    fn row_logit(&self, r: &Row) -> f64 {
        self.intercept
            + (0..BLOCKS)
                .map(|b| self.blocks[b].get(&r.keys[b]))
                .sum::<f64>()
            + self.queue_slope * r.queue
    }
}

fn cell(rep: &str, industry: &str) -> String {
    format!("{rep}\u{1f}{industry}")
}

/// The training leads with their keys, queue at arrival and outcome.
fn training_rows(data: &CrmData, as_of: i64) -> Vec<Row> {
    let accounts: HashMap<&str, &pipewise_store::read::Account> =
        data.accounts.iter().map(|a| (a.id.as_str(), a)).collect();
    let teams: HashMap<&str, &str> = data
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.team_id.as_deref().unwrap_or("")))
        .collect();
    // Each owner's leads as (arrived, answered or given up), known by as_of.
    let mut queues: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for l in &data.leads {
        if let Some(o) = l.owner_id.as_deref()
            && l.created_at < as_of
        {
            let until = l
                .first_response_at
                .filter(|&t| t <= as_of)
                .unwrap_or(l.created_at + QUEUE_DAYS * DAY);
            queues.entry(o).or_default().push((l.created_at, until));
        }
    }
    for q in queues.values_mut() {
        q.sort_unstable();
    }
    let mut rows = Vec::new();
    for l in &data.leads {
        let Some(owner) = l.owner_id.as_deref() else {
            continue;
        };
        if l.created_at > as_of - MATURE_DAYS * DAY || l.created_at < as_of - LOOKBACK_DAYS * DAY {
            continue;
        }
        let account = l.account_id.as_deref().and_then(|a| accounts.get(a));
        let industry = account
            .and_then(|a| a.industry.clone())
            .unwrap_or_else(|| "unknown".into());
        let size = size_band(account.and_then(|a| a.employees));
        let q = &queues[owner];
        let start =
            q.partition_point(|&(from, _)| from < l.created_at - QUEUE_DAYS * DAY - 30 * DAY);
        let queue = q[start..]
            .iter()
            .take_while(|&&(from, _)| from < l.created_at)
            .filter(|&&(_, until)| until > l.created_at)
            .count() as f64;
        rows.push(Row {
            keys: [
                l.source.clone().unwrap_or_default(),
                industry.clone(),
                size.to_string(),
                teams.get(owner).copied().unwrap_or("").to_string(),
                owner.to_string(),
                cell(owner, &industry),
            ],
            queue,
            y: f64::from(u8::from(l.converted_at.is_some_and(|t| t <= as_of))),
            created: l.created_at,
        });
    }
    rows
}

/// Maximum a posteriori fit by backfitting: each block's offsets by a
/// one-dimensional Newton step per group against the others held fixed.
fn backfit(rows: &[&Row], tau_rep: f64, tau_cell: f64) -> ConversionModel {
    let taus = [1.0, 1.0, 1.0, tau_rep, tau_rep, tau_cell];
    let mut m = ConversionModel {
        intercept: 0.0,
        blocks: std::array::from_fn(|b| Block {
            tau: taus[b],
            offsets: HashMap::new(),
        }),
        queue_slope: 0.0,
        high_quality: 0.0,
        leads: 0,
        converted: 0,
        validation: (0.0, 0.0),
        tau_rep,
        tau_cell,
    };
    let mean = rows.iter().map(|r| r.y).sum::<f64>() / rows.len().max(1) as f64;
    m.intercept = (mean.clamp(1e-3, 1.0 - 1e-3) / (1.0 - mean.clamp(1e-3, 1.0 - 1e-3))).ln();
    let mut eta: Vec<f64> = vec![m.intercept; rows.len()];
    for _ in 0..4 {
        for b in 0..BLOCKS {
            if m.blocks[b].tau <= 0.0 {
                continue;
            }
            // Gradient and curvature per group, with the block's own offset
            // taken out of eta.
            let mut acc: HashMap<&str, (f64, f64, f64)> = HashMap::new();
            for (r, e) in rows.iter().zip(&eta) {
                let old = m.blocks[b].get(&r.keys[b]);
                let p = sigmoid(*e);
                let a = acc.entry(r.keys[b].as_str()).or_insert((old, 0.0, 0.0));
                a.1 += r.y - p;
                a.2 += p * (1.0 - p);
            }
            let prec = 1.0 / (m.blocks[b].tau * m.blocks[b].tau);
            let mut new = HashMap::new();
            for (k, (old, g, h)) in acc {
                let step = (g - prec * old) / (h + prec);
                new.insert(k.to_string(), old + step.clamp(-1.0, 1.0));
            }
            for (r, e) in rows.iter().zip(eta.iter_mut()) {
                *e += new[r.keys[b].as_str()] - m.blocks[b].get(&r.keys[b]);
            }
            m.blocks[b].offsets = new;
        }
        // The queue slope (prior sd 0.5) and the intercept.
        let (mut g, mut h, mut g0, mut h0) = (0.0, 0.0, 0.0, 0.0);
        for (r, e) in rows.iter().zip(&eta) {
            let p = sigmoid(*e);
            g += (r.y - p) * r.queue;
            h += p * (1.0 - p) * r.queue * r.queue;
            g0 += r.y - p;
            h0 += p * (1.0 - p);
        }
        let step = ((g - 4.0 * m.queue_slope) / (h + 4.0)).clamp(-0.5, 0.5);
        m.queue_slope += step;
        let step0 = (g0 / h0.max(1e-9)).clamp(-1.0, 1.0);
        m.intercept += step0;
        for (r, e) in rows.iter().zip(eta.iter_mut()) {
            *e += step * r.queue + step0;
        }
    }
    m
}

/// A routing decision's candidate: predicted conversion and why it was or
/// was not chosen.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Index into the candidates passed in.
    pub index: usize,
    pub rep_id: String,
    /// Predicted conversion (0-1) with the rep at their current queue.
    pub probability: f64,
    pub unanswered: u32,
    /// Why the rep could not take the lead (over capacity, over their
    /// share of high-quality leads), if so.
    pub excluded: Option<String>,
}

/// Per candidate, why their availability rules them out, if it does: away
/// (out of office) while a colleague is not, or off duty for more than an
/// hour after the first colleague is at work.
pub fn absence(candidates: &[RepView]) -> Vec<Option<String>> {
    const HOUR: i64 = 3600;
    let any_back = candidates.iter().any(|c| c.away_until.is_none());
    let soonest = candidates
        .iter()
        .filter(|c| !any_back || c.away_until.is_none())
        .map(|c| c.at_work_in)
        .min()
        .unwrap_or(0);
    candidates
        .iter()
        .map(|c| {
            if any_back && let Some(back) = c.away_until {
                Some(format!("out of office until {}", when(back)))
            } else if c.at_work_in > soonest.saturating_add(HOUR) {
                Some(if c.at_work_in == i64::MAX {
                    "not at work in the next 60 days".to_string()
                } else if soonest == 0 {
                    format!(
                        "off duty for {:.1} h while a colleague is at work",
                        c.at_work_in as f64 / HOUR as f64
                    )
                } else {
                    format!(
                        "at work in {:.1} h, a colleague in {:.1} h",
                        c.at_work_in as f64 / HOUR as f64,
                        soonest as f64 / HOUR as f64
                    )
                })
            } else {
                None
            }
        })
        .collect()
}

/// Each candidate's weekly hours over the candidates' mean (1 when hours
/// are unknown).
fn hours_ratio(candidates: &[RepView]) -> Vec<f64> {
    let known: Vec<f64> = candidates
        .iter()
        .map(|c| c.weekly_hours)
        .filter(|h| *h > 0.0)
        .collect();
    let mean = known.iter().sum::<f64>() / known.len().max(1) as f64;
    candidates
        .iter()
        .map(|c| {
            if c.weekly_hours > 0.0 && mean > 0.0 {
                c.weekly_hours / mean
            } else {
                1.0
            }
        })
        .collect()
}

/// An instant as `YYYY-MM-DD HH:MM UTC`.
fn when(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// Routes each lead to the candidate most likely to convert it.
pub struct Router {
    pub model: ConversionModel,
    pub options: RouterOptions,
    /// Leads and high-quality leads routed so far per rep.
    assigned: HashMap<String, [u32; 2]>,
}

impl Router {
    pub fn new(model: ConversionModel, options: RouterOptions) -> Router {
        Router {
            model,
            options,
            assigned: HashMap::new(),
        }
    }

    /// Every candidate's predicted conversion for `lead`, best first, with
    /// the ones capacity or fairness excludes marked; the first not
    /// excluded is the choice.
    pub fn rank(&self, lead: &LeadView, candidates: &[RepView]) -> Vec<Candidate> {
        let size = size_band(Some(f64::from(lead.employees)));
        let keys = [lead.source, lead.industry, size];
        let hq = self.model.lead_logit(keys[0], keys[1], keys[2]) >= self.model.high_quality;
        let band = self.options.fairness_band;
        // Per candidate (leads, high-quality leads) routed so far, and for
        // each count whether taking this lead keeps the rep under the band's
        // top, and whether the rep is under its bottom.
        let counts: Vec<[u32; 2]> = candidates
            .iter()
            .map(|c| self.assigned.get(c.id).copied().unwrap_or([0, 0]))
            .collect();
        let kinds: &[usize] = if hq { &[0, 1] } else { &[0] };
        let hq = hq && band < 1.0;
        let n = candidates.len().max(1) as f64;
        let mean = |k: usize| (counts.iter().map(|c| c[k]).sum::<u32>() + 1) as f64 / n;
        let top = [self.options.max_share, 1.0 + band];
        // Volume shares scale with each rep's weekly hours.
        let hours = hours_ratio(candidates);
        let over = |i: usize| {
            kinds.iter().any(|&k| {
                let scale = if k == 0 { hours[i] } else { 1.0 };
                f64::from(counts[i][k] + 1) > top[k] * mean(k) * scale + 1.0
            })
        };
        let absent = absence(candidates);
        // Only a colleague who could take the lead can be short of leads.
        let under = |i: usize| {
            hq && absent[i].is_none() && f64::from(counts[i][1]) < (1.0 - band) * mean(1) - 1.0
        };
        let any_under = (0..candidates.len()).any(under);
        let min_queue = candidates
            .iter()
            .zip(&absent)
            .filter(|(_, a)| a.is_none())
            .map(|(c, _)| c.unanswered)
            .min()
            .unwrap_or(0);
        let mut out: Vec<Candidate> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let p = sigmoid(
                    self.model
                        .logit(keys, c.team_id, c.id, f64::from(c.unanswered)),
                );
                let excluded = if let Some(why) = &absent[i] {
                    Some(why.clone())
                } else if c.unanswered > self.options.max_queue.max(min_queue) {
                    Some(format!("{} unanswered leads", c.unanswered))
                } else if over(i) {
                    Some(format!(
                        "already holds {} leads, {} of them high quality",
                        counts[i][0], counts[i][1]
                    ))
                } else if any_under && !under(i) {
                    Some("a colleague is short of leads".into())
                } else {
                    None
                };
                Candidate {
                    index: i,
                    rep_id: c.id.to_string(),
                    probability: p,
                    unanswered: c.unanswered,
                    excluded,
                }
            })
            .collect();
        // Excluded by capacity or fairness before excluded by absence: when
        // every rule excludes everyone, the lead still goes to someone at
        // work.
        let rank =
            |c: &Candidate| u8::from(c.excluded.is_some()) + u8::from(absent[c.index].is_some());
        out.sort_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then(b.probability.total_cmp(&a.probability))
        });
        out
    }

    /// The fairness counts (leads and high-quality leads per rep), to put
    /// back with [`Router::restore`] after a what-if.
    pub fn snapshot(&self) -> HashMap<String, [u32; 2]> {
        self.assigned.clone()
    }

    /// Puts back fairness counts taken by [`Router::snapshot`].
    pub fn restore(&mut self, counts: HashMap<String, [u32; 2]>) {
        self.assigned = counts;
    }

    /// Counts `lead` as routed to `rep_id` in the fairness counts (as
    /// [`RoutingPolicy::route`] does for its choice); a live router seeds
    /// them with the leads of a recent window this way.
    pub fn record(&mut self, rep_id: &str, lead: &LeadView) {
        let hq = self.is_high_quality(lead);
        let c = self.assigned.entry(rep_id.to_string()).or_default();
        c[0] += 1;
        c[1] += u32::from(hq);
    }

    /// Whether the lead model (the lead's own terms) puts `lead` in the
    /// top third of the training leads, the high-quality leads fairness
    /// shares out.
    pub fn is_high_quality(&self, lead: &LeadView) -> bool {
        let size = size_band(Some(f64::from(lead.employees)));
        self.model.lead_logit(lead.source, lead.industry, size) >= self.model.high_quality
    }
}

impl RoutingPolicy for Router {
    fn route(&mut self, lead: &LeadView, candidates: &[RepView]) -> usize {
        let ranked = self.rank(lead, candidates);
        let k = ranked.first().map_or(0, |c| c.index);
        self.record(candidates[k].id, lead);
        k
    }

    /// Held leads go through [`Router::assign_batch`] as one chunk, over
    /// the union of their candidates.
    fn route_batch(&mut self, leads: &[LeadView], candidates: &[Vec<RepView>]) -> Vec<usize> {
        let mut reps: Vec<RepView> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let batch: Vec<BatchLead> = leads
            .iter()
            .zip(candidates)
            .map(|(l, cands)| BatchLead {
                view: l.clone(),
                candidates: cands
                    .iter()
                    .map(|c| {
                        *index.entry(c.id).or_insert_with(|| {
                            reps.push(c.clone());
                            reps.len() - 1
                        })
                    })
                    .collect(),
            })
            .collect();
        let (picks, _) = self.assign_batch(&batch, &mut reps, batch.len().max(1));
        picks
            .iter()
            .zip(candidates)
            .map(|(p, cands)| {
                p.and_then(|r| cands.iter().position(|c| c.id == reps[r].id))
                    .unwrap_or(0)
            })
            .collect()
    }

    fn name(&self) -> &str {
        "pipewise"
    }
}

/// A cadence: its steps and when it stops.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CadenceDef {
    pub name: String,
    /// Stop once the lead replies or a call connects (default true).
    #[serde(default = "yes")]
    pub stop_on_reply: bool,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

fn yes() -> bool {
    true
}

/// One touch of a cadence: the business day after the first reply it falls
/// on (0 is the first reply itself), and its channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub day: i64,
    pub channel: String,
    /// The message template's name (for the message tests).
    #[serde(default)]
    pub template: Option<String>,
}

/// The default cadence: 8 touches over three weeks.
pub const DEFAULT_CADENCE: &str = include_str!("default_cadence.toml");

impl CadenceDef {
    /// Parses a cadence from TOML; the error names the line and what was
    /// expected.
    pub fn parse(text: &str) -> anyhow::Result<CadenceDef> {
        let def: CadenceDef = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        if def.steps.is_empty() {
            anyhow::bail!("a cadence needs at least one [[step]]");
        }
        for (i, s) in def.steps.iter().enumerate() {
            if Channel::parse(&s.channel).is_none() {
                anyhow::bail!(
                    "step {}: channel {:?}: expected call, email or sms",
                    i + 1,
                    s.channel
                );
            }
            if i > 0 && s.day <= def.steps[i - 1].day {
                anyhow::bail!(
                    "step {}: day {} must come after the step before (day {})",
                    i + 1,
                    s.day,
                    def.steps[i - 1].day
                );
            }
        }
        if def.steps[0].day != 0 {
            anyhow::bail!("the first step is the first reply: its day must be 0");
        }
        Ok(def)
    }
}

/// Reply rates by industry, channel and hour, pooled towards channel × hour
/// and channel.
#[derive(Debug, Clone, Default)]
pub struct SendTimeModel {
    cells: HashMap<(String, usize, u32), (f64, f64)>,
    by_hour: HashMap<(usize, u32), (f64, f64)>,
    by_channel: HashMap<usize, (f64, f64)>,
    /// Lead touches learned from.
    pub touches: usize,
}

/// Pseudo-count of the pooling (touches).
const POOL: f64 = 20.0;
/// Business hours a touch may be sent at (UTC), first and last.
const HOURS: std::ops::RangeInclusive<u32> = 8..=17;

fn channel_index(c: Channel) -> usize {
    Channel::ALL.iter().position(|x| *x == c).unwrap_or(0)
}

impl SendTimeModel {
    /// Learns from the lead touches (calls, emails, SMS with a lead) before
    /// `as_of`: a reply is any outcome [`pipewise_core::is_reply`] counts
    /// (an email or SMS "replied", in any sense, or a call "connected").
    pub fn fit(data: &CrmData, as_of: i64) -> SendTimeModel {
        let accounts: HashMap<&str, &str> = data
            .accounts
            .iter()
            .map(|a| (a.id.as_str(), a.industry.as_deref().unwrap_or("unknown")))
            .collect();
        let leads: HashMap<&str, &str> = data
            .leads
            .iter()
            .map(|l| {
                (
                    l.id.as_str(),
                    l.account_id
                        .as_deref()
                        .and_then(|a| accounts.get(a).copied())
                        .unwrap_or("unknown"),
                )
            })
            .collect();
        let mut m = SendTimeModel::default();
        for a in &data.activities {
            if a.occurred_at >= as_of {
                break;
            }
            let (Some(lead), Some(ch)) = (a.lead_id.as_deref(), Channel::parse(&a.kind)) else {
                continue;
            };
            let industry = leads.get(lead).copied().unwrap_or("unknown");
            let hour = ((a.occurred_at.rem_euclid(DAY)) / 3600) as u32;
            let y = f64::from(u8::from(pipewise_core::is_reply(a.outcome.as_deref())));
            let c = channel_index(ch);
            for acc in [
                m.cells.entry((industry.to_string(), c, hour)).or_default(),
                m.by_hour.entry((c, hour)).or_default(),
                m.by_channel.entry(c).or_default(),
            ] {
                acc.0 += y;
                acc.1 += 1.0;
            }
            m.touches += 1;
        }
        m
    }

    /// The pooled reply rate of `channel` at `hour` for `industry`.
    pub fn rate(&self, industry: &str, channel: Channel, hour: u32) -> f64 {
        let c = channel_index(channel);
        let (s0, n0) = self.by_channel.get(&c).copied().unwrap_or((0.0, 0.0));
        let base = (s0 + 1.0) / (n0 + 10.0);
        let (s1, n1) = self.by_hour.get(&(c, hour)).copied().unwrap_or_default();
        let hourly = (s1 + POOL * base) / (n1 + POOL);
        let (s2, n2) = self
            .cells
            .get(&(industry.to_string(), c, hour))
            .copied()
            .unwrap_or_default();
        (s2 + POOL * hourly) / (n2 + POOL)
    }

    /// The business hour with the best pooled rate.
    pub fn best_hour(&self, industry: &str, channel: Channel) -> u32 {
        HOURS
            .max_by(|&a, &b| {
                self.rate(industry, channel, a)
                    .total_cmp(&self.rate(industry, channel, b))
            })
            .unwrap_or(10)
    }
}

/// The product and pain point an inquiry names, as read by
/// [`inquiry_details`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InquiryDetails {
    pub product: Option<String>,
    pub pain: Option<String>,
}

/// Reads the product (the longest catalogue name in the text, ignoring
/// case) and the pain point (the clause after "because", "problem:",
/// "issue:", "struggling with", "and" following a firmographic "we are ...
/// employees at ...", or else the first sentence of three words or more that
/// names no product and is no question, greeting, introduction or request)
/// from an inquiry. Patterns, not a language model: a pain put in other
/// words is missed, and the draft then says it found none.
pub fn inquiry_details(inquiry: &str, products: &[String]) -> InquiryDetails {
    let lower = inquiry.to_lowercase();
    let product = products
        .iter()
        .filter(|p| !p.is_empty() && lower.contains(&p.to_lowercase()))
        .max_by_key(|p| p.len())
        .cloned();
    let clause = |s: &str| {
        let end = s.find(['.', '?', '!', ';']).unwrap_or(s.len());
        let c = s[..end]
            .trim()
            .trim_matches(|c: char| c == ',' || c == '-')
            .trim();
        (!c.is_empty()).then(|| c.to_string())
    };
    let mut pain = None;
    for cue in [
        "because ",
        "main problem: ",
        "problem: ",
        "issue: ",
        "struggling with ",
    ] {
        if let Some(at) = lower.find(cue) {
            pain = clause(&inquiry[at + cue.len()..]);
            if pain.is_some() {
                break;
            }
        }
    }
    if pain.is_none()
        && let Some(at) = lower.find(" employees at ")
        && let Some(and) = lower[at..].find(" and ")
    {
        pain = clause(&inquiry[at + and + 5..]);
    }
    if pain.is_none() {
        // A statement of its own: no question, greeting, introduction,
        // request or product in it.
        const NOT_PAIN: [&str; 14] = [
            "hi",
            "hello",
            "dear",
            "i'm",
            "i am",
            "my name",
            "here (",
            "interested",
            "please",
            "requesting",
            "looking at",
            "looking for",
            "thanks",
            "regards",
        ];
        for sentence in inquiry.split_inclusive(['.', '?', '!']) {
            let s = sentence.trim();
            let l = s.to_lowercase();
            let names_product = product
                .as_ref()
                .is_some_and(|p| l.contains(&p.to_lowercase()));
            let words = l.split_whitespace().count();
            if !names_product
                && !s.ends_with('?')
                && words >= 3
                && !s.starts_with('-')
                && !NOT_PAIN
                    .iter()
                    .any(|w| l.starts_with(w) || l.contains(&format!(" {w}")))
            {
                pain = clause(s);
                break;
            }
        }
    }
    InquiryDetails { product, pain }
}

/// The pipewise cadence with its send-time model.
pub struct PipewiseCadence {
    pub def: CadenceDef,
    pub send_time: SendTimeModel,
    /// Share of touches at a random business hour (exploration).
    pub explore: f64,
    products: Vec<String>,
}

impl PipewiseCadence {
    pub fn new(def: CadenceDef, send_time: SendTimeModel, data: &CrmData) -> PipewiseCadence {
        PipewiseCadence {
            def,
            send_time,
            explore: 0.1,
            products: data.products.iter().map(|p| p.1.clone()).collect(),
        }
    }
}

/// A deterministic uniform in [0, 1) from a string and a number.
fn hash_unit(s: &str, k: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl CadencePolicy for PipewiseCadence {
    fn plan(
        &mut self,
        lead: &LeadView,
        _rep: &RepView,
        first_touch: i64,
        _first_channel: Channel,
    ) -> CadencePlan {
        let mut touches = Vec::new();
        let mut last = first_touch;
        for (k, step) in self.def.steps.iter().enumerate().skip(1) {
            let channel = Channel::parse(&step.channel).unwrap_or(Channel::Email);
            let hour = if hash_unit(lead.id, k as u64) < self.explore {
                let span = (HOURS.end() - HOURS.start() + 1) as f64;
                HOURS.start() + (hash_unit(lead.id, 1000 + k as u64) * span) as u32
            } else {
                self.send_time.best_hour(lead.industry, channel)
            };
            let mut at = business_day_at(first_touch, step.day, f64::from(hour));
            if at <= last {
                at = business_day_at(last, 1, f64::from(hour));
            }
            let first_hour = (first_touch.rem_euclid(DAY)) as f64 / 3600.0;
            let due = business_day_at(first_touch, step.day, first_hour);
            touches.push(PlannedTouch { at, channel, due });
            last = at;
        }
        let d = inquiry_details(lead.inquiry, &self.products);
        CadencePlan {
            touches,
            stop_on_reply: self.def.stop_on_reply,
            personal: d.product.zip(d.pain),
        }
    }

    fn name(&self) -> &str {
        "pipewise"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cadence_parses_and_bad_ones_say_why() {
        let def = CadenceDef::parse(DEFAULT_CADENCE).unwrap();
        assert_eq!(def.steps.len(), 8);
        assert!(def.stop_on_reply);
        let err = CadenceDef::parse("name = \"x\"\n[[step]]\nday = 0\nchannel = \"fax\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("fax") && err.contains("call, email or sms"),
            "{err}"
        );
        let err = CadenceDef::parse(
            "name = \"x\"\n[[step]]\nday = 0\nchannel = \"call\"\n[[step]]\nday = 0\nchannel = \"email\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("step 2"), "{err}");
        assert!(CadenceDef::parse("name = \"x\"\nstep = 3\n").is_err());
    }

    fn row(rep: &str, industry: &str, y: bool, queue: f64, t: i64) -> Row {
        Row {
            keys: [
                "web".into(),
                industry.into(),
                "mid".into(),
                "t1".into(),
                rep.into(),
                cell(rep, industry),
            ],
            queue,
            y: f64::from(u8::from(y)),
            created: t,
        }
    }

    /// 600 leads: rep "a" converts 30% of 300, rep "b" 10% of 294, and rep
    /// "c" all of its 6.
    fn rows() -> Vec<Row> {
        let mut rows = Vec::new();
        for i in 0..300 {
            rows.push(row("a", "software", i % 10 < 3, 0.0, i));
        }
        for i in 0..294 {
            rows.push(row("b", "software", i % 10 == 0, 0.0, i));
        }
        for i in 0..6 {
            rows.push(row("c", "software", true, 0.0, i));
        }
        rows
    }

    #[test]
    fn thin_reps_are_shrunk_towards_the_team() {
        let rows = rows();
        let refs: Vec<&Row> = rows.iter().collect();
        let m = backfit(&refs, 0.5, 0.0);
        let logit = |rep: &str| m.logit(["web", "software", "mid"], "t1", rep, 0.0);
        let (a, b, c) = (
            sigmoid(logit("a")),
            sigmoid(logit("b")),
            sigmoid(logit("c")),
        );
        assert!((a - 0.30).abs() < 0.04, "a {a:.3}");
        assert!((b - 0.10).abs() < 0.03, "b {b:.3}");
        // Six conversions out of six is not a 100% rep: pulled towards the
        // org, though above it.
        assert!(c < 0.6 && c > 0.2, "c {c:.3}");
        // Without rep offsets every rep is the org.
        let flat = backfit(&refs, 0.0, 0.0);
        let f = |rep: &str| flat.logit(["web", "software", "mid"], "t1", rep, 0.0);
        assert!((f("a") - f("b")).abs() < 1e-9);
    }

    #[test]
    fn routing_prefers_the_better_rep_within_capacity_and_fairness() {
        let rows = rows();
        let refs: Vec<&Row> = rows.iter().collect();
        let mut model = backfit(&refs, 0.5, 0.0);
        model.high_quality = f64::NEG_INFINITY; // every lead counts as high quality
        let mut router = Router::new(model, RouterOptions::default());
        let lead = LeadView {
            id: "l1",
            created: 0,
            source: "web",
            account_id: "x",
            industry: "software",
            employees: 500,
            region: "EMEA",
            title: "CFO",
            inquiry: "",
        };
        let rep = |id: &'static str, unanswered| RepView {
            id,
            team_id: "t1",
            region: "EMEA",
            unanswered,
            at_work_in: 0,
            away_until: None,
            weekly_hours: 40.0,
        };
        let reps = [rep("a", 0), rep("b", 0)];
        assert_eq!(router.route(&lead, &reps), 0, "the better rep first");
        // Over capacity: the other rep, and the reason is given.
        let busy = [rep("a", 5), rep("b", 0)];
        let ranked = router.rank(&lead, &busy);
        assert_eq!(ranked[0].rep_id, "b");
        assert_eq!(ranked[1].excluded.as_deref(), Some("5 unanswered leads"));
        // Away: the other rep, whatever their queue.
        let away = [
            RepView {
                away_until: Some(1_788_220_800),
                ..rep("a", 0)
            },
            rep("b", 2),
        ];
        let ranked = router.rank(&lead, &away);
        assert_eq!(ranked[0].rep_id, "b");
        assert_eq!(
            ranked[1].excluded.as_deref(),
            Some("out of office until 2026-09-01 00:00 UTC")
        );
        // Off duty (another time zone) while a colleague is at work.
        let night = [
            RepView {
                at_work_in: 7 * 3600,
                ..rep("a", 0)
            },
            rep("b", 0),
        ];
        let ranked = router.rank(&lead, &night);
        assert_eq!(ranked[0].rep_id, "b");
        assert!(
            ranked[1]
                .excluded
                .as_deref()
                .unwrap()
                .starts_with("off duty for 7.0 h")
        );
        // Nobody at work: whoever starts first (within the hour) is eligible.
        let both_off = [
            RepView {
                at_work_in: 3 * 3600,
                ..rep("a", 0)
            },
            RepView {
                at_work_in: 2 * 3600 + 1800,
                ..rep("b", 0)
            },
        ];
        assert!(
            router
                .rank(&lead, &both_off)
                .iter()
                .all(|c| c.excluded.is_none())
        );
        // Fairness: "a" cannot take every high-quality lead.
        let mut to_a = 0;
        for _ in 0..40 {
            to_a += usize::from(router.route(&lead, &reps) == 0);
        }
        assert!((20..=32).contains(&to_a), "a got {to_a} of 40");
    }

    /// Two industries: rep "a" converts software leads at 40% and banking
    /// at 20%; rep "b" 5% and 18%. Greedy one at a time gives "a" the first
    /// leads whatever their industry, until its share is full; the joint
    /// program gives "a" the software leads and "b" the banking ones.
    #[test]
    fn the_batch_program_assigns_jointly_within_the_shares() {
        let mut rows = Vec::new();
        for i in 0..400 {
            rows.push(row("a", "software", i % 10 < 4, 0.0, i));
            rows.push(row("a", "banking", i % 10 < 2, 0.0, i));
            rows.push(row("b", "software", i % 20 == 0, 0.0, i));
            rows.push(row("b", "banking", i % 50 < 9, 0.0, i));
        }
        let refs: Vec<&Row> = rows.iter().collect();
        let mut model = backfit(&refs, 0.5, 0.5);
        model.high_quality = f64::INFINITY; // no lead counts as high quality
        let options = RouterOptions {
            max_queue: 100,
            fairness_band: 0.5,
            max_share: 1.0,
        };
        let names: Vec<String> = (0..20).map(|i| format!("l{i}")).collect();
        let lead = |i: usize| LeadView {
            id: &names[i],
            created: 0,
            source: "web",
            account_id: "x",
            // Banking first: a greedy router spends "a" on them.
            industry: if i < 10 { "banking" } else { "software" },
            employees: 500,
            region: "EMEA",
            title: "CFO",
            inquiry: "",
        };
        let rep = |id: &'static str| RepView {
            at_work_in: 0,
            away_until: None,
            weekly_hours: 40.0,
            id,
            team_id: "t1",
            region: "EMEA",
            unanswered: 0,
        };
        let leads: Vec<BatchLead> = (0..20)
            .map(|i| BatchLead {
                view: lead(i),
                candidates: vec![0, 1],
            })
            .collect();
        let mut reps = vec![rep("a"), rep("b")];
        let mut batch = Router::new(model.clone(), options.clone());
        let (chosen, report) = batch.assign_batch(&leads, &mut reps, 2_000);
        assert_eq!((report.programs, report.fallback), (1, 0));
        // Shares: each rep at most 1.0 x 10 + 1 leads.
        let to_a = chosen.iter().filter(|c| **c == Some(0)).count();
        assert!((9..=11).contains(&to_a), "a got {to_a}");
        // Software to "a", banking to "b" (one either way for the +1).
        let software_to_a = (10..20).filter(|&i| chosen[i] == Some(0)).count();
        assert!(software_to_a >= 9, "{chosen:?}");
        // Against greedy on the same leads and queues.
        let greedy_total: f64 = {
            let mut g = Router::new(model.clone(), options.clone());
            let reps = [rep("a"), rep("b")];
            (0..20)
                .map(|i| {
                    let k = g.route(&lead(i), &reps);
                    g.probability(&lead(i), &reps[k])
                })
                .sum()
        };
        let reps0 = [rep("a"), rep("b")];
        let batch_total: f64 = (0..20)
            .map(|i| batch.probability(&lead(i), &reps0[chosen[i].unwrap()]))
            .sum();
        assert!(
            batch_total > greedy_total + 0.5,
            "batch {batch_total:.2}, greedy {greedy_total:.2}"
        );
    }

    #[test]
    fn inquiry_details_read_product_and_pain() {
        let products = vec!["Core Platform".to_string(), "Analytics Add-on".to_string()];
        let d = inquiry_details(
            "Hi, I'm Ana, CFO at Norda. We're looking at Analytics Add-on because our reporting takes days every month. Can someone walk us through pricing?",
            &products,
        );
        assert_eq!(d.product.as_deref(), Some("Analytics Add-on"));
        assert_eq!(
            d.pain.as_deref(),
            Some("our reporting takes days every month")
        );
        let d = inquiry_details(
            "Corpex Works here (IT Manager). Onboarding new staff is slow. Interested in Core Platform; what would it take to get started?",
            &products,
        );
        assert_eq!(d.product.as_deref(), Some("Core Platform"));
        assert_eq!(d.pain.as_deref(), Some("Onboarding new staff is slow"));
        let d = inquiry_details("Please call me back.", &products);
        assert_eq!(d, InquiryDetails::default());
    }
}

/// A lead of a batch with the reps (indices into the batch's reps) who
/// could own it.
#[derive(Debug, Clone)]
pub struct BatchLead<'a> {
    pub view: LeadView<'a>,
    pub candidates: Vec<usize>,
}

/// Reps a batch's program weighs per class of leads: the class's best this
/// many (a class's leads rarely need more; those left over are routed one
/// at a time).
pub const BATCH_CANDIDATES: usize = 16;

/// How a batch was assigned.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchReport {
    /// Linear programs solved (one per chunk of leads).
    pub programs: usize,
    /// Leads the programs assigned, and those left to one-at-a-time
    /// routing (no candidate with room in their chunk, or a program that
    /// failed).
    pub assigned: usize,
    pub fallback: usize,
    /// Why programs failed, if any did (their leads went one at a time).
    pub failed: Vec<String>,
    /// Sum of the chosen reps' predicted conversion (expected conversions).
    pub expected_conversions: f64,
}

impl Router {
    /// Predicted conversion (0-1) of `lead` with `rep` at their queue.
    pub fn probability(&self, lead: &LeadView, rep: &RepView) -> f64 {
        let size = size_band(Some(f64::from(lead.employees)));
        sigmoid(self.model.logit(
            [lead.source, lead.industry, size],
            rep.team_id,
            rep.id,
            f64::from(rep.unanswered),
        ))
    }

    /// Assigns `leads` jointly, in chunks of `chunk` leads in the order
    /// given, by a linear program per chunk (good_lp with the microlp
    /// simplex): maximise the sum of predicted conversions, each lead to one
    /// of its [`BATCH_CANDIDATES`] best candidates whose queue is at most
    /// `max_queue` above the least loaded candidate's, each rep at most `max_share` times their expected
    /// share of the chunk (the share they would get if each lead went to one
    /// of its candidates at random) plus one, and at most `1 +
    /// fairness_band` times their expected share of its high-quality leads
    /// plus one.
    ///
    /// The model sees a lead only through its source, industry and size
    /// band, so leads alike in those and in their candidates form a class,
    /// and the program's variables are how many of each class go to each
    /// rep: its size grows with the classes, not with the leads. The
    /// constraint matrix is a transportation problem's (classes to reps,
    /// with each rep's high-quality classes a nested subset), so vertex
    /// solutions are whole numbers. A class's leads then go, in the order
    /// given, to its reps best first. Probabilities use each rep's queue at
    /// the chunk's start; queues (`reps[i].unanswered`) and the fairness
    /// counts grow with each chunk's assignments. A lead the program leaves
    /// out (a slack that costs more than any conversion gains keeps it
    /// feasible) is routed one at a time as [`RoutingPolicy::route`] does.
    /// Returns each lead's rep (an index into `reps`; `None` when it has no
    /// candidate).
    pub fn assign_batch(
        &mut self,
        leads: &[BatchLead],
        reps: &mut [RepView],
        chunk: usize,
    ) -> (Vec<Option<usize>>, BatchReport) {
        use good_lp::{Expression, ProblemVariables, Solution, SolverModel, variable};
        let mut out: Vec<Option<usize>> = vec![None; leads.len()];
        let mut report = BatchReport::default();
        let chunk = chunk.max(1);
        for (c, part) in leads.chunks(chunk).enumerate() {
            let base = c * chunk;
            // Classes: (source, industry, size band, candidates) -> members.
            let mut class_of: HashMap<(&str, &str, &str, &[usize]), usize> = HashMap::new();
            let mut members: Vec<Vec<usize>> = Vec::new();
            for (k, l) in part.iter().enumerate() {
                let key = (
                    l.view.source,
                    l.view.industry,
                    size_band(Some(f64::from(l.view.employees))),
                    l.candidates.as_slice(),
                );
                let n = class_of.len();
                let id = *class_of.entry(key).or_insert(n);
                if id == members.len() {
                    members.push(Vec::new());
                }
                members[id].push(k);
            }
            // Per class: its eligible reps with their probability, best
            // first, and whether it is high quality.
            let mut options: Vec<Vec<(usize, f64)>> = Vec::with_capacity(members.len());
            let mut hq: Vec<bool> = Vec::with_capacity(members.len());
            let mut share = vec![[0.0f64; 2]; reps.len()];
            for m in &members {
                let l = &part[m[0]];
                let min_queue = l
                    .candidates
                    .iter()
                    .map(|&r| reps[r].unanswered)
                    .min()
                    .unwrap_or(0);
                // In a batch every queue grows: a rep stays a candidate
                // while no more than `max_queue` above the least loaded.
                let limit = min_queue + self.options.max_queue;
                let views: Vec<RepView> = l.candidates.iter().map(|&r| reps[r].clone()).collect();
                let absent = absence(&views);
                let hours = hours_ratio(&views);
                let mut o: Vec<(usize, f64)> = l
                    .candidates
                    .iter()
                    .zip(&absent)
                    .filter(|&(&r, a)| a.is_none() && reps[r].unanswered <= limit)
                    .map(|(&r, _)| (r, self.probability(&l.view, &reps[r])))
                    .collect();
                o.sort_by(|a, b| b.1.total_cmp(&a.1));
                let h = self.is_high_quality(&l.view);
                let n = l.candidates.len().max(1) as f64;
                for (&r, &scale) in l.candidates.iter().zip(&hours) {
                    share[r][0] += m.len() as f64 * scale / n;
                    if h {
                        share[r][1] += m.len() as f64 / n;
                    }
                }
                options.push(o);
                hq.push(h);
            }
            // Each rep's room in the chunk: (all, high quality).
            let mut room: Vec<[f64; 2]> = share
                .iter()
                .map(|s| {
                    [
                        (self.options.max_share * s[0]).floor() + 1.0,
                        ((1.0 + self.options.fairness_band) * s[1]).floor() + 1.0,
                    ]
                })
                .collect();
            // Per class: leads still to place, and how far down its
            // options the rounds have looked.
            let mut left: Vec<usize> = members.iter().map(Vec::len).collect();
            let mut next: Vec<usize> = vec![0; members.len()];
            let mut counts: Vec<Vec<(usize, usize)>> = vec![Vec::new(); members.len()];
            // Rounds: each program weighs every class's next best reps with
            // room; what a round cannot place, the next tries further down.
            for _round in 0..4 {
                let mut window: Vec<Vec<(usize, f64)>> = vec![Vec::new(); members.len()];
                for k in 0..members.len() {
                    if left[k] == 0 {
                        continue;
                    }
                    while next[k] < options[k].len() && window[k].len() < BATCH_CANDIDATES {
                        let (r, p) = options[k][next[k]];
                        next[k] += 1;
                        if room[r][0] >= 1.0 && (!hq[k] || room[r][1] >= 1.0) {
                            window[k].push((r, p));
                        }
                    }
                }
                if window.iter().all(Vec::is_empty) {
                    break;
                }
                let mut vars = ProblemVariables::new();
                let y: Vec<Vec<good_lp::Variable>> = window
                    .iter()
                    .zip(&left)
                    .map(|(o, &n)| {
                        o.iter()
                            .map(|_| vars.add(variable().min(0.0).max(n as f64)))
                            .collect()
                    })
                    .collect();
                let skip: Vec<Option<good_lp::Variable>> = window
                    .iter()
                    .zip(&left)
                    .map(|(o, &n)| {
                        (!o.is_empty()).then(|| vars.add(variable().min(0.0).max(n as f64)))
                    })
                    .collect();
                let mut objective =
                    Expression::with_capacity(y.iter().map(Vec::len).sum::<usize>());
                for (o, ys) in window.iter().zip(&y) {
                    for (&(_, p), &v) in o.iter().zip(ys) {
                        objective.add_mul(p, v);
                    }
                }
                for s in skip.iter().flatten() {
                    objective.add_mul(-1.0, *s);
                }
                let mut load: Vec<[Expression; 2]> = (0..reps.len())
                    .map(|_| [Expression::default(), Expression::default()])
                    .collect();
                let mut used = vec![[false; 2]; reps.len()];
                let mut problem = vars.maximise(objective).using(good_lp::microlp);
                for (k, (o, ys)) in window.iter().zip(&y).enumerate() {
                    let Some(sk) = skip[k] else { continue };
                    let mut all = Expression::with_capacity(ys.len() + 1);
                    for (&(r, _), &v) in o.iter().zip(ys) {
                        all.add_mul(1.0, v);
                        load[r][0].add_mul(1.0, v);
                        used[r][0] = true;
                        if hq[k] {
                            load[r][1].add_mul(1.0, v);
                            used[r][1] = true;
                        }
                    }
                    all.add_mul(1.0, sk);
                    problem.add_constraint(all.eq(left[k] as f64));
                }
                for (r, [all, high]) in load.into_iter().enumerate() {
                    if used[r][0] {
                        problem.add_constraint(all.leq(room[r][0]));
                    }
                    if used[r][1] {
                        problem.add_constraint(high.leq(room[r][1]));
                    }
                }
                report.programs += 1;
                let solved = match problem.solve() {
                    Ok(s) => s,
                    Err(e) => {
                        report.failed.push(e.to_string());
                        break;
                    }
                };
                let mut placed = 0;
                for k in 0..members.len() {
                    for ((r, _), v) in window[k].iter().zip(&y[k]) {
                        // Whole counts (a vertex; rounding only guards
                        // against the simplex's floating point).
                        let n = (solved.value(*v).round().max(0.0) as usize).min(left[k]);
                        if n > 0 {
                            counts[k].push((*r, n));
                            left[k] -= n;
                            room[*r][0] -= n as f64;
                            if hq[k] {
                                room[*r][1] -= n as f64;
                            }
                            placed += n;
                        }
                    }
                }
                if placed == 0 || left.iter().all(|&n| n == 0) {
                    break;
                }
            }
            for (k, m) in members.iter().enumerate() {
                // The class's leads in order, to its reps best first.
                counts[k].sort_by(|a, b| {
                    let p = |r: usize| options[k].iter().find(|o| o.0 == r).map_or(0.0, |o| o.1);
                    p(b.0).total_cmp(&p(a.0))
                });
                let counts = &mut counts[k];
                for &i in m {
                    let l = &part[i];
                    let chosen = match counts.iter_mut().find(|c| c.1 > 0) {
                        Some(c) => {
                            c.1 -= 1;
                            report.assigned += 1;
                            self.record(reps[c.0].id, &l.view);
                            Some(c.0)
                        }
                        None if l.candidates.is_empty() => None,
                        None => {
                            report.fallback += 1;
                            let views: Vec<RepView> =
                                l.candidates.iter().map(|&r| reps[r].clone()).collect();
                            let j = self.route(&l.view, &views);
                            Some(l.candidates[j])
                        }
                    };
                    if let Some(r) = chosen {
                        report.expected_conversions += self.probability(&l.view, &reps[r]);
                        out[base + i] = Some(r);
                    }
                }
            }
            // The chunk's assignments wait in their reps' queues.
            for r in out[base..base + part.len()].iter().flatten() {
                reps[*r].unanswered += 1;
            }
        }
        (out, report)
    }
}
