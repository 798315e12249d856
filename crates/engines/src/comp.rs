//! Incentive plans: what a compensation plan pays each rep for a period's
//! performance, what it costs, and how pay follows attainment, for one plan
//! or two side by side (`pipewise comp simulate`).
//!
//! A plan (TOML, [`Plan`]) sets on-target earnings (OTE) and the base /
//! variable mix; the variable part is split over measures (bookings, new
//! logos) by weight, each with a quota. A measure's payout is its target
//! variable pay times a multiple of attainment read off the plan's tiers:
//! each tier pays `rate` per unit of attainment within its band (rates
//! below 1 decelerate, above 1 accelerate), so the payout curve is
//! continuous and piecewise linear, up to the cap. SPIFFs pay a fixed
//! amount per unit (per new logo, per deal); a draw guarantees a minimum
//! variable pay per month, recoverable (an advance, owed back) or not.
//! Quotas and OTE are annual and prorated to the period.
//!
//! Behaviour (switchable, stated in every report): by default performance
//! is what it was. With an effort elasticity `e`, a rep under the compared
//! plan is assumed to book `1 + e × (r_B / r_A − 1)` times as much, where
//! `r_A` and `r_B` are the marginal pay rates (pay per extra unit of the
//! measure) of the plan of record and of the compared plan at the rep's
//! attainment, bounded to ±50%: a stated assumption, not a measurement.

use serde::{Deserialize, Serialize};

/// What a measure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Won deals' amounts (corporate currency).
    Bookings,
    /// Won deals on accounts with no earlier won deal.
    NewLogos,
    /// Won deals, counted.
    Deals,
    /// The share (0-1) of the rep's recommended next-best actions acted on
    /// within their window, over those whose window closed in the period
    /// (`pipewise adherence`). Its quota is a share, not prorated; a rep
    /// with no such recommendation is paid at quota on it.
    Adherence,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Bookings => "bookings",
            Metric::NewLogos => "new_logos",
            Metric::Deals => "deals",
            Metric::Adherence => "adherence",
        }
    }
}

/// One measure of a plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Measure {
    pub metric: Metric,
    /// Share of the variable pay (the weights add up to 1).
    pub weight: f64,
    /// Annual quota, in the metric's unit.
    pub quota: f64,
}

/// A band of attainment and the payout rate within it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Attainment where the band starts (0.0, 0.5, 1.0...).
    pub from: f64,
    /// Payout per unit of attainment in the band, as a multiple of the
    /// target rate (0.5 decelerates, 2.0 accelerates).
    pub rate: f64,
}

/// A fixed amount per unit of a metric.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Spiff {
    pub name: String,
    pub metric: Metric,
    pub per_unit: f64,
}

/// A guaranteed minimum variable pay per month.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Draw {
    pub monthly: f64,
    /// Recoverable: an advance against variable pay, owed back when pay
    /// falls short. Non-recoverable: a guarantee the company bears.
    pub recoverable: bool,
}

/// A compensation plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CompPlan))]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    /// Annual on-target earnings per rep.
    pub ote: f64,
    /// Share of OTE paid as base salary (0-1).
    pub base_share: f64,
    pub measures: Vec<Measure>,
    /// Tiers by attainment (default: one, rate 1 from 0: pay in proportion).
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Highest variable payout, as a multiple of target variable pay.
    pub cap: Option<f64>,
    #[serde(default)]
    pub spiffs: Vec<Spiff>,
    pub draw: Option<Draw>,
}

