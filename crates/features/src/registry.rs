//! The feature registry: every feature's stable name, family, kind, plain-language
//! description and the phrase an explanation uses for a value of it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Activity,
    Communication,
    Opportunity,
    Rep,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Activity => "activity",
            Family::Communication => "communication",
            Family::Opportunity => "opportunity",
            Family::Rep => "rep",
        }
    }
}

/// How a value is shown in an explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Count,
    Days,
    Share,
    /// A share of peers at or below, said as an ordinal (0.9: 90th).
    Percentile,
    /// A difference of two rates, in percentage points.
    ShareDiff,
    Money,
    Seconds,
    PerHour,
    PerMinute,
    Score,
    /// An ordinal code of a stage (0 prospecting ... 4 negotiation).
    Stage,
    /// An ordinal code of a forecast category (0 pipeline, 1 best case, 2 commit).
    ForecastCategory,
    YesNo,
    Category,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct FeatureDef {
    pub name: &'static str,
    pub family: Family,
    pub unit: Unit,
    pub description: &'static str,
    /// Used in explanations: `{v}` is replaced by the formatted value;
    /// `[one|many]` by the word agreeing with a count (`one` for exactly 1);
    /// ` || ` separates the phrase used for a negative value (whose `{v}`
    /// is then the magnitude).
    pub phrase: &'static str,
    /// Said instead when the value is missing.
    pub missing: &'static str,
    /// The direction in which a higher value moves the chance of winning,
    /// where the domain knows it: +1 raises it, -1 lowers it, 0 not
    /// known (or not one direction). The win model is fitted with these as
    /// monotone constraints, and an explanation never says the opposite.
    pub win: i8,
    /// The same for the chance of slipping past the close date.
    pub slip: i8,
}

impl FeatureDef {
    /// The known directions of the effect of a higher value on winning and
    /// on slipping (see [`FeatureDef::win`]).
    pub const fn effect(self, win: i8, slip: i8) -> FeatureDef {
        FeatureDef { win, slip, ..self }
    }

    pub fn is_categorical(&self) -> bool {
        self.unit == Unit::Category
    }
}

const fn f(
    name: &'static str,
    family: Family,
    unit: Unit,
    description: &'static str,
    phrase: &'static str,
    missing: &'static str,
) -> FeatureDef {
    FeatureDef {
        name,
        family,
        unit,
        description,
        phrase,
        missing,
        win: 0,
        slip: 0,
    }
}

use Family::*;
use Unit::*;

