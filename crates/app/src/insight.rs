//! Views of the analyses over a caller's scope: stage bias, pipeline
//! inspection and coaching. Every list is filtered to the reps the caller
//! sees; aggregates (team headlines) are computed over those reps only.

use pipewise_engines::coach::{self, METRICS, Skill};
use pipewise_engines::coach_plan::Plan;
use pipewise_engines::stage::{Flag, RepBias};
use pipewise_features::format_date;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::InputError;
use crate::analyses::{CoachBase, StageBase};
use crate::coaching::{TeamHeadline, team_headlines};

/// The decisions recorded: their number (a stamp) and the latest per recommendation.
pub type Decisions = (
    usize,
    std::collections::HashMap<String, pipewise_engines::coach_plan::DecisionNote>,
);
use crate::scope::Scope;
use crate::stage::InspectRow;

/// Each rep's stage bias in the scope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BiasView {
    /// First and last weekly snapshot measured (YYYY-MM-DD).
    pub from: Option<String>,
    pub to: Option<String>,
    /// Strongest optimism first.
    pub reps: Vec<RepBias>,
}

pub fn bias(base: &StageBase, scope: &Scope) -> BiasView {
    BiasView {
        from: base.from.clone(),
        to: base.to.clone(),
        reps: base
            .bias
            .iter()
            .filter(|b| scope.allows(Some(&b.rep_id)))
            .cloned()
            .collect(),
    }
}

/// Filters and paging of the pipeline inspection.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InspectionQuery {
    /// Only this owner's deals (a user id).
    pub owner: Option<String>,
    /// `ahead` (entered stage ahead of the evidence), `behind` or `in_line`
    /// (also as the rows spell it: `ahead_of_evidence`, `behind_evidence`).
    #[param(pattern = "^(ahead|behind|in_line|ahead_of_evidence|behind_evidence)$")]
    pub flag: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// Deals to skip (default 0).
    #[param(minimum = 0, maximum = 1000000000)]
    pub offset: Option<usize>,
}

/// Open deals with their entered and evidence stage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InspectionPage {
    pub as_of: String,
    /// Deals matching the filters (all pages).
    pub total: usize,
    /// Of those, ahead of and behind the evidence.
    pub ahead: usize,
    pub behind: usize,
    pub offset: usize,
    pub limit: usize,
    /// Deals ahead of or behind the evidence first, larger amounts first.
    pub items: Vec<InspectRow>,
    pub win_model_version: Option<i64>,
    pub slip_model_version: Option<i64>,
}

pub fn inspection(
    base: &StageBase,
    scope: &Scope,
    q: &InspectionQuery,
) -> Result<InspectionPage, InputError> {
    let flag = match q.flag.as_deref() {
        None => None,
        Some("ahead" | "ahead_of_evidence") => Some(Flag::AheadOfEvidence),
        Some("behind" | "behind_evidence") => Some(Flag::BehindEvidence),
        Some("in_line") => Some(Flag::InLine),
        Some(x) => {
            return Err(InputError::new(
                "flag",
                "one of ahead, behind, in_line (or ahead_of_evidence, behind_evidence)",
                x,
            ));
        }
    };
    let (limit, offset) = crate::page(q.limit, q.offset)?;
    let mut hits: Vec<&InspectRow> = base
        .rows
        .iter()
        .filter(|r| scope.allows((!r.stage.rep_id.is_empty()).then_some(&r.stage.rep_id)))
        .filter(|r| q.owner.as_deref().is_none_or(|o| r.stage.rep_id == o))
        .filter(|r| flag.is_none_or(|f| r.stage.flag == f))
        .collect();
    hits.sort_by(|a, b| {
        let flagged = |r: &InspectRow| r.stage.flag != Flag::InLine;
        flagged(b)
            .cmp(&flagged(a))
            .then(
                b.stage
                    .amount
                    .unwrap_or(0.0)
                    .total_cmp(&a.stage.amount.unwrap_or(0.0)),
            )
            .then(a.stage.opportunity_id.cmp(&b.stage.opportunity_id))
    });
    Ok(InspectionPage {
        as_of: format_date(base.as_of),
        total: hits.len(),
        ahead: hits
            .iter()
            .filter(|r| r.stage.flag == Flag::AheadOfEvidence)
            .count(),
        behind: hits
            .iter()
            .filter(|r| r.stage.flag == Flag::BehindEvidence)
            .count(),
        offset,
        limit,
        items: hits.into_iter().skip(offset).take(limit).cloned().collect(),
        win_model_version: base.win_model_version,
        slip_model_version: base.slip_model_version,
    })
}