impl Plan {
    /// Reads and checks a plan. Errors name what is wrong: weights not
    /// adding up to 1, a quota or OTE not positive, a base share outside
    /// 0-1, tiers not starting at 0 or not increasing, a negative rate or
    /// cap.
    pub fn from_toml(text: &str) -> anyhow::Result<Plan> {
        let p: Plan = toml::from_str(text)?;
        p.check()?;
        Ok(p)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.ote > 0.0,
            "ote: expected a positive amount, got {}",
            self.ote
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.base_share),
            "base_share: expected a share from 0 to 1, got {}",
            self.base_share
        );
        anyhow::ensure!(
            !self.measures.is_empty(),
            "measures: a plan needs at least one"
        );
        let w: f64 = self.measures.iter().map(|m| m.weight).sum();
        anyhow::ensure!(
            (w - 1.0).abs() < 1e-6,
            "measures: the weights add up to {w}, expected 1"
        );
        for m in &self.measures {
            anyhow::ensure!(
                m.metric != Metric::Adherence || m.quota <= 1.0,
                "measure adherence: its quota is a share of recommended actions acted on, from 0 to 1, not {}",
                m.quota
            );
            anyhow::ensure!(
                m.quota > 0.0 && m.weight >= 0.0,
                "measure {}: expected a positive quota and a weight from 0, got quota {} and weight {}",
                m.metric.name(),
                m.quota,
                m.weight
            );
        }
        if let Some(first) = self.tiers.first() {
            anyhow::ensure!(
                first.from == 0.0,
                "tiers: the first must start at 0, not {}",
                first.from
            );
        }
        for w in self.tiers.windows(2) {
            anyhow::ensure!(
                w[1].from > w[0].from,
                "tiers: each must start above the one before ({} after {})",
                w[1].from,
                w[0].from
            );
        }
        anyhow::ensure!(
            self.tiers.iter().all(|t| t.rate >= 0.0),
            "tiers: rates must be 0 or more"
        );
        if let Some(c) = self.cap {
            anyhow::ensure!(c > 0.0, "cap: expected a positive multiple, got {c}");
        }
        for sp in &self.spiffs {
            anyhow::ensure!(
                sp.metric != Metric::Adherence,
                "spiff {}: a SPIFF pays per unit; adherence is a share, pay it as a measure",
                sp.name
            );
            anyhow::ensure!(
                sp.per_unit >= 0.0,
                "spiff {}: expected an amount per unit from 0, got {}",
                sp.name,
                sp.per_unit
            );
        }
        if let Some(d) = &self.draw {
            anyhow::ensure!(d.monthly >= 0.0, "draw: expected a monthly amount from 0");
        }
        Ok(())
    }

    fn tiers_or_default(&self) -> Vec<Tier> {
        if self.tiers.is_empty() {
            vec![Tier {
                from: 0.0,
                rate: 1.0,
            }]
        } else {
            self.tiers.clone()
        }
    }

    /// The payout multiple of target variable pay at attainment `a`: the
    /// integral of the tiers' rates from 0 to `a`, capped.
    pub fn multiple(&self, a: f64) -> f64 {
        let tiers = self.tiers_or_default();
        let a = a.max(0.0);
        let mut m = 0.0;
        for (i, t) in tiers.iter().enumerate() {
            let end = tiers.get(i + 1).map_or(f64::INFINITY, |n| n.from);
            if a > t.from {
                m += t.rate * (a.min(end) - t.from);
            }
        }
        self.cap.map_or(m, |c| m.min(c))
    }

    /// The payout rate at attainment `a` (the slope of [`Self::multiple`]:
    /// 0 past the cap).
    pub fn rate_at(&self, a: f64) -> f64 {
        if self.cap.is_some_and(|c| self.multiple(a) >= c - 1e-12) {
            return 0.0;
        }
        let tiers = self.tiers_or_default();
        tiers
            .iter()
            .rev()
            .find(|t| a >= t.from)
            .map_or(0.0, |t| t.rate)
    }
}

/// One rep's performance in the period.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Performance {
    pub rep_id: String,
    pub rep: String,
    pub bookings: f64,
    pub new_logos: f64,
    pub deals: f64,
    /// Adherence in the period; `None` without a recommendation whose
    /// window closed in it.
    pub adherence: Option<f64>,
}

impl Performance {
    fn get(&self, m: Metric) -> f64 {
        match m {
            Metric::Bookings => self.bookings,
            Metric::NewLogos => self.new_logos,
            Metric::Deals => self.deals,
            Metric::Adherence => self.adherence.unwrap_or(0.0),
        }
    }