/// Every opportunity feature, in the order of the feature table's columns.
pub const OPPORTUNITY_FEATURES: &[FeatureDef] = &[
    // Activity.
    f(
        "touches_7d",
        Activity,
        Count,
        "Calls, emails and meetings on the deal in the last 7 days.",
        "{v} [touch|touches] in the last 7 days",
        "",
    ),
    f(
        "touches_30d",
        Activity,
        Count,
        "Calls, emails and meetings on the deal in the last 30 days.",
        "{v} [touch|touches] in the last 30 days",
        "",
    ),
    f(
        "calls_30d",
        Activity,
        Count,
        "Calls in the last 30 days.",
        "{v} [call|calls] in the last 30 days",
        "",
    ),
    f(
        "emails_30d",
        Activity,
        Count,
        "Emails in the last 30 days.",
        "{v} [email|emails] in the last 30 days",
        "",
    ),
    f(
        "meetings_30d",
        Activity,
        Count,
        "Meetings in the last 30 days.",
        "{v} [meeting|meetings] in the last 30 days",
        "",
    ).effect(1, 0),
    f(
        "responses_30d",
        Activity,
        Count,
        "Customer responses in the last 30 days: replies, connected calls, held meetings, inbound touches.",
        "{v} customer [response|responses] in the last 30 days",
        "",
    ).effect(1, 0),
    f(
        "reply_rate",
        Activity,
        Share,
        "Share of the emails on the deal that were replies or got one, to date.",
        "email reply rate {v}",
        "no emails sent yet",
    ).effect(1, 0),
    f(
        "connect_rate",
        Activity,
        Share,
        "Share of the calls on the deal that connected (or came from the customer), to date.",
        "call connect rate {v}",
        "no calls made yet",
    ).effect(1, 0),
    f(
        "days_since_touch",
        Activity,
        Days,
        "Days since the last touch of any kind.",
        "last touch {v} ago",
        "never touched",
    ).effect(-1, 1),
    f(
        "days_since_response",
        Activity,
        Days,
        "Days since the customer last responded.",
        "last customer response {v} ago",
        "no customer response yet",
    ).effect(-1, 1),
    f(
        "contacts_engaged",
        Activity,
        Count,
        "Distinct contacts touched on the deal, to date.",
        "{v} [contact|contacts] engaged",
        "",
    ).effect(1, 0),
    f(
        "senior_contacts_engaged",
        Activity,
        Count,
        "Distinct director, VP or C-level contacts touched, to date.",
        "{v} senior [contact|contacts] engaged",
        "",
    ).effect(1, 0),
    f(
        "days_in_stage",
        Activity,
        Days,
        "Days in the current (entered) stage.",
        "{v} in the current stage",
        "",
    ).effect(-1, 0),
    f(
        "stage_velocity",
        Activity,
        Score,
        "Stages advanced per 30 days since creation.",
        "{v} stages advanced per month",
        "",
    ).effect(1, 0),
    f(
        "emails_sent",
        Activity,
        Count,
        "Emails on the deal either way, to date.",
        "{v} [email|emails] exchanged",
        "",
    ),
    f(
        "email_replies",
        Activity,
        Count,
        "Customer replies to those emails, to date.",
        "{v} email [reply|replies]",
        "",
    ).effect(1, 0),
    f(
        "calls_made",
        Activity,
        Count,
        "Calls on the deal either way, to date.",
        "{v} [call|calls]",
        "",
    ),
    f(
        "calls_connected",
        Activity,
        Count,
        "Calls that connected, to date.",
        "{v} [call|calls] connected",
        "",
    ).effect(1, 0),
    // Communication (recorded calls).
    f(
        "recorded_calls",
        Communication,
        Count,
        "Recorded calls with a transcript, to date.",
        "{v} recorded [call|calls]",
        "",
    ),
    f(
        "talk_ratio",
        Communication,
        Share,
        "Rep's share of talk time, mean over recorded calls.",
        "rep talk ratio {v}",
        "no recorded call",
    ),
    f(
        "question_rate",
        Communication,
        PerHour,
        "Questions the rep asks per hour, mean over recorded calls.",
        "rep asks {v} questions per hour",
        "no recorded call",
    ),
    f(
        "longest_monologue",
        Communication,
        Seconds,
        "Rep's longest monologue, longest over recorded calls.",
        "longest rep monologue {v}",
        "no recorded call",
    ).effect(-1, 0),
    f(
        "objections",
        Communication,
        Count,
        "Objections the customer raised on recorded calls.",
        "{v} [objection|objections] raised",
        "no recorded call",
    ),
    f(
        "objections_unhandled",
        Communication,
        Count,
        "Objections brushed aside rather than acknowledged or explored.",
        "{v} [objection|objections] left unhandled",
        "no recorded call",
    ).effect(-1, 0),
    f(
        "next_steps_agreed",
        Communication,
        Count,
        "Recorded calls that ended with a concrete next step agreed.",
        "next steps agreed on {v} [call|calls]",
        "no recorded call",
    ).effect(1, 0),
    f(
        "last_call_next_step",
        Communication,
        YesNo,
        "Whether the latest recorded call ended with a next step agreed.",
        "latest call: next step agreed {v}",
        "no recorded call",
    ).effect(1, 0),
    f(
        "sentiment",
        Communication,
        Score,
        "Customer sentiment on recorded calls (-1 to 1), mean.",
        "customer sentiment {v}",
        "no recorded call",
    ).effect(1, 0),
    f(
        "filler_rate",
        Communication,
        PerMinute,
        "Rep filler words per minute of speech, mean.",
        "rep says {v} filler words per minute",
        "no recorded call",
    ).effect(-1, 0),
    // Opportunity.
    f(
        "stage",
        Opportunity,
        Stage,
        "Entered stage as of the date (0 prospecting ... 4 negotiation).",
        "entered stage {v}",
        "",
    ).effect(1, 0),
    f(
        "forecast_category",
        Opportunity,
        ForecastCategory,
        "Rep's forecast category (0 pipeline, 1 best case, 2 commit).",
        "forecast category {v}",
        "no forecast category",
    ).effect(1, 0),
    f(
        "amount",
        Opportunity,
        Money,
        "Deal amount as of the date.",
        "amount {v}",
        "no amount",
    ),
    f(
        "amount_change",
        Opportunity,
        Share,
        "Change of the amount since it was first entered.",
        "amount changed by {v} since entry",
        "no amount",
    ),
    f(
        "amount_edits",
        Opportunity,
        Count,
        "Times the amount was changed.",
        "amount changed {v} [time|times]",
        "",
    ),
    f(
        "close_pushes",
        Opportunity,
        Count,
        "Times the expected close date was moved later.",
        "close date pushed {v} [time|times]",
        "",
    ).effect(-1, 1),
    f(
        "days_to_close",
        Opportunity,
        Days,
        "Days until the expected close date (negative: overdue).",
        "expected close in {v} || close date passed {v} ago",
        "no close date",
    ).effect(0, -1),
    f(
        "age",
        Opportunity,
        Days,
        "Days since the deal was created.",
        "deal is {v} old",
        "",
    ).effect(-1, 0),
    f(
        "product_count",
        Opportunity,
        Count,
        "Products on the deal.",
        "{v} [product|products]",
        "",
    ),
    f(
        "product",
        Opportunity,
        Category,
        "Main product on the deal.",
        "product {v}",
        "no product",
    ),
    f(
        "industry",
        Opportunity,
        Category,
        "Account industry.",
        "industry {v}",
        "no industry",
    ),
    f(
        "employees",
        Opportunity,
        Count,
        "Account employees.",
        "account of {v} [employee|employees]",
        "account size unknown",
    ),
    f(
        "annual_revenue",
        Opportunity,
        Money,
        "Account annual revenue.",
        "account revenue {v}",
        "account revenue unknown",
    ),
    f(
        "lead_source",
        Opportunity,
        Category,
        "Where the deal came from.",
        "source {v}",
        "no source",
    ),
    f(
        "deal_type",
        Opportunity,
        Category,
        "New business, expansion or renewal.",
        "deal type {v}",
        "no deal type",
    ),
    f(
        "account_wins_per_year",
        Opportunity,
        Score,
        "Deals won with the account in the previous 365 days, per year of recorded history (fewer than 365 days are scaled up).",
        "{v} [win|wins] a year with the account",
        "",
    ).effect(1, 0),
    f(
        "usage_trend",
        Opportunity,
        Share,
        "Change in the account's product usage: the quantities of its usage events in the last 60 days against the 60 days before (each plus one), minus 1. Missing for accounts with no usage recorded by then.",
        "the account's product usage changed by {v} in 60 days",
        "no product usage recorded",
    ).effect(1, 0),
    f(
        "usage_per_employee",
        Opportunity,
        Score,
        "The quantities of the account's usage events in the last 60 days per employee of the account. Missing for accounts with no usage recorded by then or no headcount.",
        "{v} product usage per employee in 60 days",
        "no product usage recorded",
    ).effect(1, 0),
    f(
        "industry_win_lift",
        Opportunity,
        ShareDiff,
        "Win rate of deals in the account's industry closed in the previous 365 days minus the org's (shrunk toward it).",
        "deals in this industry win {v} the org's rate",
        "industry unknown",
    ).effect(1, 0),
    f(
        "product_industry_win_lift",
        Opportunity,
        ShareDiff,
        "Win rate of this product in this industry, previous 365 days, minus the industry's (shrunk toward it).",
        "this product wins {v} the rate of its industry",
        "product or industry unknown",
    ).effect(1, 0),
    // Rep.
    f(
        "rep_tenure",
        Rep,
        Days,
        "Days since the owner was hired.",
        "rep tenure {v}",
        "rep hire date unknown",
    ),
    f(
        "rep_win_lift",
        Rep,
        ShareDiff,
        "Owner's win rate over deals closed in the previous 365 days minus the org's (shrunk toward it).",
        "rep's trailing win rate is {v} the org's",
        "rep has no closed deals",
    ).effect(1, 0),
    f(
        "rep_volume_ratio",
        Rep,
        Score,
        "Deals the owner closed per day over the previous 365 days (or the part of them recorded since the data start or the hire) over the mean of the reps who closed any.",
        "rep closes {v} times the average rep's number of deals",
        "",
    ),
    f(
        "rep_cycle_ratio",
        Rep,
        Score,
        "Owner's median days from creation to win over the org's, previous 365 days (above 1: slower).",
        "rep's median cycle is {v} times the org's",
        "rep has no recent wins",
    ),
    f(
        "rep_percentile",
        Rep,
        Percentile,
        "Owner's trailing win rate as a percentile among peers.",
        "rep at the {v} percentile of peers",
        "rep not ranked",
    ).effect(1, 0),
    f(
        "rep_book_ratio",
        Rep,
        Score,
        "Open deals the owner holds on the date over the mean of the reps holding any.",
        "rep holds {v} times the average rep's open deals",
        "",
    ),
    f(
        "rep_stage_lift",
        Rep,
        ShareDiff,
        "Owner's win rate, previous 365 days, of deals of this type that reached this deal's entered stage minus the org's (shrunk toward it): negative when the rep's deals at this stage win less (optimistic staging).",
        "rep's win rate from this stage is {v} the org's",
        "rep has no closed deals",
    ).effect(1, 0),
    f(
        "rep_industry_win_lift",
        Rep,
        ShareDiff,
        "Owner's win rate in the account's industry, previous 365 days, minus the rep's overall (shrunk toward it).",
        "rep wins {v} their overall rate in this industry",
        "rep has no closed deals",
    ).effect(1, 0),
];

