//! Coaching: every rep's profile against peers and top performers, their
//! gaps priced by outcome models, plans, team headlines and the managers'
//! decisions about the recommendations (the human override).

use std::collections::HashMap;
use std::sync::Arc;

use pipewise_engines::coach::{self, CoachOptions, Impact, Profiles, Skill};
use pipewise_engines::coach_plan::{self, Catalogue, DecisionNote, Plan, PlanInputs, SlipRisk};
use pipewise_engines::predict;
use pipewise_features::Data;
use pipewise_features::conversation::{CallAnalysis, Trackers};
use pipewise_models::Classifier;
use pipewise_store::SqliteStore;
use pipewise_store::read::CrmData;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::InputError;

/// Everything the coach computes for one database.
pub struct CoachRun {
    /// Shared with the scored pipeline and the other analyses of one load.
    pub crm: Arc<CrmData>,
    pub calls: Vec<Option<CallAnalysis>>,
    pub profiles: Profiles,
    pub impact: Impact,
    pub slip: Vec<SlipRisk>,
}

/// Measures every call, profiles every rep and fits the outcome models
/// that price the gaps; `models` (win, slip) score the open deals for the
/// managers' slip alerts. Errors when the CRM has no users with the role rep.
pub fn run_coach(
    crm: Arc<CrmData>,
    models: Option<(&Classifier, &Classifier)>,
    opts: &CoachOptions,
    trackers: &Trackers,
) -> anyhow::Result<CoachRun> {
    let data = Data::new(&crm);
    let calls = coach::analyse_calls(&crm, trackers);
    let profiles = coach::profiles(&crm, &data, &calls, opts);
    anyhow::ensure!(
        !profiles.reps.is_empty(),
        "the database has no users with the role rep"
    );
    let impact = Impact::fit(&crm, &data, &calls, &profiles);
    let slip = match models {
        Some((win, slip)) => slip_risks(&data, profiles.as_of, win, slip)?,
        None => Vec::new(),
    };
    Ok(CoachRun {
        crm,
        calls,
        profiles,
        impact,
        slip,
    })
}

/// The win and slip models active in the database, when both are.
pub fn active_models(store: &SqliteStore) -> anyhow::Result<Option<(Classifier, Classifier)>> {
    Ok(
        match (
            crate::book::active_model(store, "win")?,
            crate::book::active_model(store, "slip")?,
        ) {
            (Some(w), Some(s)) => Some((w.0, s.0)),
            _ => None,
        },
    )
}

/// Open deals scored by the slip model.
fn slip_risks(
    data: &Data,
    as_of: i64,
    win: &Classifier,
    slip: &Classifier,
) -> anyhow::Result<Vec<SlipRisk>> {
    let scored = predict::score(data, as_of, win, Some(slip), 3)?;
    Ok(scored
        .into_iter()
        .filter_map(|s| {
            let i = data.index_of(&s.opportunity_id)?;
            let o = &data.opps[i];
            Some(SlipRisk {
                opportunity: s.opportunity_id.clone(),
                name: o.name.clone(),
                owner: o.owner.at(as_of)?.to_string(),
                amount: data.amount_at(o, as_of),
                probability: s.slip_probability?,
                reasons: s
                    .slip_factors
                    .iter()
                    .filter(|f| f.contribution > 0.0)
                    .map(|f| f.text.clone())
                    .collect(),
            })
        })
        .collect())
}

/// The latest decision per recommendation.
pub fn latest_decisions(store: &SqliteStore) -> anyhow::Result<HashMap<String, DecisionNote>> {
    Ok(store
        .coaching_decisions()?
        .into_iter()
        .map(|d| (d.recommendation.clone(), note(d)))
        .collect())
}

fn note(d: pipewise_store::CoachingDecision) -> DecisionNote {
    DecisionNote {
        action: d.action,
        reason: d.reason,
        edited_text: d.edited_text,
    }
}

/// The latest decision per recommendation, and how many decisions there
/// are (decisions are only appended: a stamp for caches).
pub fn latest_decisions_stamped(store: &SqliteStore) -> anyhow::Result<crate::insight::Decisions> {
    let all = store.coaching_decisions()?;
    let n = all.len();
    Ok((
        n,
        all.into_iter()
            .map(|d| (d.recommendation.clone(), note(d)))
            .collect(),
    ))
}

