//! Coaching plans: for each rep, a few priorities (the most valuable gaps),
//! each with training modules from a catalogue, a role-play built from the
//! objections the rep meets and loses on, quotes from the rep's own calls that
//! show the gap, and a peer coach; and, for the manager, alerts on open deals
//! at risk of slipping with talking points.

use std::collections::HashMap;

use pipewise_features::conversation::{CallAnalysis, ObjectionKind};
use pipewise_store::read::CrmData;
use serde::{Deserialize, Serialize};

use crate::coach::{Gap, Impact, METRICS, Profiles, Skill, format_metric, metric_index};

/// A training module.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Module {
    pub name: String,
    pub skill: Skill,
    pub minutes: u32,
    pub description: String,
}

/// The catalogue of modules and role-play briefs (TOML).
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub modules: Vec<Module>,
    pub roleplays: HashMap<ObjectionKind, String>,
}

pub const DEFAULT_CATALOGUE: &str = include_str!("../coaching.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    module: Vec<ModuleDef>,
    #[serde(default)]
    roleplay: Vec<RoleplayDef>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleDef {
    name: String,
    skill: String,
    minutes: u32,
    #[serde(default)]
    description: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleplayDef {
    objection: String,
    brief: String,
}

impl Catalogue {
    pub fn default_set() -> Catalogue {
        Catalogue::parse(DEFAULT_CATALOGUE, "built-in catalogue")
            .expect("the built-in catalogue parses")
    }

    /// Parses a catalogue; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> anyhow::Result<Catalogue> {
        let f: CatalogueFile = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{file}: {}", e.to_string().trim_end()))?;
        let mut modules = Vec::new();
        for m in f.module {
            let skill = Skill::parse(&m.skill).ok_or_else(|| {
                anyhow::anyhow!(
                    "{file}: module {:?}: unknown skill {:?} (expected one of {})",
                    m.name,
                    m.skill,
                    Skill::ALL.map(Skill::name).join(", ")
                )
            })?;
            anyhow::ensure!(
                m.minutes > 0,
                "{file}: module {:?}: minutes must be above 0",
                m.name
            );
            modules.push(Module {
                name: m.name,
                skill,
                minutes: m.minutes,
                description: m.description,
            });
        }
        let mut roleplays = HashMap::new();
        for r in f.roleplay {
            let kind = ObjectionKind::ALL
                .into_iter()
                .find(|k| k.name() == r.objection)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{file}: roleplay: unknown objection {:?} (expected one of {})",
                        r.objection,
                        ObjectionKind::ALL.map(ObjectionKind::name).join(", ")
                    )
                })?;
            roleplays.insert(kind, r.brief);
        }
        Ok(Catalogue { modules, roleplays })
    }
}

/// A moment in a call.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quote {
    pub call: String,
    pub date: Option<String>,
    /// Offset in the call, `m:ss`.
    pub at: String,
    pub speaker: String,
    pub text: String,
    /// What it shows.
    pub note: String,
}

/// How often the rep meets an objection, and how it goes.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectionRecord {
    pub kind: ObjectionKind,
    pub met: u32,
    pub steamrolled: u32,
    /// Raised in calls of deals that were later lost.
    pub on_lost_deals: u32,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolePlay {
    pub objection: ObjectionKind,
    pub brief: String,
    pub record: Vec<ObjectionRecord>,
    /// The rep's own exchanges: the customer's objection and the reply.
    pub excerpts: Vec<Quote>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeerCoach {
    /// Their user id (withheld from a caller whose scope does not hold them).
    pub id: Option<String>,
    pub name: String,
    pub team: Option<String>,
    pub same_team: bool,
    /// Their estimate on the skill, z-scale (withheld like `id`).
    pub level: Option<f64>,
}

/// A manager's latest decision about a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionNote {
    /// `accepted`, `edited` or `dismissed`.
    pub action: String,
    pub reason: Option<String>,
    /// The recommendation as the manager rewrote it (`edited` only).
    pub edited_text: Option<String>,
}