pub fn def(name: &str) -> Option<&'static FeatureDef> {
    OPPORTUNITY_FEATURES.iter().find(|d| d.name == name)
}

/// Features explained as one factor, in this order: their effects only
/// make sense together (a deal's amount against the size of the account
/// buying it), and the trees split the effect between them.
pub const TOGETHER: &[&[&str]] = &[&["amount", "employees", "annual_revenue"]];

/// The known direction of a feature's effect on winning (+1, -1; 0 for
/// unknown and for names not in the registry): the win model's monotone
/// constraints.
pub fn win_effect(name: &str) -> i8 {
    def(name).map_or(0, |d| d.win)
}

/// The known direction of a feature's effect on slipping: the slip model's
/// monotone constraints.
pub fn slip_effect(name: &str) -> i8 {
    def(name).map_or(0, |d| d.slip)
}

const STAGE_NAMES: [&str; 5] = [
    "prospecting",
    "qualification",
    "discovery",
    "proposal",
    "negotiation",
];

/// A value in the feature's unit, for people.
pub fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Count => thousands(v.round() as i64),
        Days => {
            let d = v.round() as i64;
            if d.abs() >= 365 {
                // Tenures and long gaps as people say them.
                format!("{:.1} years", v / 365.25)
            } else if d.abs() == 1 {
                format!("{d} day")
            } else {
                format!("{} days", thousands(d))
            }
        }
        Share => format!("{:.0}%", v * 100.0),
        Percentile => {
            // The lowest and highest of peers still have an ordinal place.
            let p = ((v * 100.0).round() as i64).clamp(1, 99);
            let suffix = match (p % 10, p % 100) {
                (_, 11..=13) => "th",
                (1, _) => "st",
                (2, _) => "nd",
                (3, _) => "rd",
                _ => "th",
            };
            format!("{p}{suffix}")
        }
        ShareDiff => {
            let p = (v * 100.0).round() as i64;
            let points = |n: i64| {
                if n == 1 {
                    "1 point".to_string()
                } else {
                    format!("{n} points")
                }
            };
            match p {
                0 => "level with".to_string(),
                p if p > 0 => format!("{} above", points(p)),
                p => format!("{} below", points(-p)),
            }
        }
        Money => {
            let a = v.abs();
            if a >= 1e9 {
                format!("{:.1}B", v / 1e9)
            } else if a >= 1e6 {
                format!("{:.1}M", v / 1e6)
            } else if a >= 1e3 {
                format!("{:.1}k", v / 1e3)
            } else {
                format!("{v:.0}")
            }
        }
        Seconds => {
            if v >= 90.0 {
                format!("{:.1} min", v / 60.0)
            } else {
                format!("{v:.0} s")
            }
        }
        // Whole numbers without a trailing ".0" ("2 wins a year").
        PerHour | PerMinute | Score if (v - v.round()).abs() < 0.05 => format!("{v:.0}"),
        PerHour | PerMinute | Score => format!("{v:.1}"),
        Stage => STAGE_NAMES
            .get(v.round().max(0.0) as usize)
            .copied()
            .unwrap_or("?")
            .to_string(),
        ForecastCategory => ["pipeline", "best case", "commit"]
            .get(v.round().max(0.0) as usize)
            .copied()
            .unwrap_or("?")
            .to_string(),
        YesNo => if v >= 0.5 { "yes" } else { "no" }.into(),
        Category => format!("{v}"),
    }
}