/// The plans of the reps at `reps` (indices into `run.profiles.reps`).
pub fn plans_for(
    run: &CoachRun,
    reps: &[usize],
    catalogue: &Catalogue,
    opts: &CoachOptions,
    decisions: &HashMap<String, DecisionNote>,
) -> Vec<Plan> {
    let inputs = PlanInputs {
        crm: &run.crm,
        calls: &run.calls,
        catalogue,
        impact: &run.impact,
        slip: &run.slip,
        alert_slip: opts.alert_slip,
        max_priorities: opts.max_priorities,
        decisions,
    };
    reps.iter()
        .map(|&i| coach_plan::plan(&run.profiles, i, &inputs))
        .collect()
}

/// One team's coaching headline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamHeadline {
    pub team: String,
    pub reps: usize,
    /// The most common first priority and how many reps have it.
    pub focus: Option<TeamFocus>,
    /// Estimated worth if every rep closed their first gap, a quarter.
    pub worth_per_quarter: f64,
    /// The rep whose first gap is worth most, that gap and its worth.
    pub biggest: Option<BiggestGap>,
    pub alerts: usize,
}

/// A team's most common first priority.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamFocus {
    pub skill: Skill,
    /// Reps whose first priority it is.
    pub reps: usize,
}

/// The first gap worth most in a team.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BiggestGap {
    /// The rep's name.
    pub rep: String,
    pub skill: Skill,
    /// Expected extra won bookings a quarter, in the corporate currency.
    pub bookings_per_quarter: f64,
}

/// Headlines of the teams the plans belong to, over those plans only.
pub fn team_headlines(plans: &[Plan]) -> Vec<TeamHeadline> {
    let mut teams: Vec<String> = plans
        .iter()
        .map(|p| p.team.clone().unwrap_or_else(|| "(no team)".into()))
        .collect();
    teams.sort();
    teams.dedup();
    teams
        .into_iter()
        .map(|t| {
            let ps: Vec<&Plan> = plans
                .iter()
                .filter(|p| p.team.as_deref().unwrap_or("(no team)") == t)
                .collect();
            let mut counts: HashMap<Skill, usize> = HashMap::new();
            for p in &ps {
                if let Some(pr) = p.priorities.first() {
                    *counts.entry(pr.skill).or_default() += 1;
                }
            }
            let focus = counts
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|(skill, reps)| TeamFocus { skill, reps });
            let firsts = ps.iter().filter_map(|p| Some((p, p.priorities.first()?)));
            let biggest = firsts
                .clone()
                .max_by(|a, b| {
                    a.1.gap
                        .bookings_per_quarter
                        .total_cmp(&b.1.gap.bookings_per_quarter)
                })
                .map(|(p, pr)| BiggestGap {
                    rep: p.rep.clone(),
                    skill: pr.skill,
                    bookings_per_quarter: pr.gap.bookings_per_quarter,
                });
            TeamHeadline {
                reps: ps.len(),
                focus,
                worth_per_quarter: firsts.map(|(_, pr)| pr.gap.bookings_per_quarter).sum(),
                biggest,
                alerts: ps.iter().map(|p| p.alerts.len()).sum(),
                team: t,
            }
        })
        .collect()
}

/// What a manager does with a recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionAction {
    Accept,
    Edit,
    Dismiss,
}

impl DecisionAction {
    /// As stored: `accepted`, `edited`, `dismissed`.
    pub fn stored(self) -> &'static str {
        match self {
            DecisionAction::Accept => "accepted",
            DecisionAction::Edit => "edited",
            DecisionAction::Dismiss => "dismissed",
        }
    }
}

/// A manager's decision about one recommendation: accept it, edit it (the
/// edited text and why) or dismiss it (why). `recommendation` is the id in
/// the plan: `REP:SKILL` (a priority, such as `r00012:discovery`) or
/// `alert:OPPORTUNITY` (a deal alert).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    Accept {
        #[schema(pattern = "^[^:]+:.+$")]
        recommendation: String,
        #[schema(max_length = 2000)]
        reason: Option<String>,
    },
    Edit {
        #[schema(pattern = "^[^:]+:.+$")]
        recommendation: String,
        #[schema(pattern = "\\S", max_length = 2000)]
        reason: String,
        #[schema(pattern = "\\S", max_length = 5000)]
        text: String,
    },
    Dismiss {
        #[schema(pattern = "^[^:]+:.+$")]
        recommendation: String,
        #[schema(pattern = "\\S", max_length = 2000)]
        reason: String,
    },
}

