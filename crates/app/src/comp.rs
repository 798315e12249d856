//! `pipewise comp simulate`: incentive plans applied to the database's
//! performance ([`pipewise_engines::comp`] does the arithmetic).

use std::collections::HashMap;

use anyhow::Result;
use pipewise_engines::comp::{self, Behaviour, Performance, Plan, PlanResult};
use pipewise_store::read::CrmData;
use serde::Serialize;

const DAY: i64 = 86_400;

/// Plans applied to one period's performance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
                    adherence: None,
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
            adherence: None,
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
/// closed deal). An adherence measure is paid on the lists `store` holds
/// for the period's days. Errors: no won deal to judge by, an unreadable
/// date, a period shorter than a month, a database error.
pub fn simulate(
    store: &pipewise_store::SqliteStore,
    crm: &CrmData,
    plan: &Plan,
    vs: Option<&Plan>,
    from: Option<&str>,
    to: Option<&str>,
    behaviour: Behaviour,
) -> Result<CompReport> {
    use chrono::{Months, NaiveDate};
    let parse = |what: &str, s: &str| {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| anyhow::anyhow!("--{what} {s:?}: expected a date, YYYY-MM-DD"))
    };
    let closes: Vec<i64> = crm
        .opportunities
        .iter()
        .filter(|o| o.stage == "closed_won" || o.stage == "closed_lost")
        .filter_map(|o| o.closed_at.or(o.close_date))
        .collect();
    let (Some(&first_close), Some(&last_close)) = (closes.iter().min(), closes.iter().max()) else {
        anyhow::bail!("cannot judge: the database has no closed deal to pay on");
    };
    let date_of = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.date_naive())
            .unwrap_or_default()
    };
    let to_d = match to {
        Some(s) => parse("to", s)?,
        None => date_of(last_close),
    };
    let from_d = match from {
        Some(s) => parse("from", s)?,
        // The 12 calendar months to `to`: 2025-06-30 gives 2024-07-01.
        None => (to_d + chrono::Days::new(1))
            .checked_sub_months(Months::new(12))
            .unwrap_or(to_d),
    };
    anyhow::ensure!(
        from_d <= to_d,
        "--from {from_d} is after --to {to_d}: give the period's first day, then its last"
    );
    let months = calendar_months(from_d, to_d + chrono::Days::new(1));
    anyhow::ensure!(
        months >= 0.9,
        "the period from {from_d} to {to_d} is {:.2} months: give a month or more",
        months
    );
    let start = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |x| x.and_utc().timestamp())
    };
    let (from_t, to_t) = (start(from_d), start(to_d) + DAY - 1);
    let mut perf = performance(crm, from_t, to_t);
    anyhow::ensure!(!perf.is_empty(), "cannot judge: no rep in the database");
    let mut notes = Vec::new();
    let pays_adherence = std::iter::once(plan).chain(vs).any(|p| {
        p.measures
            .iter()
            .any(|m| m.metric == comp::Metric::Adherence)
    });
    if pays_adherence {
        // The lists of the period's days whose window closed by the data's end.
        let (f, t) = (from_d.to_string(), to_d.to_string());
        let r = crate::actions::adherence(store, crm, Some(&f), Some(&t))?;
        // Followed from the list when the records say so (an activity
        // logged from it or marked done on it); otherwise any matching
        // touch, which also counts touches the rep would have made anyway.
        let logged = r.from_list > 0;
        let by: HashMap<&str, f64> = r
            .by_rep
            .iter()
            .map(|x| {
                (
                    x.id.as_str(),
                    if logged {
                        x.from_list_share
                    } else {
                        x.adherence
                    },
                )
            })
            .collect();
        let mut without = 0;
        for p in &mut perf {
            p.adherence = by.get(p.rep_id.as_str()).copied();
            without += usize::from(p.adherence.is_none());
        }
        notes.push(if logged {
            format!(
                "adherence: {} of {} recommended actions in the period's lists followed from the list (logged from it or marked done on it); {without} reps with no list are paid at quota on it",
                r.from_list, r.recommended
            )
        } else {
            format!(
                "adherence: {} of {} recommended actions in the period's lists acted on by a matching touch; no activity was logged from the list, so this counts touches reps would have made anyway; {without} reps with no list are paid at quota on it",
                r.acted_on, r.recommended
            )
        });
    }
    let won = perf.iter().map(|p| p.deals).sum::<f64>();
    let span = format!(
        "the data's deals closed from {} to {}",
        pipewise_features::format_date(first_close),
        pipewise_features::format_date(last_close)
    );
    if won == 0.0 {
        notes.push(format!(
            "no won deal closed in the period: every rep is paid on zero ({span})"
        ));
    } else if from_d < date_of(first_close) || to_d > date_of(last_close) {
        notes.push(format!(
            "the period reaches beyond the data ({span}): quotas are prorated over the whole period"
        ));
    }
    for p in std::iter::once(plan).chain(vs) {
        let m = p.multiple(1.0);
        if (m - 1.0).abs() > 1e-9 {
            notes.push(format!(
                "{} pays {m:.3} of target variable pay at quota, not 1: its tiers' rates integrate to {m:.3} at 100% attainment",
                p.name
            ));
        }
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
        from: from_d.to_string(),
        to: to_d.to_string(),
        months,
        behaviour,
        behaviour_text,
        plan: plan_result,
        vs: vs_result,
        notes,
    })
}