/// An integer with thousands separators: 79,368.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `[one|many]` in `text` replaced by the word agreeing with `one`.
fn agree(text: &str, one: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        let choice = &rest[open + 1..close];
        let (singular, plural) = choice.split_once('|').unwrap_or((choice, choice));
        out.push_str(if one { singular } else { plural });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The plain-language phrase for a feature's value (`None`/NaN: missing).
pub fn phrase(def: &FeatureDef, numeric: Option<f64>, category: Option<&str>) -> String {
    let (template, numeric) = match (def.phrase.split_once(" || "), numeric) {
        (Some((_, negative)), Some(v)) if v < 0.0 && v.is_finite() => (negative, Some(-v)),
        (Some((positive, _)), v) => (positive, v),
        (None, v) => (def.phrase, v),
    };
    let value = match (def.unit, numeric, category) {
        (Category, _, Some(c)) => Some(c.replace('_', " ")),
        (Category, _, None) => None,
        (u, Some(v), _) if v.is_finite() => Some(format_value(u, v)),
        _ => None,
    };
    // The noun agrees with what is shown: "1 contact", "1 win a year".
    let one = value.as_deref() == Some("1");
    // The markup is resolved before the value goes in: a value of the
    // user's own ("Suite [EU]") is never read as markup.
    // "last touch today", not "0 days ago".
    let template = if def.unit == Days && numeric.is_some_and(|v| v.abs() < 0.5) {
        template.replace("{v} ago", "today")
    } else {
        template.to_string()
    };
    let template = template.as_str();
    match value {
        Some(v) => agree(template, one).replace("{v}", &v),
        None if !def.missing.is_empty() => def.missing.to_string(),
        None => agree(template, false).replace("{v}", "unknown"),
    }
}

/// [`phrase`] with the typical value the explanation is measured from,
/// where saying it helps: "deal is 106 days old (typical: 45 days)". Left
/// out for values that are already relative (percentiles, lifts), yes/no
/// and categories, a missing value or a missing reference.
pub fn phrase_against(def: &FeatureDef, value: Option<f64>, typical: Option<f64>) -> String {
    let text = phrase(def, value, None);
    let (Some(v), Some(t)) = (
        value.filter(|v| v.is_finite()),
        typical.filter(|t| t.is_finite()),
    ) else {
        return text;
    };
    let comparable = matches!(
        def.unit,
        Count
            | Days
            | Share
            | Money
            | Seconds
            | PerHour
            | PerMinute
            | Score
            | Stage
            | ForecastCategory
    );
    if !comparable || format_value(def.unit, v) == format_value(def.unit, t) {
        return text;
    }
    let said = match def.phrase.split_once(" || ") {
        // A signed value of the other sign reads as its own phrase ("close
        // date passed 12 days ago"); of the same sign, as a magnitude.
        Some(_) if (t < 0.0) != (v < 0.0) => phrase(def, Some(t), None),
        Some(_) => format_value(def.unit, t.abs()),
        None => format_value(def.unit, t),
    };
    format!("{text} (typical: {said})")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every feature's phrase reads as people write: no template left, the
    /// noun agreeing with a count, big numbers grouped, long spans in years.
    #[test]
    fn every_phrase_is_grammatical_and_in_the_users_units() {
        for d in OPPORTUNITY_FEATURES {
            let values: &[f64] = match d.unit {
                Category => &[],
                _ => &[-3.0, 0.0, 0.4, 1.0, 2.0, 1234.0, 79368.0],
            };
            for &v in values {
                let p = phrase(d, Some(v), None);
                assert!(
                    !p.contains(['{', '}', '[', ']', '|']),
                    "{}: {p:?} for {v}",
                    d.name
                );
                assert!(!p.contains("in -"), "{}: {p:?}", d.name);
            }
            if d.unit == Count {
                let (one, two) = (phrase(d, Some(1.0), None), phrase(d, Some(2.0), None));
                assert_ne!(
                    one,
                    two.replace('2', "1"),
                    "{}: the noun must agree with 1 ({one:?})",
                    d.name
                );
            }
            let c = phrase(d, None, Some("financial_services"));
            assert!(!c.contains(['{', '[']), "{}: {c:?}", d.name);
            if d.unit == Category {
                // A value of the user's own is shown as it is.
                let odd = phrase(d, None, Some("Suite [EU|US]"));
                assert!(odd.contains("Suite [EU|US]"), "{}: {odd:?}", d.name);
            }
        }
        let by_name = |n: &str| OPPORTUNITY_FEATURES.iter().find(|d| d.name == n).unwrap();
        assert_eq!(
            phrase(by_name("employees"), Some(79368.0), None),
            "account of 79,368 employees"
        );
        assert_eq!(
            phrase(by_name("account_wins_per_year"), Some(2.0), None),
            "2 wins a year with the account"
        );
        assert_eq!(
            phrase(by_name("account_wins_per_year"), Some(1.0), None),
            "1 win a year with the account"
        );
        assert_eq!(
            phrase(by_name("account_wins_per_year"), Some(0.5), None),
            "0.5 wins a year with the account"
        );
        assert_eq!(
            phrase(by_name("employees"), Some(1.0), None),
            "account of 1 employee"
        );
        assert_eq!(
            phrase(by_name("annual_revenue"), Some(20_733e6), None),
            "account revenue 20.7B"
        );
        assert_eq!(
            phrase(by_name("contacts_engaged"), Some(1.0), None),
            "1 contact engaged"
        );
        assert_eq!(
            phrase(by_name("rep_tenure"), Some(2191.0), None),
            "rep tenure 6.0 years"
        );
        assert_eq!(
            phrase(by_name("age"), Some(106.0), None),
            "deal is 106 days old"
        );
        assert_eq!(
            phrase(by_name("rep_percentile"), Some(0.9), None),
            "rep at the 90th percentile of peers"
        );
        assert_eq!(
            phrase(by_name("rep_percentile"), Some(0.22), None),
            "rep at the 22nd percentile of peers"
        );
        assert_eq!(
            phrase(by_name("rep_percentile"), Some(0.0), None),
            "rep at the 1st percentile of peers"
        );
        assert_eq!(
            phrase(by_name("rep_win_lift"), Some(0.01), None),
            "rep's trailing win rate is 1 point above the org's"
        );
        assert_eq!(
            phrase(by_name("rep_tenure"), Some(497.0), None),
            "rep tenure 1.4 years"
        );
        assert_eq!(
            phrase(by_name("days_to_close"), Some(-12.0), None),
            "close date passed 12 days ago"
        );
        assert_eq!(
            phrase(by_name("days_to_close"), Some(30.0), None),
            "expected close in 30 days"
        );
        assert_eq!(
            phrase(by_name("days_since_touch"), Some(0.2), None),
            "last touch today"
        );
        assert_eq!(
            phrase(by_name("days_since_touch"), Some(1.0), None),
            "last touch 1 day ago"
        );
        // Against the typical value the contributions are measured from.
        assert_eq!(
            phrase_against(by_name("age"), Some(106.0), Some(45.0)),
            "deal is 106 days old (typical: 45 days)"
        );
        assert_eq!(
            phrase_against(by_name("stage"), Some(3.0), Some(2.0)),
            "entered stage proposal (typical: discovery)"
        );
        assert_eq!(
            phrase_against(by_name("employees"), Some(79368.0), Some(2300.0)),
            "account of 79,368 employees (typical: 2,300)"
        );
        assert_eq!(
            phrase_against(by_name("days_to_close"), Some(30.0), Some(-12.0)),
            "expected close in 30 days (typical: close date passed 12 days ago)"
        );
        assert_eq!(
            phrase_against(by_name("days_to_close"), Some(-3.0), Some(-12.0)),
            "close date passed 3 days ago (typical: 12 days)"
        );
        assert_eq!(
            phrase_against(by_name("days_to_close"), Some(-3.0), Some(20.0)),
            "close date passed 3 days ago (typical: expected close in 20 days)"
        );
        // Already relative, the same as typical, or nothing to compare.
        assert_eq!(
            phrase_against(by_name("rep_win_lift"), Some(0.05), Some(0.0)),
            "rep's trailing win rate is 5 points above the org's"
        );
        assert_eq!(
            phrase_against(by_name("age"), Some(45.2), Some(45.0)),
            "deal is 45 days old"
        );
        assert_eq!(
            phrase_against(by_name("reply_rate"), None, Some(0.3)),
            "no emails sent yet"
        );
    }
}
