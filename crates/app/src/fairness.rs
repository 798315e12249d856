//! Fairness reports: a model's held-out scores, or the coaching
//! recommendations, by group of reps and of customers
//! ([`pipewise_engines::fairness`] does the arithmetic).
//!
//! Groups of reps are read for the deal's owner at the snapshot: `region`
//! (the user's, else their team's), `team`, `tenure` (band at the
//! snapshot), `new_hire` (under six months at the snapshot). Groups of
//! customers: `industry`, `size` (employee bands), `location`. Any column
//! of an attributes file (an HR export keyed by user id, email or name, or
//! an account list keyed by account id) is a group too; the file is read
//! for the report only, never stored.

use std::collections::HashMap;
use std::path::Path;

use pipewise_engines::fairness::{
    self, Audit, GapRow, RecommendationRate, RecordAudit, Row, Thresholds,
};
use pipewise_store::SqliteStore;
use pipewise_store::read::CrmData;
use serde::Serialize;

/// For the lead model, the share of held-out leads counted as selected
/// (the top fifth of the scores).
pub const LEAD_SELECTED_SHARE: f64 = 0.2;

/// The groups a report uses when none are asked for.
pub const DEFAULT_GROUPS: [&str; 5] = ["region", "team", "tenure", "industry", "size"];

/// The built-in groups: of reps, then of customers.
pub const REP_GROUPS: [&str; 4] = ["region", "team", "tenure", "new_hire"];
pub const CUSTOMER_GROUPS: [&str; 3] = ["industry", "size", "location"];

const DAY: i64 = 86_400;

/// Attributes from a user's file, keyed by rep or by account.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    /// `rep` or `account`: what the key column names.
    pub keyed_by: &'static str,
    pub columns: Vec<String>,
    /// Key (a user id or an account id, resolved) -> column -> value.
    values: HashMap<String, HashMap<String, String>>,
    /// Rows whose key matched no user or account.
    pub unmatched: Vec<String>,
}

impl Attributes {
    /// Reads a CSV whose first column is `user_id` (or `rep_id`), `name`
    /// (reps) or `account_id` (accounts), the others attributes. Errors name the
    /// file, the line and what was expected.
    pub fn read(path: &Path, crm: &CrmData) -> anyhow::Result<Attributes> {
        let file = path.display().to_string();
        let mut rd = csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(path)
            .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        let headers: Vec<String> = rd
            .headers()
            .map_err(|e| anyhow::anyhow!("{file}: line 1: {e}"))?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        let key = headers
            .first()
            .map(|h| h.to_ascii_lowercase())
            .unwrap_or_default();
        let keyed_by = match key.as_str() {
            "user_id" | "rep_id" | "name" => "rep",
            "account_id" => "account",
            _ => anyhow::bail!(
                "{file}: line 1, column 1: expected the key column user_id or name (reps) or account_id (accounts), found {:?}",
                headers.first().map(String::as_str).unwrap_or("")
            ),
        };
        anyhow::ensure!(
            headers.len() >= 2,
            "{file}: line 1: expected at least one attribute column after {key}"
        );
        for (i, h) in headers.iter().enumerate().skip(1) {
            anyhow::ensure!(
                !h.is_empty(),
                "{file}: line 1, column {}: an attribute column has no name",
                i + 1
            );
        }
        let resolve = |k: &str| -> Option<String> {
            let k = k.trim();
            match key.as_str() {
                "account_id" => crm
                    .accounts
                    .iter()
                    .find(|a| a.id == k)
                    .map(|a| a.id.clone()),
                "user_id" | "rep_id" => crm.users.iter().find(|u| u.id == k).map(|u| u.id.clone()),
                _ => crm
                    .users
                    .iter()
                    .find(|u| u.id == k || u.name.eq_ignore_ascii_case(k))
                    .map(|u| u.id.clone()),
            }
        };
        let mut values = HashMap::new();
        let mut unmatched = Vec::new();
        for (n, rec) in rd.records().enumerate() {
            let rec = rec.map_err(|e| anyhow::anyhow!("{file}: line {}: {e}", n + 2))?;
            let k = rec.get(0).unwrap_or("");
            let Some(id) = resolve(k) else {
                unmatched.push(k.to_string());
                continue;
            };
            let row: HashMap<String, String> = headers
                .iter()
                .skip(1)
                .zip(rec.iter().skip(1))
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(h, v)| (h.clone(), v.trim().to_string()))
                .collect();
            values.insert(id, row);
        }
        Ok(Attributes {
            keyed_by,
            columns: headers[1..].to_vec(),
            values,
            unmatched,
        })
    }

    fn get(&self, key: &str, column: &str) -> Option<String> {
        self.values.get(key)?.get(column).cloned()
    }
}