/// One priority of a plan.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Priority {
    /// Stable id used to record a manager's decision (`rep:skill`).
    pub id: String,
    pub skill: Skill,
    pub headline: String,
    pub gap: Gap,
    pub modules: Vec<Module>,
    pub roleplay: Option<RolePlay>,
    pub quotes: Vec<Quote>,
    pub peer_coach: Option<PeerCoach>,
    /// The latest manager decision, if any.
    pub decision: Option<DecisionNote>,
}

/// An open deal at risk, for the manager's next one-to-one.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    pub id: String,
    pub opportunity: String,
    pub name: Option<String>,
    pub amount: Option<f64>,
    pub slip_probability: f64,
    pub talking_points: Vec<String>,
    pub decision: Option<DecisionNote>,
}

/// A rep's open deal scored by the slip model.
#[derive(Debug, Clone)]
pub struct SlipRisk {
    pub opportunity: String,
    pub name: Option<String>,
    pub owner: String,
    pub amount: Option<f64>,
    pub probability: f64,
    /// Reasons in words, strongest first.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    pub rep_id: String,
    pub rep: String,
    pub team: Option<String>,
    pub peer_group: String,
    pub top_performer: bool,
    /// The skill with the lowest estimate.
    pub weakest: Option<Skill>,
    pub priorities: Vec<Priority>,
    pub alerts: Vec<Alert>,
}

fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut
        .rsplit_once(' ')
        .map_or(cut.as_str(), |(a, _)| a)
        .to_string();
    format!("{cut}...")
}

/// The inputs a plan reads besides the profiles.
pub struct PlanInputs<'a> {
    pub crm: &'a CrmData,
    pub calls: &'a [Option<CallAnalysis>],
    pub catalogue: &'a Catalogue,
    pub impact: &'a Impact,
    /// Open deals scored for slipping (empty when no slip model is trained).
    pub slip: &'a [SlipRisk],
    pub alert_slip: f64,
    pub max_priorities: usize,
    /// Latest decision per recommendation id.
    pub decisions: &'a HashMap<String, DecisionNote>,
}

