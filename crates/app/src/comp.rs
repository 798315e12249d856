//! `pipewise comp simulate`: incentive plans applied to the database's
//! performance ([`pipewise_engines::comp`] does the arithmetic).

use std::collections::HashMap;

use anyhow::Result;
use pipewise_engines::comp::{self, Behaviour, Performance, Plan, PlanResult};
use pipewise_store::read::CrmData;
use serde::Serialize;

const DAY: i64 = 86_400;

/// Plans applied to one period's performance.
#[derive(Debug, Clone, Serialize)]
pub struct CompReport {
    /// The period (dates, inclusive) and its length in months.
    pub from: String,
    pub to: String,
    pub months: f64,
    /// The effort-response assumption used for the compared plan.
    pub behaviour: Behaviour,
    pub behaviour_text: String,
    /// The plan of record, on actual performance.
    pub plan: PlanResult,
    /// The compared plan, on performance under the behaviour assumption.
    pub vs: Option<PlanResult>,
    pub notes: Vec<String>,
}

/// Each rep's won bookings, new logos and won deals closed in
/// `[from, to]` (epoch seconds): every user whose role is `rep`, and anyone
/// else who closed a won deal. A deal counts when it closed (its
/// `closed_at`, else its close date), for the owner it has now, at its
/// amount in the corporate currency; a new logo is an account's first won
/// deal ever.
pub fn performance(crm: &CrmData, from: i64, to: i64) -> Vec<Performance> {
    let closed = |o: &pipewise_store::read::Opportunity| o.closed_at.or(o.close_date);
    // Each account's first win.
    let mut first_win: HashMap<&str, i64> = HashMap::new();
    for o in crm.opportunities.iter().filter(|o| o.stage == "closed_won") {
        if let (Some(a), Some(t)) = (o.account_id.as_deref(), closed(o)) {
            let e = first_win.entry(a).or_insert(t);
            *e = (*e).min(t);
        }
    }
    let names: HashMap<&str, &str> = crm
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.name.as_str()))
        .collect();
    let mut by: HashMap<String, Performance> = HashMap::new();
    for u in &crm.users {
        if u.role
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("rep"))
        {
            by.insert(
                u.id.clone(),
                Performance {
                    rep_id: u.id.clone(),
                    rep: u.name.clone(),
                    bookings: 0.0,
                    new_logos: 0.0,
                    deals: 0.0,
                },
            );
        }
    }
    for o in crm.opportunities.iter().filter(|o| o.stage == "closed_won") {
        let Some(t) = closed(o).filter(|t| (from..=to).contains(t)) else {
            continue;
        };
        let p = by.entry(o.owner_id.clone()).or_insert_with(|| Performance {
            rep_id: o.owner_id.clone(),
            rep: names.get(o.owner_id.as_str()).unwrap_or(&"").to_string(),
            bookings: 0.0,
            new_logos: 0.0,
            deals: 0.0,
        });
        p.bookings += o.amount.unwrap_or(0.0);
        p.deals += 1.0;
        if o.account_id
            .as_deref()
            .and_then(|a| first_win.get(a))
            .is_some_and(|&f| f == t)
        {
            p.new_logos += 1.0;
        }
    }
    let mut v: Vec<Performance> = by.into_values().collect();
    v.sort_by(|a, b| a.rep_id.cmp(&b.rep_id));
    v
}

/// Applies `plan` (and `vs`, under `behaviour`) to the performance of the
/// period `from`-`to` (dates; default: the 12 months to the data's last
/// closed deal). Errors: no won deal to judge by, an unreadable date, a
/// period shorter than a month.
pub fn simulate(
    crm: &CrmData,
    plan: &Plan,
    vs: Option<&Plan>,
    from: Option<&str>,
    to: Option<&str>,
    behaviour: Behaviour,
) -> Result<CompReport> {
    let parse = |what: &str, s: &str| {
        crate::day_start(s)
            .ok_or_else(|| anyhow::anyhow!("--{what} {s:?}: expected a date, YYYY-MM-DD"))
    };
    let last_close = crm
        .opportunities
        .iter()
        .filter(|o| o.stage == "closed_won" || o.stage == "closed_lost")
        .filter_map(|o| o.closed_at.or(o.close_date))
        .max()
        .ok_or_else(|| {
            anyhow::anyhow!("cannot judge: the database has no closed deal to pay on")
        })?;
    let to_t = match to {
        Some(s) => parse("to", s)? + DAY - 1,
        None => last_close,
    };
    let from_t = match from {
        Some(s) => parse("from", s)?,
        None => to_t - 365 * DAY + 1,
    };
    let days = (to_t - from_t + 1) as f64 / DAY as f64;
    anyhow::ensure!(
        days >= 28.0,
        "the period from {} to {} is {days:.0} days: give a month or more",
        pipewise_features::format_date(from_t),
        pipewise_features::format_date(to_t)
    );
    let months = days / (365.25 / 12.0);
    let perf = performance(crm, from_t, to_t);
    anyhow::ensure!(!perf.is_empty(), "cannot judge: no rep in the database");
    let mut notes = Vec::new();
    let won = perf.iter().map(|p| p.deals).sum::<f64>();
    if won == 0.0 {
        notes.push("no won deal closed in the period: every rep is paid on zero".into());
    }
    if let Some(w) = crm.currencies.warning() {
        notes.push(w);
    }
    notes.push(
        "every rep is paid for the whole period (hires and leavers are not prorated); deals count for their current owner".into(),
    );
    let plan_result = comp::apply(plan, &perf, months);
    let vs_result =
        vs.map(|b| comp::apply(b, &comp::respond(plan, b, &perf, months, behaviour), months));
    let behaviour_text = match behaviour {
        Behaviour::None => {
            "performance is what it was under either plan (no behavioural response assumed)"
                .to_string()
        }
        Behaviour::Elasticity { elasticity } => format!(
            "under the compared plan each rep books 1 + {elasticity} × (its marginal pay rate / the plan of record's − 1) times as much at their attainment, within ±50%: an assumption, not a measurement"
        ),
    };
    Ok(CompReport {
        from: pipewise_features::format_date(from_t),
        to: pipewise_features::format_date(to_t),
        months,
        behaviour,
        behaviour_text,
        plan: plan_result,
        vs: vs_result,
        notes,
    })
}