/// What a fairness report is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Win,
    Slip,
    Lead,
    Coaching,
}

impl Subject {
    pub fn parse(s: &str) -> Option<Subject> {
        Some(match s {
            "win" => Subject::Win,
            "slip" => Subject::Slip,
            "lead" => Subject::Lead,
            "coaching" => Subject::Coaching,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Subject::Win => "win",
            Subject::Slip => "slip",
            Subject::Lead => "lead",
            Subject::Coaching => "coaching",
        }
    }
}

/// The rate of each coaching recommendation by the groups of one attribute.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecommendationRates {
    pub attribute: String,
    pub rates: Vec<RecommendationRate>,
}

/// The fairness of one model, or of the coaching recommendations.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FairnessReport {
    /// `win`, `slip`, `lead` or `coaching`.
    pub model: String,
    /// The model version audited (`None` for coaching).
    pub version: Option<i64>,
    /// The held-out window its scores are from.
    pub test_from: Option<String>,
    pub test_to: Option<String>,
    /// Held-out rows read.
    pub rows: usize,
    pub thresholds: Thresholds,
    /// One per group attribute (models).
    pub audits: Vec<Audit>,
    /// The record by group (win and slip): how far each group's entered
    /// stages run from what the deals' evidence supports, over the last
    /// [`RECORD_WEEKS`] weeks of the data (the evidence-stage engine). A
    /// flag here says a group's records run ahead of or behind its deals,
    /// whatever the model makes of them. Empty when the engine's data gate
    /// is not met (see `notes`).
    pub record: Vec<RecordAudit>,
    /// The rate of each recommendation by group (coaching), per attribute.
    pub recommendation_rates: Vec<RecommendationRates>,
    /// Whether anything is flagged.
    pub flagged: bool,
    /// Notes on what could not be judged (an attribute no row has, keys
    /// of the attributes file that matched nothing).
    pub notes: Vec<String>,
}

/// The `new_hire` group at `t` of a rep hired at `hired`.
pub fn new_hire_group(hired: Option<i64>, t: i64) -> Option<String> {
    hired.map(|h| {
        if t - h < 180 * DAY {
            "new hire (under 6 months)".to_string()
        } else {
            "6 months or more".to_string()
        }
    })
}

/// The tenure band at `t` of a rep hired at `hired`.
pub fn tenure_band(hired: Option<i64>, t: i64) -> Option<String> {
    let days = (t - hired?) / DAY;
    Some(
        match days {
            ..180 => "under 6 months",
            180..365 => "6-12 months",
            365..1095 => "1-3 years",
            _ => "3 years or more",
        }
        .to_string(),
    )
}

/// The size band of an account of `employees`.
pub fn size_band(employees: Option<f64>) -> Option<String> {
    let e = employees.filter(|e| e.is_finite() && *e > 0.0)?;
    Some(
        if e < 200.0 {
            "1-199 employees"
        } else if e < 1000.0 {
            "200-999 employees"
        } else if e < 5000.0 {
            "1,000-4,999 employees"
        } else {
            "5,000+ employees"
        }
        .to_string(),
    )
}