/// A rep in the coaching overview.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepSummary {
    pub rep_id: String,
    pub name: String,
    pub team: Option<String>,
    pub top_performer: bool,
    /// Their first priority, its headline and its estimated worth a quarter.
    pub first_priority: Option<Skill>,
    pub headline: Option<String>,
    pub worth_per_quarter: Option<f64>,
    /// Open deals at risk of slipping, for the next one-to-one.
    pub alerts: usize,
}

/// Coaching over the caller's scope: team headlines and each rep's first priority.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CoachingOverview {
    pub as_of: String,
    /// Start of the window the metrics are measured over.
    pub window_start: String,
    pub headlines: Vec<TeamHeadline>,
    pub reps: Vec<RepSummary>,
}

/// One metric of a rep against peers and top performers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricView {
    pub key: String,
    pub label: String,
    /// `activity`, `communication` or `outcome`.
    pub family: String,
    pub higher_is_better: bool,
    /// The rep's value (null: too little data), and as people write it.
    pub value: Option<f64>,
    pub shown: Option<String>,
    /// Share of peers the rep does at least as well as (0-100).
    pub percentile: Option<f64>,
    /// The median of the top performers, of the top quartile and of all reps.
    pub top_performers: Option<f64>,
    pub top_quartile: Option<f64>,
    pub median: Option<f64>,
    /// The same three as people write them.
    pub top_performers_shown: Option<String>,
    pub top_quartile_shown: Option<String>,
    pub median_shown: Option<String>,
}

/// One skill estimate against the top performers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SkillView {
    pub skill: Skill,
    pub label: String,
    /// On a z-scale across reps (null: too little data).
    pub estimate: Option<f64>,
    pub top_performers: Option<f64>,
    pub top_quartile: Option<f64>,
}

/// A rep's coaching profile and plan.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepCoaching {
    pub as_of: String,
    pub window_start: String,
    pub rep_id: String,
    pub name: String,
    pub team: Option<String>,
    pub peer_group: String,
    pub top_performer: bool,
    pub metrics: Vec<MetricView>,
    pub skills: Vec<SkillView>,
    pub plan: Plan,
}

/// Plans of the reps in the scope, with peer coaches outside the scope
/// shown by name and team only.
fn scoped_plans(
    base: &CoachBase,
    scope: &Scope,
    reps: &[usize],
    decisions: &Decisions,
) -> Vec<Plan> {
    let all = base.plans(decisions.0, &decisions.1);
    let mut plans: Vec<Plan> = reps.iter().filter_map(|&i| all.get(i).cloned()).collect();
    for p in &mut plans {
        for pr in &mut p.priorities {
            if let Some(c) = &mut pr.peer_coach
                && !scope.allows(c.id.as_deref())
            {
                c.id = None;
                c.level = None;
            }
        }
    }
    plans
}

pub fn coaching_overview(
    base: &CoachBase,
    scope: &Scope,
    decisions: &Decisions,
) -> CoachingOverview {
    let p = &base.run.profiles;
    let reps: Vec<usize> = (0..p.reps.len())
        .filter(|&i| scope.allows(Some(&p.reps[i].id)))
        .collect();
    let plans = scoped_plans(base, scope, &reps, decisions);
    CoachingOverview {
        as_of: format_date(p.as_of),
        window_start: format_date(p.window_start),
        headlines: team_headlines(&plans),
        reps: plans
            .iter()
            .map(|pl| {
                let first = pl.priorities.first();
                RepSummary {
                    rep_id: pl.rep_id.clone(),
                    name: pl.rep.clone(),
                    team: pl.team.clone(),
                    top_performer: pl.top_performer,
                    first_priority: first.map(|x| x.skill),
                    headline: first.map(|x| x.headline.clone()),
                    worth_per_quarter: first.map(|x| x.gap.bookings_per_quarter),
                    alerts: pl.alerts.len(),
                }
            })
            .collect(),
    }
}

