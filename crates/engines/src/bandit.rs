//! Message tests: a template's variants tested as a Thompson-sampling bandit
//! (Thompson 1933; Russo et al., "A Tutorial on Thompson Sampling", 2018),
//! every send logged with the probability it had of being chosen, so any
//! other policy can be evaluated later from the logs (inverse propensity
//! scoring, Horvitz and Thompson 1952; doubly robust, Dudík, Langford and
//! Li 2011).
//!
//! A send ends in one of four outcomes, each worth a stated utility: a
//! meeting booked (1), a positive reply (0.3), no reply (0) and a negative
//! reply, "remove me" or an unsubscribe (-0.5): a variant that draws many
//! replies of which many are "remove me" is not a winner. Each variant's
//! outcome shares have a Dirichlet posterior (a uniform prior); Thompson
//! sampling draws the shares of every variant from its posterior and sends
//! the variant whose draw is worth most. No winner is declared before each
//! variant has [`TestRules::min_sends`] sends and the leader's posterior
//! probability of being best reaches [`TestRules::confidence`].

use rand_distr::{Distribution, Gamma};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// How a send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Meeting,
    PositiveReply,
    NoReply,
    /// A negative reply, "remove me", an unsubscribe.
    NegativeReply,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Meeting,
        Outcome::PositiveReply,
        Outcome::NoReply,
        Outcome::NegativeReply,
    ];

    fn index(self) -> usize {
        match self {
            Outcome::Meeting => 0,
            Outcome::PositiveReply => 1,
            Outcome::NoReply => 2,
            Outcome::NegativeReply => 3,
        }
    }
}

/// What each outcome is worth (the bandit's reward), in meetings.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Utilities {
    pub meeting: f64,
    pub positive_reply: f64,
    pub no_reply: f64,
    pub negative_reply: f64,
}

impl Default for Utilities {
    fn default() -> Self {
        Utilities {
            meeting: 1.0,
            positive_reply: 0.3,
            no_reply: 0.0,
            negative_reply: -0.5,
        }
    }
}

impl Utilities {
    fn of(&self, o: Outcome) -> f64 {
        self.as_array()[o.index()]
    }
    fn as_array(&self) -> [f64; 4] {
        [
            self.meeting,
            self.positive_reply,
            self.no_reply,
            self.negative_reply,
        ]
    }
    /// The expected utility of outcome shares `p`.
    pub fn value(&self, p: &[f64; 4]) -> f64 {
        self.as_array().iter().zip(p).map(|(u, x)| u * x).sum()
    }
}

/// When a test may declare a winner.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TestRules {
    /// Sends every variant needs before any winner (the stated sample size).
    pub min_sends: u64,
    /// The leader's posterior probability of being best needed (0.95).
    pub confidence: f64,
    /// Posterior draws used to estimate choice probabilities (4,000).
    pub draws: usize,
    /// The smallest selection probability a variant keeps while no winner
    /// is declared, so that every policy stays evaluable from the logs.
    pub floor: f64,
}

impl Default for TestRules {
    fn default() -> Self {
        TestRules {
            min_sends: 300,
            confidence: 0.95,
            draws: 4_000,
            floor: 0.01,
        }
    }
}

/// One variant's outcomes so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Arm {
    pub name: String,
    /// Sends ending in each outcome, in [`Outcome::ALL`]'s order.
    pub counts: [u64; 4],
}

impl Arm {
    pub fn sends(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// The posterior mean of the outcome shares.
    pub fn mean_shares(&self) -> [f64; 4] {
        let n = self.sends() as f64 + 4.0;
        let mut p = [0.0; 4];
        for (k, c) in self.counts.iter().enumerate() {
            p[k] = (*c as f64 + 1.0) / n;
        }
        p
    }
}

/// A message test: its variants and rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageTest {
    pub arms: Vec<Arm>,
    pub utilities: Utilities,
    pub rules: TestRules,
}