struct Lookup<'a> {
    crm: &'a CrmData,
    users: HashMap<&'a str, usize>,
    teams: HashMap<&'a str, usize>,
    accounts: HashMap<&'a str, usize>,
    attributes: Option<&'a Attributes>,
}

impl<'a> Lookup<'a> {
    fn new(crm: &'a CrmData, attributes: Option<&'a Attributes>) -> Self {
        Lookup {
            crm,
            users: crm
                .users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.id.as_str(), i))
                .collect(),
            teams: crm
                .teams
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.as_str(), i))
                .collect(),
            accounts: crm
                .accounts
                .iter()
                .enumerate()
                .map(|(i, a)| (a.id.as_str(), i))
                .collect(),
            attributes,
        }
    }

    /// The value of `attribute` for a rep at `t`.
    fn rep(&self, attribute: &str, rep: &str, t: i64) -> Option<String> {
        let u = &self.crm.users[*self.users.get(rep)?];
        let team = u
            .team_id
            .as_deref()
            .and_then(|t| self.teams.get(t))
            .map(|&i| &self.crm.teams[i]);
        match attribute {
            "region" => u.region.clone().or_else(|| team?.region.clone()),
            "team" => team.map(|t| t.name.clone()),
            "tenure" => tenure_band(u.hire_date, t),
            "new_hire" => new_hire_group(u.hire_date, t),
            _ => {
                let a = self.attributes.filter(|a| a.keyed_by == "rep")?;
                a.get(&u.id, attribute)
            }
        }
    }

    fn account(&self, attribute: &str, account: &str) -> Option<String> {
        let a = &self.crm.accounts[*self.accounts.get(account)?];
        match attribute {
            "industry" => a.industry.clone(),
            "size" => size_band(a.employees),
            "location" => a.location.clone(),
            _ => {
                let at = self.attributes.filter(|x| x.keyed_by == "account")?;
                at.get(&a.id, attribute)
            }
        }
    }

    fn is_rep_attribute(&self, attribute: &str) -> bool {
        REP_GROUPS.contains(&attribute)
            || self
                .attributes
                .is_some_and(|a| a.keyed_by == "rep" && a.columns.iter().any(|c| c == attribute))
    }

    fn is_account_attribute(&self, attribute: &str) -> bool {
        CUSTOMER_GROUPS.contains(&attribute)
            || self.attributes.is_some_and(|a| {
                a.keyed_by == "account" && a.columns.iter().any(|c| c == attribute)
            })
    }
}

/// Checks that every asked-for group is one this report can form.
fn check_groups(groups: &[String], look: &Lookup<'_>) -> anyhow::Result<()> {
    for g in groups {
        if !look.is_rep_attribute(g) && !look.is_account_attribute(g) {
            let extra = look
                .attributes
                .map(|a| {
                    format!(
                        ", or a column of the attributes file ({})",
                        a.columns.join(", ")
                    )
                })
                .unwrap_or_else(|| ", or a column of a file given with --attributes".into());
            anyhow::bail!(
                "--group {g:?}: expected one of {} (reps), {} (customers){extra}",
                REP_GROUPS.join(", "),
                CUSTOMER_GROUPS.join(", ")
            );
        }
    }
    Ok(())
}