/// Calendar months from `a` up to `b` (exclusive): whole months count 1, a
/// part month its days over that month's days.
pub fn calendar_months(a: chrono::NaiveDate, b: chrono::NaiveDate) -> f64 {
    use chrono::Months;
    // Whole months counted from `a` itself (Jan 31 + 1 month is Feb 28,
    // + 2 months Mar 31: stepping month by month would drift to the 28th).
    let mut k = 0u32;
    while let Some(next) = a.checked_add_months(Months::new(k + 1))
        && next <= b
    {
        k += 1;
    }
    let at = a.checked_add_months(Months::new(k)).unwrap_or(b);
    let mut n = f64::from(k);
    if at < b {
        let next = a.checked_add_months(Months::new(k + 1)).unwrap_or(b);
        let len = (next - at).num_days().max(1) as f64;
        n += (b - at).num_days() as f64 / len;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::calendar_months;
    use chrono::NaiveDate;

    #[test]
    fn calendar_months_count_whole_months_and_part_months_by_their_days() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(calendar_months(d("2025-06-01"), d("2025-07-01")), 1.0);
        assert_eq!(calendar_months(d("2024-01-01"), d("2025-01-01")), 12.0);
        assert_eq!(calendar_months(d("2024-07-01"), d("2025-07-01")), 12.0);
        assert_eq!(calendar_months(d("2025-01-01"), d("2025-04-01")), 3.0);
        assert!((calendar_months(d("2025-06-01"), d("2025-06-16")) - 0.5).abs() < 1e-12);
        // A year from the last day of a month is 12 months, not more
        // (months counted from the start, not stepped from a clamped day).
        assert_eq!(calendar_months(d("2024-12-31"), d("2025-12-31")), 12.0);
        assert_eq!(calendar_months(d("2025-01-31"), d("2025-03-31")), 2.0);
    }
}

/// A plan file of the server's plans directory (`pipewise serve --plans
/// DIR`): its name (the file's stem), and the plan or why it does not read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanFile {
    pub name: String,
    pub file: String,
    pub plan: Option<Plan>,
    pub error: Option<String>,
}

/// The plans of a directory: every `*.toml` in it, by name. Errors: the
/// directory cannot be read.
pub fn plan_files(dir: &std::path::Path) -> Result<Vec<PlanFile>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the plans directory: {e}", dir.display()))?;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|x| x.to_str())
            .unwrap_or_default()
            .to_string();
        let (plan, error) = match std::fs::read_to_string(&path) {
            Ok(text) => match Plan::from_toml(&text) {
                Ok(p) => (Some(p), None),
                Err(e) => (None, Some(e.to_string())),
            },
            Err(e) => (None, Some(format!("cannot read: {e}"))),
        };
        out.push(PlanFile {
            name,
            file: path
                .file_name()
                .and_then(|x| x.to_str())
                .unwrap_or_default()
                .to_string(),
            plan,
            error,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The effort-response assumption a request names: `none` (performance as
/// it was) or `elasticity` (of the compared plan's performance to its
/// marginal pay rate; default 0.2). Errors: an elasticity outside 0-2,
/// an elasticity without `elasticity`, `elasticity` without a compared
/// plan.
pub fn behaviour_of(
    name: Option<&str>,
    elasticity: Option<f64>,
    has_vs: bool,
) -> std::result::Result<Behaviour, crate::InputError> {
    match (name.unwrap_or("none"), elasticity) {
        ("elasticity", e) => {
            let e = e.unwrap_or(0.2);
            if !(0.0..=2.0).contains(&e) {
                return Err(crate::InputError::new(
                    "elasticity",
                    "a value from 0 to 2",
                    &e.to_string(),
                ));
            }
            if !has_vs {
                return Err(crate::InputError::refused(
                    "behaviour",
                    "none without a compared plan (elasticity applies to the compared plan: give vs)",
                    "elasticity",
                ));
            }
            Ok(Behaviour::Elasticity { elasticity: e })
        }
        ("none", None) => Ok(Behaviour::None),
        ("none", Some(e)) => Err(crate::InputError::refused(
            "elasticity",
            "no elasticity without behaviour=elasticity (the default assumes no response)",
            &e.to_string(),
        )),
        (other, _) => Err(crate::InputError::new(
            "behaviour",
            "none or elasticity",
            other,
        )),
    }
}

/// Two plans of the server's plans directory on the org's performance
/// (`GET /api/v1/comp/simulate`).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CompQuery {
    /// The plan of record: a plan's name (`GET /api/v1/comp/plans`).
    pub plan: String,
    /// A plan to compare with it.
    pub vs: Option<String>,
    /// The period's first day (default: 12 months before `to`).
    #[param(format = Date)]
    pub from: Option<String>,
    /// The period's last day (default: the data's last closed deal).
    #[param(format = Date)]
    pub to: Option<String>,
    /// How effort responds to the compared plan's marginal pay rate:
    /// `none` (default) or `elasticity`.
    pub behaviour: Option<String>,
    /// With `behaviour=elasticity`: the relative change in performance per
    /// unit relative change in the marginal pay rate (0-2, default 0.2).
    #[param(minimum = 0, maximum = 2)]
    pub elasticity: Option<f64>,
}

/// The plans directory's plans (`GET /api/v1/comp/plans`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanList {
    /// The directory, when the server was given one.
    pub directory: Option<String>,
    pub plans: Vec<PlanFile>,
    /// Why there are none, when there is no directory.
    pub note: Option<String>,
}