/// The variant to send and the probability it had of being chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Choice {
    pub arm: usize,
    pub propensity: f64,
}

/// A test's state: each variant's probability of being best, and whether
/// a winner can be declared.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    pub arms: Vec<ArmStanding>,
    /// The winner, once the rules allow one.
    pub winner: Option<usize>,
    /// Why there is a winner or not, in words.
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArmStanding {
    pub name: String,
    pub sends: u64,
    /// Posterior mean outcome shares.
    pub meeting_rate: f64,
    pub positive_reply_rate: f64,
    pub negative_reply_rate: f64,
    /// Posterior mean utility per send, and its 90% credible interval.
    pub value: f64,
    pub value_low: f64,
    pub value_high: f64,
    /// Posterior probability of being the best variant.
    pub prob_best: f64,
    /// The probability Thompson sampling sends it next (with the floor).
    pub next_share: f64,
}

/// A seeded random source for the bandit.
pub struct BanditRng(Xoshiro256PlusPlus);

impl BanditRng {
    pub fn new(seed: u64) -> BanditRng {
        BanditRng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }
    /// A uniform draw in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One draw of outcome shares from Dirichlet(counts + 1).
fn draw_shares(rng: &mut BanditRng, counts: &[u64; 4]) -> [f64; 4] {
    let mut g = [0.0; 4];
    let mut total = 0.0;
    for (k, c) in counts.iter().enumerate() {
        let gamma = Gamma::new(*c as f64 + 1.0, 1.0).expect("shape > 0");
        g[k] = gamma.sample(&mut rng.0);
        total += g[k];
    }
    for x in &mut g {
        *x /= total;
    }
    g
}

impl MessageTest {
    pub fn new(names: &[&str], utilities: Utilities, rules: TestRules) -> MessageTest {
        MessageTest {
            arms: names
                .iter()
                .map(|n| Arm {
                    name: n.to_string(),
                    counts: [0; 4],
                })
                .collect(),
            utilities,
            rules,
        }
    }

    /// One Thompson draw: the variant whose sampled value is highest.
    fn thompson(&self, rng: &mut BanditRng) -> usize {
        let mut best = (0, f64::NEG_INFINITY);
        for (i, a) in self.arms.iter().enumerate() {
            let v = self.utilities.value(&draw_shares(rng, &a.counts));
            if v > best.1 {
                best = (i, v);
            }
        }
        best.0
    }

    /// Each variant's posterior probability of being best (the share of
    /// `rules.draws` posterior draws it wins).
    pub fn prob_best(&self, rng: &mut BanditRng) -> Vec<f64> {
        let mut wins = vec![0usize; self.arms.len()];
        for _ in 0..self.rules.draws {
            wins[self.thompson(rng)] += 1;
        }
        wins.iter()
            .map(|&w| w as f64 / self.rules.draws as f64)
            .collect()
    }

    /// The selection probabilities of the next send: each variant's
    /// probability of being best, mixed with a uniform floor
    /// ([`TestRules::floor`] per variant) while no winner is declared; all
    /// on the winner once one is.
    pub fn policy(&self, rng: &mut BanditRng) -> Vec<f64> {
        let pb = self.prob_best(rng);
        self.policy_from(&pb)
    }

    /// [`Self::policy`] from probabilities of being best already drawn.
    fn policy_from(&self, pb: &[f64]) -> Vec<f64> {
        let k = self.arms.len();
        if let Some(w) = self.winner_of(pb) {
            return (0..k).map(|i| if i == w { 1.0 } else { 0.0 }).collect();
        }
        let floor = self.rules.floor.min(1.0 / k as f64);
        pb.iter()
            .map(|p| floor + (1.0 - floor * k as f64) * p)
            .collect()
    }

