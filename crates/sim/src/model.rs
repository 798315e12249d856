//! The organisation and market: regions, teams, reps with latent skills and
//! forecast bias, segments, products, accounts and contacts. Everything here
//! is drawn once per run, before any deal.

use serde::Serialize;

use crate::rng::Rng;
use crate::time::{self, DAY, days_from_civil};
use crate::{Config, STREAM_ACCOUNT, STREAM_ORG};

pub const SKILLS: [&str; 7] = [
    "prospecting",
    "discovery",
    "objection_handling",
    "closing",
    "product_knowledge",
    "follow_up",
    "response_speed",
];
pub const PROSPECTING: usize = 0;
pub const DISCOVERY: usize = 1;
pub const OBJECTION_HANDLING: usize = 2;
pub const CLOSING: usize = 3;
pub const PRODUCT_KNOWLEDGE: usize = 4;
pub const FOLLOW_UP: usize = 5;
pub const RESPONSE_SPEED: usize = 6;

pub const REGIONS: [(&str, &[&str]); 4] = [
    ("North America East", &["United States", "Canada"]),
    ("North America West", &["United States", "Mexico"]),
    (
        "EMEA",
        &[
            "United Kingdom",
            "Germany",
            "France",
            "Netherlands",
            "Spain",
            "Sweden",
        ],
    ),
    ("APAC", &["Australia", "Japan", "Singapore", "India"]),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bias {
    Accurate,
    Optimistic,
    Sandbagging,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rep {
    pub id: String,
    pub name: String,
    pub email: String,
    pub team: usize,
    pub region: usize,
    pub manager_id: String,
    /// Midnight of the hire date (may fall inside the simulated window: a new hire ramps).
    pub hired: i64,
    /// Latent skills on a common z-scale, in the order of [`SKILLS`].
    pub skills: [f64; 7],
    pub bias: Bias,
    /// Probability that an entered stage or category is off by one in the bias's direction.
    pub bias_strength: f64,
    /// Extra deal strength in each segment (some reps win more in some segments).
    pub affinity: Vec<f64>,
    /// Holidays `[start, end)` (epoch seconds), in order; empty unless
    /// [`Config::absences`].
    pub away: Vec<(i64, i64)>,
}

impl Rep {
    /// 0.3 at hire rising to 1 after six months.
    pub fn ramp(&self, t: i64) -> f64 {
        let months = (t - self.hired) as f64 / (30.0 * DAY as f64);
        (0.3 + 0.7 * months / 6.0).clamp(0.3, 1.0)
    }
    /// A skill as it shows at time `t` (new hires are not yet at their level).
    pub fn skill(&self, k: usize, t: i64) -> f64 {
        self.skills[k] - 1.0 * (1.0 - self.ramp(t))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub region: usize,
    pub manager_id: String,
    pub manager_name: String,
}

pub struct Segment {
    pub id: &'static str,
    pub name: &'static str,
    pub weight: f64,
    pub industries: &'static [&'static str],
    /// Probabilities of small (10-200), mid (200-2,000), enterprise (2,000+).
    pub size: [f64; 3],
    pub tech_maturity: &'static str,
    pub growth: &'static str,
    /// Propensity to buy each product (index into [`PRODUCTS`]).
    pub product_need: [f64; 6],
    /// Which objections buyers in this segment raise: price, timing, competitor, authority, need, status quo.
    pub objections: [f64; 6],
    /// Multiplier of stage durations.
    pub cycle: f64,
    /// Offset of deal strength.
    pub base: f64,
}

pub const SEGMENTS: [Segment; 6] = [
    Segment {
        id: "digital_scaleup",
        name: "Digital-native scale-ups",
        weight: 0.18,
        industries: &["software", "internet", "fintech"],
        size: [0.25, 0.65, 0.10],
        tech_maturity: "high",
        growth: "growing",
        product_need: [3.0, 2.5, 0.5, 0.5, 0.3, 1.0],
        objections: [1.0, 0.6, 1.6, 0.5, 0.6, 0.4],
        cycle: 0.8,
        base: 0.35,
    },
    Segment {
        id: "enterprise_incumbent",
        name: "Enterprise incumbents",
        weight: 0.14,
        industries: &["banking", "insurance", "manufacturing"],
        size: [0.0, 0.25, 0.75],
        tech_maturity: "medium",
        growth: "stable",
        product_need: [1.0, 1.0, 0.1, 3.0, 1.5, 1.5],
        objections: [0.8, 1.0, 1.0, 1.8, 0.4, 1.2],
        cycle: 1.6,
        base: -0.2,
    },
    Segment {
        id: "smb_price_sensitive",
        name: "Price-sensitive small businesses",
        weight: 0.26,
        industries: &["retail", "professional services", "hospitality"],
        size: [0.85, 0.15, 0.0],
        tech_maturity: "low",
        growth: "stable",
        product_need: [0.6, 0.2, 3.0, 0.0, 0.1, 0.4],
        objections: [2.4, 0.8, 0.8, 0.3, 1.0, 0.8],
        cycle: 0.6,
        base: 0.0,
    },
    Segment {
        id: "regulated_health",
        name: "Regulated healthcare",
        weight: 0.14,
        industries: &["healthcare", "pharmaceuticals", "medical devices"],
        size: [0.15, 0.55, 0.30],
        tech_maturity: "medium",
        growth: "growing",
        product_need: [1.5, 0.8, 0.3, 1.2, 2.5, 0.8],
        objections: [0.7, 0.8, 0.5, 1.6, 0.5, 1.0],
        cycle: 1.3,
        base: 0.1,
    },
    Segment {
        id: "public_education",
        name: "Public sector and education",
        weight: 0.12,
        industries: &["government", "education", "non-profit"],
        size: [0.2, 0.6, 0.2],
        tech_maturity: "low",
        growth: "declining",
        product_need: [1.2, 0.3, 1.5, 0.4, 0.8, 0.6],
        objections: [1.2, 2.0, 0.4, 1.2, 0.6, 1.4],
        cycle: 1.5,
        base: -0.35,
    },
    Segment {
        id: "industrial_moderniser",
        name: "Industrial modernisers",
        weight: 0.16,
        industries: &["manufacturing", "logistics", "energy"],
        size: [0.3, 0.5, 0.2],
        tech_maturity: "low",
        growth: "growing",
        product_need: [2.0, 1.2, 0.8, 0.8, 0.3, 1.2],
        objections: [1.0, 1.0, 0.8, 0.8, 1.4, 1.6],
        cycle: 1.1,
        base: 0.05,
    },
];

pub const OBJECTIONS: [&str; 6] = [
    "price",
    "timing",
    "competitor",
    "authority",
    "need",
    "status_quo",
];

pub struct Product {
    pub id: &'static str,
    pub name: &'static str,
    pub family: &'static str,
    pub list_price: f64,
    /// Sold per seat band (amount scales with company size) or flat.
    pub per_size: bool,
    pub subscription: bool,
}

pub const PRODUCTS: [Product; 6] = [
    Product {
        id: "CORE",
        name: "Core Platform",
        family: "Platform",
        list_price: 24_000.0,
        per_size: true,
        subscription: true,
    },
    Product {
        id: "ANLY",
        name: "Analytics Add-on",
        family: "Platform",
        list_price: 9_000.0,
        per_size: true,
        subscription: true,
    },
    Product {
        id: "STRT",
        name: "Starter",
        family: "Essentials",
        list_price: 4_800.0,
        per_size: false,
        subscription: true,
    },
    Product {
        id: "SUIT",
        name: "Enterprise Suite",
        family: "Suite",
        list_price: 85_000.0,
        per_size: true,
        subscription: true,
    },
    Product {
        id: "CMPL",
        name: "Compliance Pack",
        family: "Suite",
        list_price: 15_000.0,
        per_size: false,
        subscription: true,
    },
    Product {
        id: "SUPP",
        name: "Premium Support",
        family: "Services",
        list_price: 6_000.0,
        per_size: false,
        subscription: true,
    },
];

pub struct Contact {
    pub id: String,
    pub name: String,
    pub title: &'static str,
    pub seniority: &'static str,
}

pub struct Account {
    pub id: String,
    pub name: String,
    pub segment: usize,
    pub industry: &'static str,
    /// 0 small, 1 mid, 2 enterprise.
    pub size: usize,
    pub employees: i64,
    pub revenue: f64,
    pub region: usize,
    pub country: &'static str,
    pub owner: usize,
    pub founded: i64,
    pub contacts: Vec<Contact>,
}

impl Account {
    /// Seat multiplier of per-size products.
    pub fn seats(&self) -> f64 {
        [0.5, 1.5, 4.0][self.size]
            * (self.employees as f64 / [80.0, 800.0, 8_000.0][self.size]).powf(0.3)
    }
}

pub struct Org {
    pub teams: Vec<Team>,
    pub reps: Vec<Rep>,
    pub vp_id: String,
    pub accounts: Vec<Account>,
    /// Rep indices per region.
    pub region_reps: Vec<Vec<usize>>,
    /// Account indices per region.
    pub region_accounts: Vec<Vec<usize>>,
}

impl Rep {
    /// When the rep is away at `t`: when they are back.
    pub fn away_until(&self, t: i64) -> Option<i64> {
        self.away
            .iter()
            .find(|&&(a, b)| a <= t && t < b)
            .map(|&(_, b)| b)
    }
}

/// Rep `i`'s holidays over the window (and a year either side): three a
/// year, each of one or two weeks starting on a Monday, at random weeks
/// (their own stream: no other draw changes).
fn holidays(cfg: &Config, i: usize) -> Vec<(i64, i64)> {
    let mut rng = Rng::stream(cfg.seed, crate::STREAM_ABSENCE, i as u64);
    // The Monday on or before the window's start, a year earlier.
    let first = cfg.start - 364 * DAY;
    let monday = first - time::weekday(first) * DAY;
    let years = i64::from(cfg.months) / 12 + 3;
    let mut out = Vec::new();
    for y in 0..years {
        for _ in 0..3 {
            let week = rng.int(0, 51);
            let weeks = if rng.f64() < 0.5 { 1 } else { 2 };
            let a = monday + (y * 52 + week) * 7 * DAY;
            out.push((a, a + weeks * 7 * DAY - 2 * DAY));
        }
    }
    out.sort_unstable();
    // Overlaps merge.
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (a, b) in out {
        match merged.last_mut() {
            Some(l) if a <= l.1 => l.1 = l.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

const FIRST: [&str; 48] = [
    "Ava", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hugo", "Isla", "Jonas", "Kira",
    "Liam", "Maya", "Noah", "Olivia", "Pavel", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe", "Aiden", "Bianca", "Carlos", "Dana", "Emeka", "Fiona",
    "Gustav", "Hana", "Ivan", "Julia", "Kenji", "Lena", "Marco", "Nadia", "Oscar", "Priya",
    "Rafael", "Sofia", "Tomas", "Uma", "Victor", "Wendy",
];
const LAST: [&str; 40] = [
    "Anders",
    "Brooks",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Kowalski",
    "Laurent",
    "Moreno",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinlan",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
    "Varga",
    "Walsh",
    "Xu",
    "Yilmaz",
    "Zimmer",
    "Abbott",
    "Bauer",
    "Chen",
    "Diaz",
    "Evans",
    "Ferreira",
    "Gupta",
    "Haddad",
    "Iyer",
    "Jovanovic",
    "Kim",
    "Lopez",
    "Murphy",
    "Novak",
];
const SYLL: [&str; 24] = [
    "nor", "vex", "tal", "qui", "bra", "zen", "lum", "cor", "ax", "ter", "ion", "mer", "sol",
    "var", "dyn", "kin", "ora", "pex", "ris", "tek", "vo", "len", "gra", "pha",
];
const SUFFIX: [&str; 12] = [
    "Systems",
    "Group",
    "Labs",
    "Holdings",
    "Industries",
    "Partners",
    "Health",
    "Logistics",
    "Works",
    "Solutions",
    "Networks",
    "Co",
];
const TITLES: [(&str, &str); 12] = [
    ("Analyst", "individual"),
    ("Operations Specialist", "individual"),
    ("Engineer", "individual"),
    ("Team Lead", "manager"),
    ("Operations Manager", "manager"),
    ("IT Manager", "manager"),
    ("Director of Operations", "director"),
    ("Director of IT", "director"),
    ("VP Operations", "vp"),
    ("VP Finance", "vp"),
    ("CFO", "c_level"),
    ("CIO", "c_level"),
];

pub fn person_name(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(&FIRST), rng.pick(&LAST))
}

pub fn build(cfg: &Config) -> Org {
    let mut rng = Rng::stream(cfg.seed, STREAM_ORG, 0);
    let n_teams = cfg.reps.div_ceil(cfg.reps_per_team).max(1);
    let n_regions = REGIONS.len().min(n_teams);
    let mut used_names = std::collections::HashSet::new();
    let mut unique_name = |rng: &mut Rng| loop {
        let n = person_name(rng);
        if used_names.insert(n.clone()) {
            return n;
        }
        if used_names.len() > FIRST.len() * LAST.len() / 2 {
            let n = format!("{n} {}", used_names.len());
            used_names.insert(n.clone());
            return n;
        }
    };
    let vp_name = unique_name(&mut rng);
    let vp_id = "u-vp".to_string();
    let mut teams = Vec::new();
    for t in 0..n_teams {
        let region = t % n_regions;
        let manager_name = unique_name(&mut rng);
        teams.push(Team {
            id: format!("t{:03}", t + 1),
            name: format!("{} {}", REGIONS[region].0, t / n_regions + 1),
            region,
            manager_id: format!("m{:03}", t + 1),
            manager_name,
        });
    }
    let _ = vp_name;
    let start = cfg.start;
    let horizon_days = (cfg.end() - start) / DAY;
    let mut reps = Vec::new();
    for i in 0..cfg.reps {
        let team = i % n_teams;
        let name = unique_name(&mut rng);
        // A general ability factor, with a few stars far above most reps.
        let mut g = rng.normal();
        if rng.chance(0.12) {
            g += 1.4;
        }
        let mut skills = [0.0; 7];
        for s in &mut skills {
            *s = (0.55 * g + 0.835 * rng.normal()).clamp(-3.0, 3.0);
        }
        let hired = if rng.chance(0.2) {
            start + rng.int(0, (horizon_days as f64 * 0.7) as i64) * DAY
        } else {
            start - rng.int(180, 2900) * DAY
        };
        let (bias, bias_strength) = if cfg.bias {
            match rng.weighted(&[0.55, 0.27, 0.18]) {
                0 => (Bias::Accurate, 0.0),
                1 => (Bias::Optimistic, rng.uniform(0.5, 0.9)),
                _ => (Bias::Sandbagging, rng.uniform(0.5, 0.9)),
            }
        } else {
            (Bias::Accurate, 0.0)
        };
        let affinity = (0..SEGMENTS.len())
            .map(|_| {
                if cfg.affinity {
                    rng.gauss(0.0, 0.35)
                } else {
                    0.0
                }
            })
            .collect();
        let email = format!(
            "{}@pipewise-demo.example",
            name.to_lowercase().replace(' ', ".")
        );
        reps.push(Rep {
            id: format!("r{:05}", i + 1),
            name,
            email,
            team,
            region: teams[team].region,
            manager_id: teams[team].manager_id.clone(),
            hired,
            skills,
            bias,
            bias_strength,
            affinity,
            away: if cfg.absences {
                holidays(cfg, i)
            } else {
                Vec::new()
            },
        });
    }
    let mut region_reps = vec![Vec::new(); REGIONS.len()];
    for (i, r) in reps.iter().enumerate() {
        region_reps[r.region].push(i);
    }
    let n_accounts = cfg.reps * cfg.accounts_per_rep;
    let mut accounts = Vec::with_capacity(n_accounts);
    let mut region_accounts = vec![Vec::new(); REGIONS.len()];
    let mut names = std::collections::HashSet::new();
    let seg_weights: Vec<f64> = SEGMENTS.iter().map(|s| s.weight).collect();
    for i in 0..n_accounts {
        let mut rng = Rng::stream(cfg.seed, STREAM_ACCOUNT, i as u64);
        let segment = rng.weighted(&seg_weights);
        let seg = &SEGMENTS[segment];
        let size = rng.weighted(&seg.size);
        let employees = match size {
            0 => rng.lognormal(60.0, 0.6).clamp(10.0, 200.0),
            1 => rng.lognormal(700.0, 0.6).clamp(200.0, 2000.0),
            _ => rng.lognormal(7000.0, 0.8).clamp(2000.0, 120_000.0),
        } as i64;
        let region = i % n_regions;
        let name = loop {
            let n = format!(
                "{}{} {}",
                capitalise(rng.pick(&SYLL)),
                rng.pick(&SYLL),
                rng.pick(&SUFFIX)
            );
            if names.insert(n.clone()) {
                break n;
            }
            let n = format!("{n} {}", i + 1);
            if names.insert(n.clone()) {
                break n;
            }
        };
        let region_list = &region_reps[region];
        let owner = if region_list.is_empty() {
            i % reps.len().max(1)
        } else {
            region_list[i / n_regions % region_list.len()]
        };
        let n_contacts = rng.int(2, 3 + size as i64 * 2) as usize;
        let contacts = (0..n_contacts)
            .map(|c| {
                let (title, seniority) = TITLES
                    [rng.weighted(&[3.0, 2.0, 2.0, 2.0, 2.0, 1.5, 1.2, 1.0, 0.7, 0.5, 0.3, 0.3])];
                Contact {
                    id: format!("c{:06}-{}", i + 1, c + 1),
                    name: person_name(&mut rng),
                    title,
                    seniority,
                }
            })
            .collect();
        accounts.push(Account {
            id: format!("a{:06}", i + 1),
            name,
            segment,
            industry: rng.pick(seg.industries),
            size,
            employees,
            revenue: (employees as f64 * rng.uniform(80_000.0, 300_000.0)).round(),
            region,
            country: rng.pick(REGIONS[region].1),
            owner,
            founded: days_from_civil(rng.int(1950, 2020), 1, 1),
            contacts,
        });
        region_accounts[region].push(i);
    }
    Org {
        teams,
        reps,
        vp_id,
        accounts,
        region_reps,
        region_accounts,
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