/// Why a decision cannot be recorded.
#[derive(Debug, Clone)]
pub enum DecisionError {
    /// A field is not what was expected.
    Invalid(InputError),
    /// The recommendation names no rep or deal there is.
    Unknown(String),
}

impl Decision {
    pub fn recommendation(&self) -> &str {
        match self {
            Decision::Accept { recommendation, .. }
            | Decision::Edit { recommendation, .. }
            | Decision::Dismiss { recommendation, .. } => recommendation,
        }
    }

    pub fn action(&self) -> DecisionAction {
        match self {
            Decision::Accept { .. } => DecisionAction::Accept,
            Decision::Edit { .. } => DecisionAction::Edit,
            Decision::Dismiss { .. } => DecisionAction::Dismiss,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Decision::Accept { reason, .. } => reason.as_deref(),
            Decision::Edit { reason, .. } | Decision::Dismiss { reason, .. } => Some(reason),
        }
    }

    /// The recommendation as edited.
    pub fn text(&self) -> Option<&str> {
        match self {
            Decision::Edit { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Checks the decision against the CRM; returns the rep it is about and
    /// the recommendation's id with the rep as a user id (the rep may be
    /// given by name).
    pub fn validate(&self, crm: &CrmData) -> Result<(String, String), DecisionError> {
        let r = self.recommendation();
        let Some((head, tail)) = r.split_once(':') else {
            return Err(DecisionError::Invalid(InputError::new(
                "recommendation",
                "REP:SKILL (such as r00012:discovery) or alert:OPPORTUNITY",
                r,
            )));
        };
        for (field, v, max) in [("reason", self.reason(), 2000), ("text", self.text(), 5000)] {
            if let Some(v) = v
                && v.chars().count() > max
            {
                return Err(DecisionError::Invalid(InputError::new(
                    field,
                    &format!("at most {max} characters"),
                    &format!("{} characters", v.chars().count()),
                )));
            }
        }
        if self.action() != DecisionAction::Accept
            && self.reason().is_none_or(|x| x.trim().is_empty())
        {
            return Err(DecisionError::Invalid(InputError::new(
                "reason",
                "a reason, required to edit or dismiss a recommendation",
                self.reason().unwrap_or(""),
            )));
        }
        if self.action() == DecisionAction::Edit && self.text().is_none_or(|x| x.trim().is_empty())
        {
            return Err(DecisionError::Invalid(InputError::new(
                "text",
                "the recommendation as edited, required with action edit",
                self.text().unwrap_or(""),
            )));
        }
        let rep_id = if head == "alert" {
            crm.opportunities
                .iter()
                .find(|o| o.id == tail)
                .map(|o| o.owner_id.clone())
                .ok_or_else(|| {
                    DecisionError::Unknown(format!("no deal {tail:?} (alert:OPPORTUNITY)"))
                })?
        } else {
            if Skill::parse(tail).is_none() {
                return Err(DecisionError::Unknown(format!(
                    "unknown skill {tail:?} (REP:SKILL with a skill among {})",
                    Skill::ALL.map(Skill::name).join(", ")
                )));
            }
            crm.users
                .iter()
                .find(|u| u.id == head || u.name.eq_ignore_ascii_case(head))
                .map(|u| u.id.clone())
                .ok_or_else(|| DecisionError::Unknown(format!("no rep {head:?} (REP:SKILL)")))?
        };
        let canonical = if head == "alert" {
            r.to_string()
        } else {
            format!("{rep_id}:{tail}")
        };
        Ok((rep_id, canonical))
    }
}

/// A recorded decision.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionRecord {
    pub id: i64,
    pub recommendation: String,
    pub rep_id: String,
    /// `accepted`, `edited` or `dismissed`.
    pub action: String,
    pub reason: Option<String>,
    pub edited_text: Option<String>,
    /// The user who decided.
    pub decided_by: Option<String>,
    pub decided_at: String,
}

impl From<pipewise_store::CoachingDecision> for DecisionRecord {
    fn from(d: pipewise_store::CoachingDecision) -> Self {
        DecisionRecord {
            id: d.id,
            recommendation: d.recommendation,
            rep_id: d.rep_id,
            action: d.action,
            reason: d.reason,
            edited_text: d.edited_text,
            decided_by: d.decided_by,
            decided_at: d.decided_at,
        }
    }
}