    /// Chooses the variant of the next send, with its selection
    /// probability (to be logged with the send).
    pub fn choose(&self, rng: &mut BanditRng) -> Choice {
        let p = self.policy(rng);
        let u = rng.f64();
        let mut acc = 0.0;
        for (i, x) in p.iter().enumerate() {
            acc += x;
            if u < acc {
                return Choice {
                    arm: i,
                    propensity: *x,
                };
            }
        }
        let last = p.len() - 1;
        Choice {
            arm: last,
            propensity: p[last],
        }
    }

    /// Records a send's outcome.
    pub fn record(&mut self, arm: usize, outcome: Outcome) {
        self.arms[arm].counts[outcome.index()] += 1;
    }

    fn winner_of(&self, prob_best: &[f64]) -> Option<usize> {
        if self.arms.iter().any(|a| a.sends() < self.rules.min_sends) {
            return None;
        }
        let (i, p) = prob_best
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        (*p >= self.rules.confidence).then_some(i)
    }

    /// Where the test stands.
    pub fn standing(&self, rng: &mut BanditRng) -> Standing {
        let pb = self.prob_best(rng);
        let winner = self.winner_of(&pb);
        let next = self.policy_from(&pb);
        let arms = self
            .arms
            .iter()
            .zip(&pb)
            .zip(&next)
            .map(|((a, &p), &n)| {
                let mut vals: Vec<f64> = (0..1000)
                    .map(|_| self.utilities.value(&draw_shares(rng, &a.counts)))
                    .collect();
                vals.sort_by(f64::total_cmp);
                let m = a.mean_shares();
                ArmStanding {
                    name: a.name.clone(),
                    sends: a.sends(),
                    meeting_rate: m[0],
                    positive_reply_rate: m[1],
                    negative_reply_rate: m[3],
                    value: self.utilities.value(&m),
                    value_low: vals[50],
                    value_high: vals[949],
                    prob_best: p,
                    next_share: n,
                }
            })
            .collect();
        let fewest = self.arms.iter().map(Arm::sends).min().unwrap_or(0);
        let (leader, lp) = pb
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, p)| (i, *p))
            .unwrap_or((0, 0.0));
        let verdict = match winner {
            Some(w) => format!(
                "{} wins: {:.1}% probability of being best, every variant sent at least {} times",
                self.arms[w].name,
                100.0 * pb[w],
                self.rules.min_sends
            ),
            None if fewest < self.rules.min_sends => format!(
                "no winner yet: a variant has {fewest} sends, every variant needs {} (the stated sample size); {} leads with {:.1}%",
                self.rules.min_sends,
                self.arms.get(leader).map_or("", |a| a.name.as_str()),
                100.0 * lp
            ),
            None => format!(
                "no winner yet: {} leads with {:.1}% probability of being best, {:.0}% needed",
                self.arms.get(leader).map_or("", |a| a.name.as_str()),
                100.0 * lp,
                100.0 * self.rules.confidence
            ),
        };
        Standing {
            arms,
            winner,
            verdict,
        }
    }
}

/// One logged send: the variant, its selection probability and its
/// outcome.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LoggedSend {
    pub arm: usize,
    pub propensity: f64,
    pub outcome: Outcome,
}

/// An off-policy estimate of a policy's value per send, with its
/// standard error.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub se: f64,
}

fn mean_se(v: &[f64]) -> Estimate {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Estimate {
        value: m,
        se: (var / n).sqrt(),
    }
}

/// Inverse propensity scoring: the value per send a policy choosing
/// variant `a` with probability `target[a]` would have had, from the logs
/// (unbiased when every logged propensity is the true one and positive
/// wherever the target sends).
pub fn ips(logs: &[LoggedSend], target: &[f64], u: &Utilities) -> Estimate {
    let v: Vec<f64> = logs
        .iter()
        .map(|l| target[l.arm] / l.propensity * u.of(l.outcome))
        .collect();
    mean_se(&v)
}