    /// Attainment of measure `m` (1 = quota) when a year's quota is
    /// prorated by `share`: adherence against its quota as a share (at
    /// quota without recommendations), the others against the prorated
    /// quota.
    fn attainment(&self, m: &Measure, share: f64) -> f64 {
        match m.metric {
            Metric::Adherence => self.adherence.map_or(1.0, |a| a / m.quota),
            _ => self.get(m.metric) / (m.quota * share),
        }
    }
}

/// The effort-response assumption.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Behaviour {
    /// Performance is what it was under either plan.
    None,
    /// Performance moves with the marginal pay rate (see the module doc).
    Elasticity { elasticity: f64 },
}

/// One rep's pay under a plan.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepPay {
    pub rep_id: String,
    pub rep: String,
    /// The performance paid on (after the behaviour assumption).
    pub bookings: f64,
    pub new_logos: f64,
    pub deals: f64,
    /// The share of recommended actions acted on (not moved by the
    /// behaviour assumption).
    pub adherence: Option<f64>,
    /// Attainment of each measure (1 = quota), in the plan's order.
    pub attainment: Vec<f64>,
    /// Weighted attainment over the measures.
    pub weighted_attainment: f64,
    pub base: f64,
    pub variable: f64,
    pub spiffs: f64,
    /// Paid under a non-recoverable draw beyond the variable earned.
    pub draw_guarantee: f64,
    /// Advanced under a recoverable draw beyond the variable earned
    /// (owed back; not a cost).
    pub draw_owed: f64,
    pub total: f64,
    /// Total pay over prorated OTE.
    pub pay_to_ote: f64,
}

/// Pay by attainment band.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Band {
    pub band: String,
    pub reps: usize,
    pub mean_attainment: f64,
    /// Mean total pay over prorated OTE.
    pub mean_pay_to_ote: f64,
}

/// A plan applied to a period's performance.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanResult {
    pub plan: String,
    /// The payout multiple of target variable pay at 100% attainment (1:
    /// the plan pays target at quota).
    pub multiple_at_quota: f64,
    pub reps: Vec<RepPay>,
    /// Total pay (base, variable, SPIFFs, non-recoverable draw).
    pub cost: f64,
    pub base: f64,
    pub variable: f64,
    pub spiffs: f64,
    /// Paid under non-recoverable draws beyond the variable earned (in
    /// `cost`), and advanced under recoverable draws (owed back, not in
    /// `cost`).
    pub draw_guarantee: f64,
    pub draw_owed: f64,
    pub bookings: f64,
    /// Cost over bookings.
    pub cost_of_sales: f64,
    pub at_or_above_quota: usize,
    /// Gini coefficient of total pay (0: all equal).
    pub pay_gini: f64,
    /// Highest decile's total pay over the lowest's (p90 / p10).
    pub pay_p90_p10: Option<f64>,
    pub by_attainment: Vec<Band>,
}

