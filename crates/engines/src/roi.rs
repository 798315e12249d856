//! The return on AI-assisted coaching: managers' coaching time priced as
//! the share of their salary it takes (hours a week over a 40-hour week),
//! the software's cost, the revenue a change in win rate brings, and the
//! months the software takes to pay for itself.
//!
//! Seed 004's example counts the managers' whole salaries ($1,500,000 for
//! 10 managers at $150,000) in both cases; priced by the time it takes,
//! coaching 100 reps 2 hours a week is 200 of the 10 managers' 400 weekly
//! hours, $750,000 a year, and 1 hour is $375,000.

use serde::Serialize;

/// A 40-hour working week.
pub const WEEK_HOURS: f64 = 40.0;

/// A win-rate change with its 80% interval and where it came from.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WinRateChange {
    /// Fraction of deals (0.03 = three points of win rate).
    pub value: f64,
    /// 80% interval, when measured.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// `given` (the user's figure) or what measured it.
    pub source: String,
}

/// What the ROI is computed from.
#[derive(Debug, Clone)]
pub struct RoiInput {
    pub reps: f64,
    pub managers: f64,
    /// A manager's yearly salary (currency units).
    pub manager_salary: f64,
    /// Coaching hours a week per rep, without and with pipewise.
    pub hours_before: f64,
    pub hours_after: f64,
    /// The software's yearly cost per rep.
    pub software_per_rep: f64,
    pub win_rate_change: Option<WinRateChange>,
    /// Deals each rep closes (won or lost) a year, and their mean size.
    pub deals_per_rep: Option<f64>,
    pub deal_size: Option<f64>,
    /// The share of extra revenue counted as benefit in the payback (1:
    /// all of it).
    pub gross_margin: f64,
}

/// One way of coaching, priced over a year.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoachingCost {
    /// Coaching hours a week, all reps together.
    pub coaching_hours_per_week: f64,
    /// The share of the managers' working time it takes (0-1).
    pub manager_time_share: f64,
    /// That share of the managers' salaries (a year).
    pub coaching_cost: f64,
    /// The software (a year; 0 without it).
    pub software_cost: f64,
    pub total_cost: f64,
}

/// The comparison, a year.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Roi {
    pub manual: CoachingCost,
    pub ai: CoachingCost,
    /// `manual.total_cost - ai.total_cost` (negative: AI coaching costs more).
    pub cost_saving: f64,
    pub win_rate_change: Option<WinRateChange>,
    /// reps × deals per rep × deal size × win-rate change, with the interval
    /// of the win-rate change; null without deals per rep and deal size.
    pub revenue_change: Option<f64>,
    pub revenue_change_low: Option<f64>,
    pub revenue_change_high: Option<f64>,
    /// Months of benefit (cost saving + revenue change × gross margin) that
    /// pay the year's software; null when there is no benefit.
    pub payback_months: Option<f64>,
    /// Every assumption, in words.
    pub assumptions: Vec<String>,
}

fn side(i: &RoiInput, hours_per_rep: f64, software: f64) -> CoachingCost {
    let hours = i.reps * hours_per_rep;
    let share = hours / (i.managers * WEEK_HOURS);
    let coaching_cost = i.managers * i.manager_salary * share;
    CoachingCost {
        coaching_hours_per_week: hours,
        manager_time_share: share,
        coaching_cost,
        software_cost: software,
        total_cost: coaching_cost + software,
    }
}