/// One rep's profile and plan; `None` when the rep is not a profiled rep
/// or is outside the scope.
pub fn rep_coaching(
    base: &CoachBase,
    scope: &Scope,
    rep_id: &str,
    decisions: &Decisions,
) -> Option<RepCoaching> {
    if !scope.allows(Some(rep_id)) {
        return None;
    }
    let p = &base.run.profiles;
    let i = p.reps.iter().position(|r| r.id == rep_id)?;
    let r = &p.reps[i];
    let plan = scoped_plans(base, scope, &[i], decisions).pop()?;
    let metrics = METRICS
        .iter()
        .enumerate()
        .map(|(k, d)| MetricView {
            key: d.key.into(),
            label: d.label.into(),
            family: serde_json::to_value(d.family)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            higher_is_better: d.higher_is_better,
            value: r.values[k],
            shown: r.values[k].map(|v| coach::format_metric(d, v)),
            percentile: r.percentiles[k],
            top_performers: p.top_reference[k],
            top_quartile: p.quartile_reference[k],
            median: p.median[k],
            top_performers_shown: p.top_reference[k].map(|v| coach::format_metric(d, v)),
            top_quartile_shown: p.quartile_reference[k].map(|v| coach::format_metric(d, v)),
            median_shown: p.median[k].map(|v| coach::format_metric(d, v)),
        })
        .collect();
    let skills = Skill::ALL
        .iter()
        .enumerate()
        .map(|(k, s)| SkillView {
            skill: *s,
            label: s.label().into(),
            estimate: r.skills[k],
            top_performers: p.top_skill[k],
            top_quartile: p.quartile_skill[k],
        })
        .collect();
    Some(RepCoaching {
        as_of: format_date(p.as_of),
        window_start: format_date(p.window_start),
        rep_id: r.id.clone(),
        name: r.name.clone(),
        team: r.team_name.clone(),
        peer_group: r.peer_group.clone(),
        top_performer: r.top_performer,
        metrics,
        skills,
        plan,
    })
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    Html,
    Markdown,
    Text,
}

impl ReportFormat {
    /// The media type of the rendered report.
    pub fn media_type(self) -> &'static str {
        match self {
            ReportFormat::Html => "text/html; charset=utf-8",
            ReportFormat::Markdown => "text/markdown; charset=utf-8",
            ReportFormat::Text => "text/plain; charset=utf-8",
        }
    }
}

/// The coaching report (what `pipewise coach --format` prints) of one rep,
/// or of every rep in the scope when `rep_id` is `None`; `None` when the
/// rep is outside the scope or has no profile.
pub fn coaching_report(
    base: &CoachBase,
    scope: &Scope,
    rep_id: Option<&str>,
    decisions: &Decisions,
    format: ReportFormat,
) -> Option<String> {
    let p = &base.run.profiles;
    let (title, reps): (String, Vec<usize>) = match rep_id {
        Some(id) => {
            if !scope.allows(Some(id)) {
                return None;
            }
            let i = p.reps.iter().position(|r| r.id == id)?;
            (format!("Coaching plan: {}", p.reps[i].name), vec![i])
        }
        None => (
            "Coaching".to_string(),
            (0..p.reps.len())
                .filter(|&i| scope.allows(Some(&p.reps[i].id)))
                .collect(),
        ),
    };
    let plans = scoped_plans(base, scope, &reps, decisions);
    let doc = crate::report::report(&title, &base.run, &reps, &plans, None);
    Some(match format {
        ReportFormat::Html => doc.html(&title),
        ReportFormat::Markdown => doc.markdown(),
        ReportFormat::Text => doc.text(),
    })
}