/// Applies `plan` to `perf` over a period of `months`.
pub fn apply(plan: &Plan, perf: &[Performance], months: f64) -> PlanResult {
    let share = months / 12.0;
    let ote = plan.ote * share;
    let target_var = ote * (1.0 - plan.base_share);
    let mut reps: Vec<RepPay> = perf
        .iter()
        .map(|p| {
            let attainment: Vec<f64> = plan
                .measures
                .iter()
                .map(|m| p.attainment(m, share))
                .collect();
            let variable: f64 = plan
                .measures
                .iter()
                .zip(&attainment)
                .map(|(m, a)| target_var * m.weight * plan.multiple(*a))
                .sum();
            let spiffs: f64 = plan
                .spiffs
                .iter()
                .map(|s| s.per_unit * p.get(s.metric))
                .sum::<f64>()
                + 0.0; // an empty sum is -0.0
            let (guarantee, owed) = match &plan.draw {
                Some(d) => {
                    let floor = d.monthly * months;
                    let short = (floor - variable).max(0.0);
                    if d.recoverable {
                        (0.0, short)
                    } else {
                        (short, 0.0)
                    }
                }
                None => (0.0, 0.0),
            };
            let base = ote * plan.base_share;
            let total = base + variable + spiffs + guarantee;
            RepPay {
                rep_id: p.rep_id.clone(),
                rep: p.rep.clone(),
                bookings: p.bookings,
                new_logos: p.new_logos,
                deals: p.deals,
                adherence: p.adherence,
                weighted_attainment: plan
                    .measures
                    .iter()
                    .zip(&attainment)
                    .map(|(m, a)| m.weight * a)
                    .sum(),
                attainment,
                base,
                variable,
                spiffs,
                draw_guarantee: guarantee,
                draw_owed: owed,
                total,
                pay_to_ote: total / ote,
            }
        })
        .collect();
    reps.sort_by(|a, b| b.total.total_cmp(&a.total).then(a.rep_id.cmp(&b.rep_id)));
    let sum = |f: &dyn Fn(&RepPay) -> f64| reps.iter().map(f).sum::<f64>() + 0.0;
    let cost = sum(&|r| r.total);
    let bookings = sum(&|r| r.bookings);
    let mut pays: Vec<f64> = reps.iter().map(|r| r.total).collect();
    pays.sort_by(f64::total_cmp);
    let bands = [
        ("under 50%", 0.0, 0.5),
        ("50-80%", 0.5, 0.8),
        ("80-100%", 0.8, 1.0),
        ("100-120%", 1.0, 1.2),
        ("120-150%", 1.2, 1.5),
        ("150% and over", 1.5, f64::INFINITY),
    ];
    let by_attainment = bands
        .iter()
        .filter_map(|(name, lo, hi)| {
            let in_band: Vec<&RepPay> = reps
                .iter()
                .filter(|r| r.weighted_attainment >= *lo && r.weighted_attainment < *hi)
                .collect();
            (!in_band.is_empty()).then(|| Band {
                band: name.to_string(),
                reps: in_band.len(),
                mean_attainment: in_band.iter().map(|r| r.weighted_attainment).sum::<f64>()
                    / in_band.len() as f64,
                mean_pay_to_ote: in_band.iter().map(|r| r.pay_to_ote).sum::<f64>()
                    / in_band.len() as f64,
            })
        })
        .collect();
    PlanResult {
        plan: plan.name.clone(),
        multiple_at_quota: plan.multiple(1.0),
        cost,
        base: sum(&|r| r.base),
        variable: sum(&|r| r.variable),
        spiffs: sum(&|r| r.spiffs),
        draw_guarantee: sum(&|r| r.draw_guarantee),
        draw_owed: sum(&|r| r.draw_owed),
        bookings,
        cost_of_sales: if bookings > 0.0 {
            cost / bookings
        } else {
            f64::NAN
        },
        at_or_above_quota: reps.iter().filter(|r| r.weighted_attainment >= 1.0).count(),
        pay_gini: gini(&pays),
        pay_p90_p10: {
            let q = |p: f64| pays[((pays.len() - 1) as f64 * p).round() as usize];
            (pays.len() >= 10 && q(0.1) > 0.0).then(|| q(0.9) / q(0.1))
        },
        by_attainment,
        reps,
    }
}

/// The Gini coefficient of `sorted` (ascending, non-negative).
fn gini(sorted: &[f64]) -> f64 {
    let n = sorted.len() as f64;
    let total: f64 = sorted.iter().sum();
    if sorted.len() < 2 || total <= 0.0 {
        return 0.0;
    }
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * x)
        .sum();
    ((2.0 * weighted) / (n * total) - (n + 1.0) / n).max(0.0)
}

