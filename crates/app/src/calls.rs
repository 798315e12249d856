//! Recorded calls in the caller's scope, with what each one's analysis
//! measured (talk ratio, monologues, questions, objections and how they were
//! handled, next steps, fillers, sentiment, keyword trackers).

use std::collections::HashMap;

use pipewise_features::conversation::CallAnalysis;
use pipewise_features::format_date;
use pipewise_store::read::{ConversationDetail, CrmData};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::InputError;
use crate::analyses::CoachBase;
use crate::scope::Scope;

/// Filters and paging of the call list.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CallQuery {
    /// Only this rep's calls (a user id).
    pub rep: Option<String>,
    /// Only calls about this opportunity.
    pub opportunity: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// Calls to skip (default 0).
    #[param(minimum = 0, maximum = 1000000000)]
    pub offset: Option<usize>,
}

/// A call in a list, with its headline measures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallRow {
    pub id: String,
    /// When it started (YYYY-MM-DD).
    pub date: Option<String>,
    pub duration_s: Option<i64>,
    pub rep_id: Option<String>,
    pub rep: Option<String>,
    pub opportunity_id: Option<String>,
    pub lead_id: Option<String>,
    /// False when the call lacks a rep or a customer side to measure.
    pub analysed: bool,
    /// Share of the talking the rep did (0-1).
    pub talk_ratio: Option<f64>,
    pub longest_monologue_s: Option<f64>,
    pub questions: Option<u32>,
    pub objections: Option<usize>,
    pub objections_handled: Option<usize>,
    /// Whether a next step was agreed (null: none proposed or not analysed).
    pub next_step_agreed: Option<bool>,
}

/// A page of calls, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallPage {
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub items: Vec<CallRow>,
}

/// One call: every turn with its speaker and times, and its analysis.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallDetail {
    pub call: ConversationDetail,
    /// Null when the call lacks a rep or a customer side to measure.
    pub analysis: Option<CallAnalysis>,
}

/// Whose each call is: the rep on it, and the current owner of the deal or
/// lead it is about. A caller sees a call when the rep or that owner is in
/// their scope. Computed once per load ([`CoachBase::call_owners`]).
pub fn call_owners(crm: &CrmData) -> Vec<[Option<String>; 2]> {
    let deal_owner: HashMap<&str, &str> = crm
        .opportunities
        .iter()
        .map(|o| (o.id.as_str(), o.owner_id.as_str()))
        .collect();
    let lead_owner: HashMap<&str, &str> = crm
        .leads
        .iter()
        .filter_map(|l| Some((l.id.as_str(), l.owner_id.as_deref()?)))
        .collect();
    crm.conversations
        .iter()
        .map(|c| {
            let linked = c
                .opportunity_id
                .as_deref()
                .and_then(|o| deal_owner.get(o).copied())
                .or_else(|| {
                    c.lead_id
                        .as_deref()
                        .and_then(|l| lead_owner.get(l).copied())
                });
            [c.user_id.clone(), linked.map(str::to_string)]
        })
        .collect()
}

fn owners(base: &CoachBase, k: usize) -> [Option<&str>; 2] {
    let o = &base.call_owners[k];
    [o[0].as_deref(), o[1].as_deref()]
}

fn visible(scope: &Scope, o: [Option<&str>; 2]) -> bool {
    o.iter().any(|x| scope.allows(*x))
}

/// The calls in the scope, newest first.
pub fn list(base: &CoachBase, scope: &Scope, q: &CallQuery) -> Result<CallPage, InputError> {
    let (limit, offset) = crate::page(q.limit, q.offset)?;
    let crm = &base.run.crm;
    let names: HashMap<&str, &str> = crm
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.name.as_str()))
        .collect();
    let mut hits: Vec<usize> = (0..crm.conversations.len())
        .filter(|&k| visible(scope, owners(base, k)))
        .filter(|&k| {
            let c = &crm.conversations[k];
            q.rep
                .as_deref()
                .is_none_or(|r| c.user_id.as_deref() == Some(r))
                && q.opportunity
                    .as_deref()
                    .is_none_or(|o| c.opportunity_id.as_deref() == Some(o))
        })
        .collect();
    hits.sort_by(|&a, &b| {
        let (x, y) = (&crm.conversations[a], &crm.conversations[b]);
        y.started_at.cmp(&x.started_at).then(x.id.cmp(&y.id))
    });
    let items = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|&k| {
            let c = &crm.conversations[k];
            let a = base.run.calls.get(k).and_then(Option::as_ref);
            // A linked deal or lead outside the scope is not named.
            let [_, linked] = owners(base, k);
            let show_link = scope.allows(linked);
            CallRow {
                id: c.id.clone(),
                date: c.started_at.map(format_date),
                duration_s: c.duration_s,
                rep_id: c.user_id.clone().filter(|u| scope.allows(Some(u))),
                rep: c
                    .user_id
                    .as_deref()
                    .filter(|u| scope.allows(Some(u)))
                    .and_then(|u| names.get(u))
                    .map(|n| n.to_string()),
                opportunity_id: c.opportunity_id.clone().filter(|_| show_link),
                lead_id: c.lead_id.clone().filter(|_| show_link),
                analysed: a.is_some(),
                talk_ratio: a.map(|a| a.talk_ratio),
                longest_monologue_s: a.map(|a| a.longest_monologue_s),
                questions: a.map(|a| a.questions_open + a.questions_closed),
                objections: a.map(|a| a.objections.len()),
                objections_handled: a.map(|a| a.objections.iter().filter(|o| o.handled).count()),
                next_step_agreed: a.and_then(|a| a.next_step.as_ref().map(|n| n.agreed)),
            }
        })
        .collect();
    Ok(CallPage {
        total: hits.len(),
        offset,
        limit,
        items,
    })
}

/// Where a call is in the run, if the scope may see it.
pub fn find(base: &CoachBase, scope: &Scope, id: &str) -> Option<usize> {
    let k = *base.call_index.get(id)?;
    visible(scope, owners(base, k)).then_some(k)
}

/// A call's stored detail and analysis, with links outside the scope removed.
pub fn detail(
    base: &CoachBase,
    scope: &Scope,
    k: usize,
    mut call: ConversationDetail,
) -> CallDetail {
    let [_, linked] = owners(base, k);
    if !scope.allows(linked) {
        call.opportunity_id = None;
        call.lead_id = None;
    }
    if !scope.allows(call.user_id.as_deref()) {
        call.user_id = None;
        call.user_name = None;
    }
    CallDetail {
        call,
        analysis: base.run.calls.get(k).cloned().flatten(),
    }
}