/// The doubly robust estimate (Dudík et al. 2011): the reward model's
/// value of the target policy (each variant's mean utility in the logs)
/// plus the IPS-weighted residuals; unbiased when either the propensities
/// or the reward model are right, and of lower variance than IPS.
pub fn doubly_robust(logs: &[LoggedSend], target: &[f64], u: &Utilities) -> Estimate {
    let k = target.len();
    let mut sum = vec![0.0; k];
    let mut n = vec![0usize; k];
    for l in logs {
        sum[l.arm] += u.of(l.outcome);
        n[l.arm] += 1;
    }
    let model: Vec<f64> = (0..k)
        .map(|a| if n[a] > 0 { sum[a] / n[a] as f64 } else { 0.0 })
        .collect();
    let direct: f64 = (0..k).map(|a| target[a] * model[a]).sum();
    let v: Vec<f64> = logs
        .iter()
        .map(|l| direct + target[l.arm] / l.propensity * (u.of(l.outcome) - model[l.arm]))
        .collect();
    mean_se(&v)
}

/// One simulated test's truth: each variant's outcome shares.
#[derive(Debug, Clone)]
pub struct TrueVariants {
    pub shares: Vec<[f64; 4]>,
}

impl TrueVariants {
    /// Variants like those of real outbound email (Prior: meetings 0.5-4%
    /// of sends, positive replies 1-8%, negative replies 0.3-3%).
    pub fn draw(rng: &mut BanditRng, k: usize) -> TrueVariants {
        let shares = (0..k)
            .map(|_| {
                let m = 0.005 + 0.035 * rng.f64();
                let p = 0.01 + 0.07 * rng.f64();
                let n = 0.003 + 0.027 * rng.f64();
                [m, p, 1.0 - m - p - n, n]
            })
            .collect();
        TrueVariants { shares }
    }

    fn outcome(&self, rng: &mut BanditRng, arm: usize) -> Outcome {
        let u = rng.f64();
        let mut acc = 0.0;
        for (k, o) in Outcome::ALL.iter().enumerate() {
            acc += self.shares[arm][k];
            if u < acc {
                return *o;
            }
        }
        Outcome::NoReply
    }

    pub fn values(&self, u: &Utilities) -> Vec<f64> {
        self.shares.iter().map(|s| u.value(s)).collect()
    }
}

/// What simulated tests showed ([`simulate`]).
#[derive(Debug, Clone, Serialize)]
pub struct SimulationReport {
    pub tests: usize,
    pub variants: usize,
    pub sends: usize,
    /// Sends between updates of the choice probabilities.
    pub batch: usize,
    pub seed: u64,
    pub rules: TestRules,
    /// Share of tests whose leader at the end (highest probability of
    /// being best) is the truly best variant.
    pub best_found: f64,
    /// Tests that declared a winner, and the share of those that were
    /// right (`None` when none did).
    pub declared: usize,
    pub declared_right: Option<f64>,
    /// Mean regret (utility lost against always sending the truly best
    /// variant), in meeting-equivalents per test (the outcomes' utilities:
    /// a meeting 1, a positive reply 0.3, "remove me" -0.5): the bandit and
    /// a fixed even split of the same sends.
    pub regret_bandit: f64,
    pub regret_even_split: f64,
    /// 1 - bandit regret / even-split regret.
    pub regret_reduction: f64,
    /// Mean absolute error of the off-policy estimates of "always the
    /// truly best variant" from the bandit's logs, against its true value
    /// (utility per send), and the mean true value for scale.
    pub ips_error: f64,
    pub dr_error: f64,
    pub best_value: f64,
}