/// Prices both ways of coaching. Errors (in words, naming the option):
/// counts or amounts that are not positive, or coaching that would take
/// more than the managers' whole working week.
pub fn roi(i: &RoiInput) -> Result<Roi, String> {
    for (name, v) in [
        ("--reps", i.reps),
        ("--managers", i.managers),
        ("--manager-salary", i.manager_salary),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{name} {v}: expected a positive number"));
        }
    }
    for (name, v) in [
        ("--coaching-hours-before", i.hours_before),
        ("--coaching-hours-after", i.hours_after),
        ("--software-per-rep", i.software_per_rep),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("{name} {v}: expected zero or more"));
        }
    }
    for (name, h) in [
        ("--coaching-hours-before", i.hours_before),
        ("--coaching-hours-after", i.hours_after),
    ] {
        let per_manager = i.reps * h / i.managers;
        if per_manager > WEEK_HOURS {
            return Err(format!(
                "{name} {h}: {per_manager:.1} hours a week per manager, more than a {WEEK_HOURS:.0}-hour week"
            ));
        }
    }
    if !(0.0..=1.0).contains(&i.gross_margin) {
        return Err(format!(
            "--gross-margin {}: expected a share from 0 to 1",
            i.gross_margin
        ));
    }
    let manual = side(i, i.hours_before, 0.0);
    let ai = side(i, i.hours_after, i.reps * i.software_per_rep);
    let cost_saving = manual.total_cost - ai.total_cost;
    let volume = match (i.deals_per_rep, i.deal_size) {
        (Some(n), Some(x)) if n >= 0.0 && x >= 0.0 => Some(i.reps * n * x),
        (Some(_), Some(_)) => {
            return Err("--deals-per-rep and --deal-size: expected zero or more".into());
        }
        _ => None,
    };
    let w = i.win_rate_change.as_ref();
    let revenue_change = volume.zip(w).map(|(v, w)| v * w.value);
    let revenue_change_low = volume.zip(w.and_then(|w| w.low)).map(|(v, x)| v * x);
    let revenue_change_high = volume.zip(w.and_then(|w| w.high)).map(|(v, x)| v * x);
    let benefit = cost_saving + ai.software_cost + revenue_change.unwrap_or(0.0) * i.gross_margin;
    let payback_months = (benefit > 0.0).then(|| 12.0 * ai.software_cost / benefit);
    let mut assumptions = vec![
        format!(
            "manager time priced as the share of salary it takes: hours a week over a {WEEK_HOURS:.0}-hour week"
        ),
        format!(
            "manual coaching: {:.0} of the managers' {:.0} weekly hours; with pipewise: {:.0}",
            manual.coaching_hours_per_week,
            i.managers * WEEK_HOURS,
            ai.coaching_hours_per_week
        ),
        "payback: the year's software cost over a month's benefit (the coaching time freed, plus the revenue change times the gross margin)".into(),
    ];
    match w {
        Some(w) if w.source == "given" => assumptions.push(format!(
            "win-rate change {:+.1} points, as given",
            w.value * 100.0
        )),
        Some(w) => {
            assumptions.push(format!(
                "win-rate change {:+.1} points, measured: {}",
                w.value * 100.0,
                w.source
            ));
            assumptions.push(
                "the measured change is the outcome model's estimate of each rep closing a gap fully, not an observed effect of coaching: read it as an upper bound".into(),
            );
        }
        None => assumptions.push("no win-rate change: revenue not counted".into()),
    }
    if w.is_some() && volume.is_none() {
        assumptions.push("revenue change needs --deals-per-rep and --deal-size".into());
    }
    if i.gross_margin < 1.0 {
        assumptions.push(format!(
            "revenue counted at a gross margin of {:.0}%",
            i.gross_margin * 100.0
        ));
    }
    Ok(Roi {
        manual,
        ai,
        cost_saving,
        win_rate_change: i.win_rate_change.clone(),
        revenue_change,
        revenue_change_low,
        revenue_change_high,
        payback_months,
        assumptions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> RoiInput {
        RoiInput {
            reps: 100.0,
            managers: 10.0,
            manager_salary: 150_000.0,
            hours_before: 2.0,
            hours_after: 1.0,
            software_per_rep: 500.0,
            win_rate_change: None,
            deals_per_rep: None,
            deal_size: None,
            gross_margin: 1.0,
        }
    }

    /// The figures, exactly.
    #[test]
    fn seed_004s_example_priced_by_the_time_it_takes() {
        let r = roi(&example()).unwrap();
        assert_eq!(r.manual.coaching_cost, 750_000.0);
        assert_eq!(r.manual.manager_time_share, 0.5);
        assert_eq!(r.ai.coaching_cost, 375_000.0);
        assert_eq!(r.ai.software_cost, 50_000.0);
        assert_eq!(r.ai.total_cost, 425_000.0);
        assert_eq!(r.cost_saving, 325_000.0);
        assert_eq!(r.revenue_change, None);
        // 50,000 of software against 375,000 a year of time freed: 1.6 months.
        assert!((r.payback_months.unwrap() - 1.6).abs() < 1e-9);
        let with = roi(&RoiInput {
            win_rate_change: Some(WinRateChange {
                value: 0.03,
                low: None,
                high: None,
                source: "given".into(),
            }),
            deals_per_rep: Some(40.0),
            deal_size: Some(25_000.0),
            ..example()
        })
        .unwrap();
        assert!((with.revenue_change.unwrap() - 3_000_000.0).abs() < 1e-6);
        let months = 12.0 * 50_000.0 / (375_000.0 + 3_000_000.0);
        assert!((with.payback_months.unwrap() - months).abs() < 1e-9);
    }

    #[test]
    fn impossible_inputs_are_refused_by_name() {
        let e = roi(&RoiInput {
            hours_before: 5.0,
            ..example()
        })
        .unwrap_err();
        assert!(
            e.contains("--coaching-hours-before 5") && e.contains("50.0 hours"),
            "{e}"
        );
        let e = roi(&RoiInput {
            managers: 0.0,
            ..example()
        })
        .unwrap_err();
        assert!(e.contains("--managers 0"), "{e}");
    }
}