/// The fairness of the active (or given) version of a win, slip or lead
/// model, from its held-out scores, by each of `groups`.
///
/// Errors: no such model; a model registered before held-out scores were
/// kept (train it again); an unknown group.
pub fn model_fairness(
    store: &SqliteStore,
    crm: &CrmData,
    subject: Subject,
    version: Option<i64>,
    groups: &[String],
    attributes: Option<&Attributes>,
) -> anyhow::Result<FairnessReport> {
    let look = Lookup::new(crm, attributes);
    check_groups(groups, &look)?;
    let kind = subject.name();
    let rec = store.model(kind, version)?.ok_or_else(|| {
        anyhow::anyhow!(match version {
            Some(v) => format!("no {kind} model version {v}: see pipewise models"),
            None if kind == "lead" => {
                "no active lead model: `pipewise score leads` fits and registers one".to_string()
            }
            None => format!("no active {kind} model: train one first (pipewise train)"),
        })
    })?;
    let holdout = store.model_holdout(rec.id)?;
    anyhow::ensure!(
        !holdout.is_empty(),
        "the {kind} model version {} has no held-out scores kept (it was registered before they were, or has no test window): train it again (pipewise train) to audit it",
        rec.version
    );
    let h = audit_holdout(crm, subject, &holdout, groups, attributes)?;
    Ok(FairnessReport {
        model: kind.to_string(),
        version: Some(rec.version),
        test_from: rec.test_from.clone(),
        test_to: rec.test_to.clone(),
        rows: holdout.len(),
        thresholds: h.thresholds,
        flagged: h.audits.iter().any(|a| a.flagged),
        audits: h.audits,
        record: Vec::new(),
        recommendation_rates: Vec::new(),
        notes: h.notes,
    })
}

/// The thresholds a subject is judged by (a predicted slip is the adverse
/// prediction).
pub fn thresholds(subject: Subject) -> Thresholds {
    Thresholds {
        positive_is_favourable: subject != Subject::Slip,
        ..Thresholds::default()
    }
}