/// The plan of the rep at `rep` (index into `p.reps`).
pub fn plan(p: &Profiles, rep: usize, inp: &PlanInputs<'_>) -> Plan {
    let r = &p.reps[rep];
    let gaps = inp.impact.gaps(p, rep);
    let lost: HashMap<&str, bool> = inp
        .crm
        .opportunities
        .iter()
        .map(|o| (o.id.as_str(), o.stage == "closed_lost"))
        .collect();
    // The rep's calls, newest first.
    let mut calls: Vec<usize> = p.calls[rep].clone();
    calls.sort_by(|&a, &b| {
        inp.crm.conversations[b]
            .started_at
            .cmp(&inp.crm.conversations[a].started_at)
    });
    let quote = |i: usize, turn: usize, note: String| -> Quote {
        let c = &inp.crm.conversations[i];
        let t = &c.turns[turn];
        Quote {
            call: c.id.clone(),
            date: c.started_at.map(pipewise_features::format_date),
            at: clock(t.start_ms - c.turns.first().map_or(0, |f| f.start_ms)),
            speaker: t.speaker_role.clone().unwrap_or_else(|| "unknown".into()),
            text: excerpt(&t.text, 220),
            note,
        }
    };
    let mut priorities = Vec::new();
    for g in gaps.iter().take(inp.max_priorities) {
        let id = format!("{}:{}", r.id, g.skill.name());
        let mut quotes = Vec::new();
        let mut roleplay = None;
        match g.skill {
            Skill::Discovery => {
                // The calls where the rep talked most, with their longest monologue.
                let mut by_talk: Vec<usize> = calls
                    .iter()
                    .copied()
                    .filter(|&i| inp.calls[i].is_some())
                    .collect();
                by_talk.sort_by(|&a, &b| {
                    let (x, y) = (
                        inp.calls[a].as_ref().map_or(0.0, |c| c.talk_ratio),
                        inp.calls[b].as_ref().map_or(0.0, |c| c.talk_ratio),
                    );
                    y.total_cmp(&x)
                });
                for &i in by_talk.iter().take(2) {
                    let c = inp.calls[i].as_ref().expect("filtered");
                    quotes.push(quote(
                        i,
                        c.longest_monologue_turn,
                        format!(
                            "you talked {:.0}% of this call; this stretch ran {:.0} s without a question (top performers: under 76 s)",
                            c.talk_ratio * 100.0,
                            c.longest_monologue_s
                        ),
                    ));
                }
            }
            Skill::ObjectionHandling | Skill::Closing | Skill::ProductKnowledge => {
                for &i in &calls {
                    if quotes.len() >= 2 {
                        break;
                    }
                    let Some(c) = inp.calls[i].as_ref() else {
                        continue;
                    };
                    match g.skill {
                        Skill::ObjectionHandling => {
                            if let Some(o) = c.objections.iter().find(|o| !o.handled) {
                                quotes.push(quote(
                                    i,
                                    o.turn,
                                    format!("a {} objection...", o.kind.name().replace('_', " ")),
                                ));
                                if let Some(j) = o.reply_turn {
                                    quotes.push(quote(
                                        i,
                                        j,
                                        "...answered without acknowledging it or asking about it"
                                            .into(),
                                    ));
                                }
                            }
                        }
                        Skill::Closing => {
                            if !c.next_steps_agreed()
                                && let Some(j) = inp.crm.conversations[i]
                                    .turns
                                    .iter()
                                    .rposition(|t| t.speaker_role.as_deref() == Some("rep"))
                            {
                                quotes.push(quote(
                                    i,
                                    j,
                                    "the call ended without a next step with a date or an owner"
                                        .into(),
                                ));
                            }
                        }
                        _ => {
                            if let Some(j) = c.filler_turn.filter(|_| c.fillers >= 2) {
                                quotes.push(quote(
                                    i,
                                    j,
                                    format!("{} filler words in this call", c.fillers),
                                ));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        if matches!(
            g.skill,
            Skill::ObjectionHandling | Skill::Discovery | Skill::Closing
        ) {
            roleplay = role_play(inp, &calls, &lost, &quote);
        }
        let modules: Vec<Module> = inp
            .catalogue
            .modules
            .iter()
            .filter(|m| m.skill == g.skill)
            .take(2)
            .cloned()
            .collect();
        priorities.push(Priority {
            decision: inp.decisions.get(&id).cloned(),
            id,
            skill: g.skill,
            headline: headline(g),
            gap: g.clone(),
            modules,
            roleplay,
            quotes,
            peer_coach: peer_coach(p, rep, g.skill),
        });
    }
    let mut alerts: Vec<Alert> = inp
        .slip
        .iter()
        .filter(|s| s.owner == r.id && s.probability >= inp.alert_slip)
        .map(|s| {
            let id = format!("alert:{}", s.opportunity);
            let mut points: Vec<String> = s
                .reasons
                .iter()
                .take(3)
                .map(|x| format!("Ask about it: {x}."))
                .collect();
            points
                .push("Agree a dated next step with the buyer, or move the close date now.".into());
            Alert {
                decision: inp.decisions.get(&id).cloned(),
                id,
                opportunity: s.opportunity.clone(),
                name: s.name.clone(),
                amount: s.amount,
                slip_probability: s.probability,
                talking_points: points,
            }
        })
        .collect();
    alerts.sort_by(|a, b| {
        (b.slip_probability * b.amount.unwrap_or(0.0))
            .total_cmp(&(a.slip_probability * a.amount.unwrap_or(0.0)))
    });
    alerts.truncate(5);
    Plan {
        rep_id: r.id.clone(),
        rep: r.name.clone(),
        team: r.team_name.clone(),
        peer_group: r.peer_group.clone(),
        top_performer: r.top_performer,
        weakest: r
            .skills
            .iter()
            .enumerate()
            .filter_map(|(k, s)| Some((k, (*s)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, _)| Skill::ALL[k]),
        priorities,
        alerts,
    }
}

/// "Raising question rate to the top-quartile level is worth about +4 points of win rate".
pub fn headline(g: &Gap) -> String {
    let behind: Vec<String> = g
        .metrics
        .iter()
        .filter(|m| m.behind())
        .map(|m| {
            let d = &METRICS[metric_index(&m.metric).expect("known")];
            format!(
                "{} from {} to {}",
                d.label,
                format_metric(d, m.rep),
                format_metric(d, m.top_quartile)
            )
        })
        .collect();
    let what = if behind.is_empty() {
        format!("{} to the top-quartile level", g.skill.label())
    } else {
        behind.join(" and ")
    };
    let money = pipewise_core::value::format_money(g.bookings_per_quarter);
    // The outcome models find no gain (or a loss, within their noise): say
    // so rather than print "worth about -1.0 points".
    if g.bookings_per_quarter <= 0.0
        || g.win_rate_points.is_some_and(|w| w <= 0.0)
        || g.conversion_points.is_some_and(|c| c <= 0.0)
    {
        return format!(
            "Moving {what} closes the gap to the top quartile; on this org's deals so far it shows no measurable gain in bookings."
        );
    }
    match (g.win_rate_points, g.conversion_points) {
        (Some(w), _) => format!(
            "Moving {what} is worth about {w:+.1} points of win rate on your deals (about {money} of bookings a quarter)."
        ),
        (_, Some(c)) => format!(
            "Moving {what} is worth about {c:+.1} points of lead conversion (about {money} of bookings a quarter)."
        ),
        _ => format!("Moving {what} is worth about {money} of bookings a quarter."),
    }
}

fn role_play(
    inp: &PlanInputs<'_>,
    calls: &[usize],
    lost: &HashMap<&str, bool>,
    quote: &dyn Fn(usize, usize, String) -> Quote,
) -> Option<RolePlay> {
    let mut rec: HashMap<ObjectionKind, ObjectionRecord> = HashMap::new();
    for &i in calls {
        let Some(c) = inp.calls[i].as_ref() else {
            continue;
        };
        let on_lost = inp.crm.conversations[i]
            .opportunity_id
            .as_deref()
            .and_then(|o| lost.get(o))
            .copied()
            .unwrap_or(false);
        for o in &c.objections {
            let e = rec.entry(o.kind).or_insert(ObjectionRecord {
                kind: o.kind,
                met: 0,
                steamrolled: 0,
                on_lost_deals: 0,
            });
            e.met += 1;
            e.steamrolled += u32::from(!o.handled);
            e.on_lost_deals += u32::from(on_lost);
        }
    }
    let mut record: Vec<ObjectionRecord> = rec.into_values().collect();
    // The objection this rep loses on most: steamrolled or on lost deals.
    record.sort_by(|a, b| {
        (b.steamrolled + b.on_lost_deals)
            .cmp(&(a.steamrolled + a.on_lost_deals))
            .then(b.met.cmp(&a.met))
            .then(a.kind.cmp(&b.kind))
    });
    let kind = record.first()?.kind;
    let mut excerpts = Vec::new();
    for &i in calls {
        let Some(c) = inp.calls[i].as_ref() else {
            continue;
        };
        if let Some(o) = c.objections.iter().find(|o| o.kind == kind && !o.handled) {
            excerpts.push(quote(i, o.turn, "the buyer".into()));
            if let Some(j) = o.reply_turn {
                excerpts.push(quote(i, j, "your answer".into()));
            }
            if excerpts.len() >= 4 {
                break;
            }
        }
    }
    Some(RolePlay {
        objection: kind,
        brief: inp
            .catalogue
            .roleplays
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| format!("Practise the {} objection.", kind.name())),
        record,
        excerpts,
    })
}

/// The top performer strongest in `skill`, preferring the rep's own team.
fn peer_coach(p: &Profiles, rep: usize, skill: Skill) -> Option<PeerCoach> {
    let k = Skill::ALL.iter().position(|s| *s == skill)?;
    let me = &p.reps[rep];
    let top_level = p.top_skill[k]?;
    let candidates: Vec<(usize, f64)> = p
        .reps
        .iter()
        .enumerate()
        .filter(|(i, r)| *i != rep && r.top_performer && r.role == me.role)
        .filter_map(|(i, r)| Some((i, r.skills[k]?)))
        .collect();
    let same_team = candidates
        .iter()
        .filter(|(i, lvl)| p.reps[*i].team == me.team && me.team.is_some() && *lvl >= top_level)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let best = same_team.or_else(|| candidates.iter().max_by(|a, b| a.1.total_cmp(&b.1)))?;
    let c = &p.reps[best.0];
    Some(PeerCoach {
        id: Some(c.id.clone()),
        name: c.name.clone(),
        team: c.team_name.clone(),
        same_team: c.team == me.team && me.team.is_some(),
        level: Some(best.1),
    })
}