/// Performance under `plan_b` when reps were paid under `plan_a`, by the
/// behaviour assumption: each measure's actual scaled by the response to
/// the change in the marginal pay rate at the rep's attainment.
pub fn respond(
    plan_a: &Plan,
    plan_b: &Plan,
    perf: &[Performance],
    months: f64,
    behaviour: Behaviour,
) -> Vec<Performance> {
    let Behaviour::Elasticity { elasticity } = behaviour else {
        return perf.to_vec();
    };
    let share = months / 12.0;
    // The marginal rate of a metric: pay per unit at the rep's attainment,
    // over every measure counting it (and SPIFFs).
    let rate = |plan: &Plan, p: &Performance, metric: Metric| -> f64 {
        let var = plan.ote * share * (1.0 - plan.base_share);
        let measures: f64 = plan
            .measures
            .iter()
            .filter(|m| m.metric == metric)
            .map(|m| {
                let q = m.quota * share;
                var * m.weight * plan.rate_at(p.attainment(m, share)) / q
            })
            .sum();
        let spiffs: f64 = plan
            .spiffs
            .iter()
            .filter(|s| s.metric == metric)
            .map(|s| s.per_unit)
            .sum();
        measures + spiffs
    };
    let factor = |p: &Performance, m: Metric| -> f64 {
        let (ra, rb) = (rate(plan_a, p, m), rate(plan_b, p, m));
        if ra <= 0.0 {
            return 1.0;
        }
        (1.0 + elasticity * (rb / ra - 1.0)).clamp(0.5, 1.5)
    };
    perf.iter()
        .map(|p| Performance {
            rep_id: p.rep_id.clone(),
            rep: p.rep.clone(),
            bookings: p.bookings * factor(p, Metric::Bookings),
            new_logos: p.new_logos * factor(p, Metric::NewLogos),
            deals: p.deals * factor(p, Metric::Deals),
            adherence: p.adherence,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::from_toml(
            r#"
name = "AE"
ote = 200000
base_share = 0.5
cap = 3.0
[[measures]]
metric = "bookings"
weight = 1.0
quota = 1000000
[[tiers]]
from = 0.0
rate = 1.0
[[tiers]]
from = 1.0
rate = 2.0
"#,
        )
        .unwrap()
    }

    fn rep(id: &str, bookings: f64) -> Performance {
        Performance {
            rep_id: id.into(),
            rep: id.into(),
            bookings,
            new_logos: 0.0,
            deals: 0.0,
            adherence: None,
        }
    }

    /// An adherence measure: attainment is the share over its quota, not
    /// prorated; a rep without recommendations is paid at quota on it;
    /// the quota must be a share and a SPIFF cannot pay on it.
    #[test]
    fn adherence_is_paid_as_a_share_of_its_quota() {
        let mut p = plan();
        p.measures = vec![
            Measure {
                metric: Metric::Bookings,
                weight: 0.8,
                quota: 1_000_000.0,
            },
            Measure {
                metric: Metric::Adherence,
                weight: 0.2,
                quota: 0.8,
            },
        ];
        p.spiffs.clear();
        p.check().unwrap();
        let mut a = rep("a", 500_000.0);
        a.adherence = Some(0.4);
        let b = rep("b", 500_000.0);
        // Half a year: bookings at quota (500k of a prorated 1M), adherence
        // at half its quota (0.4 of 0.8) for a, at quota for b (none).
        let r = apply(&p, &[a, b], 6.0);
        let pay = |id: &str| r.reps.iter().find(|x| x.rep_id == id).unwrap().clone();
        assert_eq!(pay("a").attainment, vec![1.0, 0.5]);
        assert_eq!(pay("b").attainment, vec![1.0, 1.0]);
        let target_var = 0.5 * p.ote * (1.0 - p.base_share);
        let want_a = target_var * (0.8 * p.multiple(1.0) + 0.2 * p.multiple(0.5));
        assert!((pay("a").variable - want_a).abs() < 1e-6, "{:?}", pay("a"));
        assert!(pay("b").variable > pay("a").variable);
        p.measures[1].quota = 80.0;
        assert!(p.check().unwrap_err().to_string().contains("from 0 to 1"));
        p.measures[1].quota = 0.8;
        p.spiffs.push(Spiff {
            name: "follow".into(),
            metric: Metric::Adherence,
            per_unit: 100.0,
        });
        assert!(p.check().is_err());
    }

    #[test]
    fn tiers_accelerate_and_the_cap_holds() {
        let p = plan();
        assert!((p.multiple(0.4) - 0.4).abs() < 1e-12);
        assert!((p.multiple(1.5) - 2.0).abs() < 1e-12);
        assert!((p.multiple(5.0) - 3.0).abs() < 1e-12);
        assert_eq!(p.rate_at(0.5), 1.0);
        assert_eq!(p.rate_at(1.2), 2.0);
        assert_eq!(p.rate_at(5.0), 0.0);
        let r = apply(&p, &[rep("a", 1_500_000.0), rep("b", 400_000.0)], 12.0);
        let a = r.reps.iter().find(|x| x.rep_id == "a").unwrap();
        assert!((a.variable - 200_000.0).abs() < 1e-6, "{a:?}");
        assert!((a.total - 300_000.0).abs() < 1e-6);
        let b = r.reps.iter().find(|x| x.rep_id == "b").unwrap();
        assert!((b.total - 140_000.0).abs() < 1e-6, "{b:?}");
        assert!((r.cost - 440_000.0).abs() < 1e-6);
        assert!((r.cost_of_sales - 440_000.0 / 1_900_000.0).abs() < 1e-12);
        assert_eq!(r.at_or_above_quota, 1);
        // Half a year: quota and OTE prorated.
        let h = apply(&p, &[rep("a", 500_000.0)], 6.0);
        assert!(
            (h.reps[0].total - 100_000.0).abs() < 1e-6,
            "{:?}",
            h.reps[0]
        );
    }

    #[test]
    fn draws_and_spiffs() {
        let mut p = plan();
        p.spiffs.push(Spiff {
            name: "logo".into(),
            metric: Metric::NewLogos,
            per_unit: 1000.0,
        });
        p.draw = Some(Draw {
            monthly: 5000.0,
            recoverable: false,
        });
        let mut low = rep("a", 300_000.0);
        low.new_logos = 3.0;
        let r = apply(&p, &[low.clone()], 12.0);
        // Variable 30,000 against a 60,000 guarantee.
        assert!((r.reps[0].draw_guarantee - 30_000.0).abs() < 1e-6);
        assert!((r.reps[0].total - (100_000.0 + 30_000.0 + 3_000.0 + 30_000.0)).abs() < 1e-6);
        p.draw = Some(Draw {
            monthly: 5000.0,
            recoverable: true,
        });
        let r = apply(&p, &[low], 12.0);
        assert!((r.reps[0].draw_owed - 30_000.0).abs() < 1e-6);
        assert!((r.reps[0].total - 133_000.0).abs() < 1e-6);
    }

    #[test]
    fn plans_are_checked_and_effort_follows_the_marginal_rate() {
        assert!(Plan::from_toml("name = \"x\"\note = 1\nbase_share = 0.5\n[[measures]]\nmetric = \"bookings\"\nweight = 0.7\nquota = 1\n").unwrap_err().to_string().contains("add up to 0.7"));
        assert!(Plan::from_toml("name = \"x\"\note = 1\nbase_share = 0.5\nbogus = 1\n[[measures]]\nmetric = \"bookings\"\nweight = 1\nquota = 1\n").is_err());
        let a = plan();
        let mut b = plan();
        b.tiers[1].rate = 3.0;
        let perf = [rep("over", 1_200_000.0), rep("under", 500_000.0)];
        let out = respond(
            &a,
            &b,
            &perf,
            12.0,
            Behaviour::Elasticity { elasticity: 0.2 },
        );
        // Above quota the marginal rate rises 2 -> 3: +10% at e = 0.2.
        assert!((out[0].bookings - 1_320_000.0).abs() < 1e-6, "{:?}", out[0]);
        assert_eq!(out[1].bookings, 500_000.0);
        assert_eq!(
            respond(&a, &b, &perf, 12.0, Behaviour::None)[0].bookings,
            1_200_000.0
        );
    }
}