/// Audits held-out scores (of a model being registered, or registered) by
/// each of `groups`; also the notes on what could not be judged.
pub fn audit_holdout(
    crm: &CrmData,
    subject: Subject,
    holdout: &[pipewise_store::HoldoutRow],
    groups: &[String],
    attributes: Option<&Attributes>,
) -> anyhow::Result<HoldoutAudits> {
    let look = Lookup::new(crm, attributes);
    check_groups(groups, &look)?;
    let mut th = thresholds(subject);
    if subject == Subject::Lead {
        // Leads convert rarely (one in seven here and there): a score of
        // 0.5 selects almost none. Selected is the top fifth of the scores,
        // the leads a queue puts first.
        let mut p: Vec<f64> = holdout.iter().map(|h| h.probability).collect();
        p.sort_by(f64::total_cmp);
        if let Some(&q) = p.get((p.len() as f64 * (1.0 - LEAD_SELECTED_SHARE)) as usize) {
            th.decision = q;
        }
    }
    // The deal's owner at the snapshot and its account (leads: the lead's
    // owner and account as recorded).
    let data = (subject != Subject::Lead).then(|| pipewise_features::Data::new(crm));
    let opp_index: HashMap<&str, usize> = data
        .as_ref()
        .map(|d| {
            d.opps
                .iter()
                .enumerate()
                .map(|(i, o)| (o.id.as_str(), i))
                .collect()
        })
        .unwrap_or_default();
    let leads: HashMap<&str, &pipewise_store::read::Lead> =
        crm.leads.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut clusters: HashMap<&str, u64> = HashMap::new();
    let who = |entity: &str, t: i64| -> (Option<String>, Option<String>) {
        match &data {
            Some(d) => match opp_index.get(entity) {
                Some(&i) => {
                    let o = &d.opps[i];
                    let owner = o.owner.at(t).map(String::from);
                    let account = crm
                        .opportunities
                        .binary_search_by(|x| x.id.as_str().cmp(entity))
                        .ok()
                        .and_then(|k| crm.opportunities[k].account_id.clone());
                    (owner, account)
                }
                None => (None, None),
            },
            None => match leads.get(entity) {
                Some(l) => (l.owner_id.clone(), l.account_id.clone()),
                None => (None, None),
            },
        }
    };
    let mut who_cache: Vec<(Option<String>, Option<String>, i64)> =
        Vec::with_capacity(holdout.len());
    for h in holdout {
        let t = crate::day_start(&h.as_of).unwrap_or(i64::MIN);
        let (owner, account) = who(&h.entity_id, t);
        who_cache.push((owner, account, t));
        let n = clusters.len() as u64;
        clusters.entry(h.entity_id.as_str()).or_insert(n);
    }
    let mut audits = Vec::new();
    let mut notes = Vec::new();
    let mut ids: HashMap<String, u64> = HashMap::new();
    let base = clusters.len() as u64;
    let mut intern = |k: &str| -> u64 {
        let n = base + ids.len() as u64;
        *ids.entry(k.to_string()).or_insert(n)
    };
    for g in groups {
        let rows: Vec<Row> = holdout
            .iter()
            .zip(&who_cache)
            .map(|(h, (owner, account, t))| Row {
                group: if look.is_rep_attribute(g) {
                    owner.as_deref().and_then(|o| look.rep(g, o, *t))
                } else {
                    account.as_deref().and_then(|a| look.account(g, a))
                },
                p: h.probability,
                y: h.outcome,
                // Rows of one rep (or one account) are not independent:
                // reps differ, and so do accounts. The standard errors
                // are clustered on what the attribute describes.
                cluster: if look.is_rep_attribute(g) {
                    owner.as_deref().map(&mut intern)
                } else {
                    account.as_deref().map(&mut intern)
                }
                .unwrap_or_else(|| clusters[h.entity_id.as_str()]),
            })
            .collect();
        let audit = fairness::audit(g, &rows, &th);
        if audit.groups.is_empty() {
            notes.push(format!(
                "{g}: no held-out row has a value, so it cannot be judged"
            ));
        }
        audits.push(audit);
    }
    if let Some(a) = attributes
        && !a.unmatched.is_empty()
    {
        notes.push(format!(
            "{} key(s) of the attributes file matched no {}: {}",
            a.unmatched.len(),
            if a.keyed_by == "rep" {
                "user"
            } else {
                "account"
            },
            a.unmatched
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(HoldoutAudits {
        audits,
        notes,
        thresholds: th,
    })
}

/// A model's held-out scores audited by group.
#[derive(Debug, Clone)]
pub struct HoldoutAudits {
    /// The model's scores, per attribute.
    pub audits: Vec<Audit>,
    pub notes: Vec<String>,
    /// The thresholds used (for leads, the decision threshold is the score
    /// of the top [`LEAD_SELECTED_SHARE`]).
    pub thresholds: Thresholds,
}

/// Fairness by group as a model card's section (Markdown): per attribute, a
/// table of the judged groups and the disparities found.
pub fn card_section(audits: &[Audit]) -> String {
    let mut s = String::from(
        "\nComputed when the model was trained; `pipewise fairness` gives the figures under the current rules, and the record by group.\n",
    );
    let empty = s.len();
    for a in audits {
        let judged: Vec<_> = a.groups.iter().filter(|g| g.judged).collect();
        if judged.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "\n*By {}* (demographic parity difference {}, equalized-odds difference {}):\n\n| group | rows | outcome | predicted | selected | impact ratio | TPR | FPR | calibration gap vs other groups |\n|---|---|---|---|---|---|---|---|---|\n",
            a.attribute,
            a.demographic_parity_difference.map_or("-".into(), |v| format!("{v:.3}")),
            a.equalized_odds_difference.map_or("-".into(), |v| format!("{v:.3}")),
        ));
        let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
        for g in &judged {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                g.group,
                g.rows,
                pct(Some(g.outcome_rate)),
                pct(Some(g.mean_predicted)),
                pct(Some(g.selection_rate)),
                g.impact_ratio.map_or("-".into(), |x| format!("{x:.2}")),
                pct(g.true_positive_rate),
                pct(g.false_positive_rate),
                g.relative_gap
                    .map_or("-".into(), |x| format!("{:+.1} points", 100.0 * x))
            ));
        }
        let too_few = a.groups.len() - judged.len();
        if too_few > 0 {
            s.push_str(&format!("\n{too_few} group(s) too small to judge.\n"));
        }
        let flags: Vec<&str> = a
            .disparities
            .iter()
            .filter(|d| d.flagged)
            .map(|d| d.message.as_str())
            .collect();
        if flags.is_empty() {
            s.push_str("\nNo flag.\n");
        } else {
            for f in flags {
                s.push_str(&format!("\n**Flag.** {f}.\n"));
            }
        }
    }
    if s.len() == empty {
        s.clear();
    }
    s
}