/// Runs `tests` simulated message tests of `variants` variants (drawn by
/// [`TrueVariants::draw`]) over `sends` sends each, with Thompson sampling
/// against a fixed even split on the same variants, from `seed`.
/// Choice probabilities are re-estimated every `batch` sends (as a system
/// sending in daily batches would), each send drawn from them.
pub fn simulate(
    tests: usize,
    variants: usize,
    sends: usize,
    batch: usize,
    rules: TestRules,
    seed: u64,
) -> SimulationReport {
    let u = Utilities::default();
    let mut found = 0;
    let mut declared = 0;
    let mut declared_right = 0;
    let mut regret_b = 0.0;
    let mut regret_e = 0.0;
    let mut ips_err = 0.0;
    let mut dr_err = 0.0;
    let mut best_total = 0.0;
    for t in 0..tests {
        let mut rng = BanditRng::new(seed.wrapping_add(t as u64 * 7919));
        let truth = TrueVariants::draw(&mut rng, variants);
        let values = truth.values(&u);
        let best = values
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let names: Vec<String> = (0..variants).map(|i| format!("v{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut test = MessageTest::new(&names, u, rules);
        let mut logs = Vec::with_capacity(sends);
        let mut sent = 0;
        while sent < sends {
            let policy = test.policy(&mut rng);
            let n = batch.min(sends - sent);
            let mut outcomes = Vec::with_capacity(n);
            for _ in 0..n {
                let r = rng.f64();
                let mut acc = 0.0;
                let mut arm = variants - 1;
                for (i, p) in policy.iter().enumerate() {
                    acc += p;
                    if r < acc {
                        arm = i;
                        break;
                    }
                }
                let o = truth.outcome(&mut rng, arm);
                regret_b += values[best] - values[arm];
                logs.push(LoggedSend {
                    arm,
                    propensity: policy[arm],
                    outcome: o,
                });
                outcomes.push((arm, o));
            }
            for (arm, o) in outcomes {
                test.record(arm, o);
            }
            sent += n;
        }
        // The even split: each variant sends/k times (its regret is exact).
        regret_e += (0..sends)
            .map(|i| values[best] - values[i % variants])
            .sum::<f64>();
        let standing = test.standing(&mut rng);
        let leader = standing
            .arms
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.prob_best.total_cmp(&b.1.prob_best))
            .map(|(i, _)| i)
            .unwrap_or(0);
        found += usize::from(leader == best);
        if let Some(w) = standing.winner {
            declared += 1;
            declared_right += usize::from(w == best);
        }
        let target: Vec<f64> = (0..variants)
            .map(|i| if i == best { 1.0 } else { 0.0 })
            .collect();
        ips_err += (ips(&logs, &target, &u).value - values[best]).abs();
        dr_err += (doubly_robust(&logs, &target, &u).value - values[best]).abs();
        best_total += values[best];
    }
    let n = tests.max(1) as f64;
    SimulationReport {
        tests,
        variants,
        sends,
        batch,
        seed,
        rules,
        best_found: found as f64 / n,
        declared,
        declared_right: (declared > 0).then(|| declared_right as f64 / declared as f64),
        regret_bandit: regret_b / n,
        regret_even_split: regret_e / n,
        regret_reduction: 1.0 - regret_b / regret_e.max(1e-12),
        ips_error: ips_err / n,
        dr_error: dr_err / n,
        best_value: best_total / n,
    }
}

/// pipewise's bandit as the simulator's sending system
/// (`simulate --messages bandit`): each week, each test's selection
/// probabilities are [`MessageTest::policy`] over the outcomes known by the
/// week's start (the default [`Utilities`] and [`TestRules`]).
pub struct SimBandit {
    rng: BanditRng,
    rules: TestRules,
}

impl SimBandit {
    /// A bandit drawing its posterior samples from `seed`'s stream.
    pub fn new(seed: u64) -> SimBandit {
        SimBandit {
            rng: BanditRng::new(seed ^ 0x6d65_7373_6167_6573),
            rules: TestRules::default(),
        }
    }
}

impl pipewise_sim::policy::MessagePolicy for SimBandit {
    fn probabilities(&mut self, _step: usize, variants: usize, known: &[(usize, u8)]) -> Vec<f64> {
        let names: Vec<String> = (0..variants).map(|v| v.to_string()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut test = MessageTest::new(&refs, Utilities::default(), self.rules);
        for &(v, class) in known {
            if let Some(&o) = Outcome::ALL.get(usize::from(class))
                && v < variants
            {
                test.record(v, o);
            }
        }
        test.policy(&mut self.rng)
    }
    fn name(&self) -> &str {
        "Thompson sampling"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clearly_better_variant_wins_and_gets_the_sends() {
        let mut t = MessageTest::new(&["a", "b"], Utilities::default(), TestRules::default());
        for _ in 0..40 {
            t.record(0, Outcome::Meeting);
        }
        for _ in 0..960 {
            t.record(0, Outcome::NoReply);
        }
        for _ in 0..5 {
            t.record(1, Outcome::Meeting);
        }
        for _ in 0..995 {
            t.record(1, Outcome::NoReply);
        }
        let mut rng = BanditRng::new(1);
        let s = t.standing(&mut rng);
        assert_eq!(s.winner, Some(0), "{}", s.verdict);
        assert!(s.arms[0].prob_best > 0.99);
        let c = t.choose(&mut rng);
        assert_eq!((c.arm, c.propensity), (0, 1.0));
    }

    #[test]
    fn no_winner_below_the_sample_size_and_remove_me_counts_against() {
        let mut t = MessageTest::new(&["a", "b"], Utilities::default(), TestRules::default());
        // "a" gets more replies, but most of them are "remove me".
        for _ in 0..30 {
            t.record(0, Outcome::NegativeReply);
        }
        for _ in 0..10 {
            t.record(0, Outcome::PositiveReply);
        }
        for _ in 0..160 {
            t.record(0, Outcome::NoReply);
        }
        for _ in 0..12 {
            t.record(1, Outcome::PositiveReply);
        }
        for _ in 0..188 {
            t.record(1, Outcome::NoReply);
        }
        let mut rng = BanditRng::new(2);
        let s = t.standing(&mut rng);
        assert_eq!(s.winner, None);
        assert!(s.verdict.contains("needs 300"), "{}", s.verdict);
        assert!(s.arms[1].prob_best > 0.9, "{:?}", s.arms[1]);
        // Every variant keeps at least the floor.
        let p = t.policy(&mut rng);
        assert!(p.iter().all(|&x| x >= 0.01) && (p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    /// The targets on seeds not looked at while building it: the
    /// truly best variant leads at the end of >= 90% of tests, declared
    /// winners are right, and the bandit loses >= 30% less than an even
    /// split of the same sends.
    #[test]
    fn simulated_tests_find_the_best_variant_and_beat_an_even_split() {
        let r = simulate(200, 3, 20_000, 100, TestRules::default(), 101);
        assert!(r.best_found >= 0.90, "{r:?}");
        assert!(
            r.declared > 50 && r.declared_right.unwrap() >= 0.95,
            "{r:?}"
        );
        assert!(r.regret_reduction >= 0.30, "{r:?}");
        // The logs evaluate a policy the bandit did not follow.
        assert!(r.dr_error < 0.25 * r.best_value, "{r:?}");
    }

    #[test]
    fn off_policy_estimates_recover_a_known_value() {
        // Uniform logging over two variants with known values.
        let u = Utilities::default();
        let truth = TrueVariants {
            shares: vec![[0.04, 0.02, 0.93, 0.01], [0.01, 0.02, 0.96, 0.01]],
        };
        let mut rng = BanditRng::new(3);
        let logs: Vec<LoggedSend> = (0..200_000)
            .map(|i| {
                let arm = i % 2;
                LoggedSend {
                    arm,
                    propensity: 0.5,
                    outcome: truth.outcome(&mut rng, arm),
                }
            })
            .collect();
        let v = truth.values(&u);
        for est in [
            ips(&logs, &[1.0, 0.0], &u),
            doubly_robust(&logs, &[1.0, 0.0], &u),
        ] {
            assert!(
                (est.value - v[0]).abs() < 3.0 * est.se + 1e-3,
                "{est:?} vs {}",
                v[0]
            );
        }
    }
}