/// Weeks of the latest data the record audit reads.
pub const RECORD_WEEKS: i64 = 26;

/// The record by group: each open deal's entered stage against the stage
/// its evidence supports (the evidence-stage engine, cross-fitted by deal),
/// over the weekly snapshots of the last [`RECORD_WEEKS`] weeks, by each of
/// `groups`. `Err` with the reason when the engine cannot judge (no stage
/// history, too little activity data).
pub fn record_fairness(
    crm: &CrmData,
    groups: &[String],
    attributes: Option<&Attributes>,
    progress: &dyn crate::Progress,
) -> anyhow::Result<Vec<RecordAudit>> {
    check_groups(groups, &Lookup::new(crm, attributes))?;
    let data = crate::load_data(crm)?;
    if let Some(why) =
        pipewise_engines::stage::data_gate(&data).refusal("how each group enters its stages")
    {
        anyhow::bail!(why);
    }
    let run = crate::stage::run_stage(data, progress)?;
    record_audits(crm, &run, groups, attributes)
}

/// [`record_fairness`] over an evidence-stage run already made (the
/// server's analysis). Errors: an unknown group.
pub fn record_audits(
    crm: &CrmData,
    run: &crate::stage::StageRun,
    groups: &[String],
    attributes: Option<&Attributes>,
) -> anyhow::Result<Vec<RecordAudit>> {
    let look = Lookup::new(crm, attributes);
    check_groups(groups, &look)?;
    let since = run.data.end - RECORD_WEEKS * 7 * DAY;
    let th = Thresholds::default();
    let mut out = Vec::new();
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut intern = |k: &str| -> u64 {
        let n = ids.len() as u64;
        *ids.entry(k.to_string()).or_insert(n)
    };
    for g in groups {
        let rows: Vec<GapRow> = (0..run.snap.opp.len())
            .filter(|&r| run.snap.date[r] >= since)
            .filter_map(|r| {
                let e = run.cf.entered[r]?;
                let d = &run.cf.dist[r];
                let o = &run.data.opps[run.snap.opp[r]];
                let group = if look.is_rep_attribute(g) {
                    let rep = run.cf.rep[r].as_str();
                    (!rep.is_empty())
                        .then(|| look.rep(g, rep, run.snap.date[r]))
                        .flatten()
                } else {
                    o.account
                        .and_then(|a| crm.accounts.get(a as usize))
                        .and_then(|a| look.account(g, &a.id))
                };
                let flag = pipewise_engines::stage::flag(d, e, &run.opts);
                Some(GapRow {
                    group,
                    gap: e as f64 - pipewise_engines::stage::expected(d),
                    ahead: flag == pipewise_engines::stage::Flag::AheadOfEvidence,
                    behind: flag == pipewise_engines::stage::Flag::BehindEvidence,
                    // Clustered on the rep (or the account) the
                    // attribute describes.
                    cluster: if look.is_rep_attribute(g) {
                        intern(&run.cf.rep[r])
                    } else {
                        o.account
                            .map_or(u64::MAX - run.snap.opp[r] as u64, u64::from)
                    },
                })
            })
            .collect();
        out.push(fairness::record_audit(g, &rows, &th));
    }
    Ok(out)
}

/// The rate of each coaching recommendation (each priority skill) by group
/// of reps, from every rep's plan. Customer groups do not apply.
pub fn coaching_fairness(
    plans: &[pipewise_engines::coach_plan::Plan],
    crm: &CrmData,
    as_of: i64,
    groups: &[String],
    attributes: Option<&Attributes>,
) -> anyhow::Result<FairnessReport> {
    let look = Lookup::new(crm, attributes);
    check_groups(groups, &look)?;
    let mut rates = Vec::new();
    let mut notes = Vec::new();
    for g in groups {
        if !look.is_rep_attribute(g) {
            notes.push(format!(
                "{g}: a customer attribute; coaching is judged by groups of reps"
            ));
            continue;
        }
        let reps: Vec<(Option<String>, Vec<String>)> = plans
            .iter()
            .map(|p| {
                (
                    look.rep(g, &p.rep_id, as_of),
                    p.priorities
                        .iter()
                        .map(|x| x.skill.name().to_string())
                        .collect(),
                )
            })
            .collect();
        rates.push(RecommendationRates {
            attribute: g.clone(),
            rates: fairness::recommendation_rates(&reps),
        });
    }
    Ok(FairnessReport {
        model: "coaching".into(),
        version: None,
        test_from: None,
        test_to: None,
        rows: plans.len(),
        thresholds: Thresholds::default(),
        audits: Vec::new(),
        record: Vec::new(),
        flagged: rates.iter().any(|r| r.rates.iter().any(|x| x.flagged)),
        recommendation_rates: rates,
        notes,
    })
}

/// The groups of a report: `asked`, else [`DEFAULT_GROUPS`] (rep groups
/// only for coaching) and every column of the attributes file.
pub fn groups_or_default(
    asked: &[String],
    subject: Subject,
    attributes: Option<&Attributes>,
) -> Vec<String> {
    if !asked.is_empty() {
        return asked.to_vec();
    }
    let mut groups: Vec<String> = DEFAULT_GROUPS.iter().map(|s| s.to_string()).collect();
    if subject == Subject::Coaching {
        groups.retain(|g| REP_GROUPS.contains(&g.as_str()));
    }
    if let Some(at) = attributes {
        groups.extend(at.columns.iter().cloned());
    }
    groups
}

/// The whole fairness report of `subject` by `groups` (empty: the
/// defaults, [`groups_or_default`]): for a model, its held-out scores
/// ([`model_fairness`]) and, for win and slip, the record by group
/// ([`record_fairness`]; when the evidence-stage engine cannot judge, a
/// note says why); for coaching, the rate of each recommendation
/// ([`coaching_fairness`]) over every rep's plan from a fresh coaching run.
///
/// Errors: as the parts'.
pub fn report(
    store: &SqliteStore,
    crm: CrmData,
    subject: Subject,
    version: Option<i64>,
    groups: &[String],
    attributes: Option<&Attributes>,
    progress: &dyn crate::Progress,
) -> anyhow::Result<FairnessReport> {
    let groups = groups_or_default(groups, subject, attributes);
    if subject == Subject::Coaching {
        use pipewise_engines::coach::CoachOptions;
        use pipewise_engines::coach_plan::Catalogue;
        let crm = std::sync::Arc::new(crm);
        let opts = CoachOptions::default();
        let models = crate::coaching::active_models(store)?;
        let run = crate::coaching::run_coach(
            crm.clone(),
            models.as_ref().map(|(w, s)| (w, s)),
            &opts,
            &pipewise_features::conversation::Trackers::default_set(),
        )?;
        let all: Vec<usize> = (0..run.profiles.reps.len()).collect();
        let plans = crate::coaching::plans_for(
            &run,
            &all,
            &Catalogue::default_set(),
            &opts,
            &Default::default(),
        );
        return coaching_fairness(&plans, &crm, run.profiles.as_of, &groups, attributes);
    }
    let mut r = model_fairness(store, &crm, subject, version, &groups, attributes)?;
    if subject != Subject::Lead {
        // The record beside the model: each group's entered stages
        // against the evidence (the evidence-stage engine).
        match record_fairness(&crm, &groups, attributes, progress) {
            Ok(rec) => r.set_record(rec),
            Err(e) => r.notes.push(format!("the record by group: {e:#}")),
        }
    }
    Ok(r)
}

impl FairnessReport {
    /// Adds the record by group (and its flags).
    pub fn set_record(&mut self, record: Vec<RecordAudit>) {
        self.flagged |= record.iter().any(|x| x.flagged);
        self.record = record;
    }
}
