//! Lead policies: who owns each new inbound lead and which follow-up
//! touches are made when. The simulator asks a policy from the policy start
//! on (`Policies::start`); before it, and for every built-in baseline, the
//! org's own behaviour applies.
//!
//! A policy sees only what a CRM records: the lead as it arrives (source,
//! account, title, inquiry text) and each candidate rep's id, team, region
//! and current queue of unanswered leads. It never sees latent skills,
//! segments or lead quality. Every latent draw of a lead comes from the
//! lead's own streams in a fixed order whatever the policy does (common
//! random numbers), so two runs of one seed under two policies are an
//! honest A/B on the same leads.

use crate::time::{self, DAY, HOUR};

/// A follow-up channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Call,
    Email,
    Sms,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Call, Channel::Email, Channel::Sms];

    /// The activity kind the CRM records ("call", "email", "sms").
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Call => "call",
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "call" => Some(Channel::Call),
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Channel::Call => 0,
            Channel::Email => 1,
            Channel::Sms => 2,
        }
    }
}

/// A new lead as the CRM records it when it arrives.
#[derive(Debug, Clone)]
pub struct LeadView<'a> {
    pub id: &'a str,
    /// Epoch seconds (UTC).
    pub created: i64,
    pub source: &'a str,
    pub account_id: &'a str,
    pub industry: &'a str,
    pub employees: u32,
    /// The lead's region (its account's), e.g. "EMEA".
    pub region: &'a str,
    pub title: &'a str,
    pub inquiry: &'a str,
}

/// A rep who could own a lead, as the CRM knows them at the lead's arrival.
#[derive(Debug, Clone)]
pub struct RepView<'a> {
    pub id: &'a str,
    pub team_id: &'a str,
    pub region: &'a str,
    /// Leads this rep owns that are not answered yet (count).
    pub unanswered: u32,
    /// Seconds until the rep is next at work (0: at work now), from their
    /// working hours, time zone and absences as the CRM records them;
    /// `i64::MAX` when not within 60 days.
    pub at_work_in: i64,
    /// When the rep is away (out of office) at this instant: when they are
    /// back (epoch seconds).
    pub away_until: Option<i64>,
    /// Working hours a week (hours); capacity shares scale with it.
    pub weekly_hours: f64,
}

/// A follow-up touch to make: when (epoch seconds) and on which channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedTouch {
    pub at: i64,
    pub channel: Channel,
    /// When the step fell due, before any choice of send time (epoch
    /// seconds; `at` when no time was chosen). The ground truth compares
    /// the true reply chance at `at` with the one at `due`.
    pub due: i64,
}

/// What a cadence does with one lead after the rep's first reply.
#[derive(Debug, Clone, Default)]
pub struct CadencePlan {
    /// The touches after the first reply, in time order (the simulator
    /// drops any earlier than the touch before it).
    pub touches: Vec<PlannedTouch>,
    /// Stop the sequence once the lead replies or a call connects.
    pub stop_on_reply: bool,
    /// The product and pain point the first reply names, if it names any
    /// (as the policy read them from the inquiry). The reply counts as
    /// personal only when both are the inquiry's true ones.
    pub personal: Option<(String, String)>,
}

/// Who owns each new lead.
pub trait RoutingPolicy {
    /// Picks the owner among `candidates` (the lead's region's reps hired by
    /// then, never empty): an index into `candidates`.
    fn route(&mut self, lead: &LeadView, candidates: &[RepView]) -> usize;
    /// Picks the owners of leads held for a batch ([`Policies::batch`]:
    /// those arriving outside business hours, decided together at the next
    /// opening): one index into `candidates[i]` per lead `leads[i]`, the
    /// candidates' queues as they stand at the opening. The default routes
    /// them one at a time in order of arrival.
    fn route_batch(&mut self, leads: &[LeadView], candidates: &[Vec<RepView>]) -> Vec<usize> {
        leads
            .iter()
            .zip(candidates)
            .map(|(l, c)| self.route(l, c))
            .collect()
    }
    /// A short name for reports ("pipewise").
    fn name(&self) -> &str;
}

/// Which touches follow the first reply.
pub trait CadencePolicy {
    /// The plan for `lead`, owned by `rep`, first answered at `first_touch`
    /// (epoch seconds) on `first_channel`.
    fn plan(
        &mut self,
        lead: &LeadView,
        rep: &RepView,
        first_touch: i64,
        first_channel: Channel,
    ) -> CadencePlan;
    fn name(&self) -> &str;
}

/// How leads are routed.
pub enum Routing {
    /// The territory's reps, each lead to one of them at random (the org's
    /// own rule; also before the policy start).
    Territory,
    /// The territory's reps in turn, skipping reps not hired yet.
    RoundRobin,
    Policy(Box<dyn RoutingPolicy>),
}

/// How leads are followed up.
pub enum Cadence {
    /// Each rep's own habit: as many touches as their follow-up skill makes
    /// them try (1-10, mean about 2), at random business hours 1-3 days apart,
    /// sometimes personal, sometimes not stopping on a reply.
    Rep,
    Policy(Box<dyn CadencePolicy>),
}

/// An open deal as the CRM shows it at the start of one of its weeks: what
/// a deal policy may read. Never the deal's strength, draw or true stage.
#[derive(Debug, Clone)]
pub struct DealView {
    pub id: String,
    pub rep_id: String,
    /// The week's start (epoch seconds).
    pub at: i64,
    pub created: i64,
    /// `new_business`, `expansion` or `renewal`.
    pub kind: &'static str,
    pub industry: &'static str,
    pub employees: i64,
    /// The stage the rep has entered (0 prospecting ... 4 negotiation) and
    /// when they entered it.
    pub stage: usize,
    pub stage_since: i64,
    pub amount: f64,
    /// The deal's touches the CRM holds, oldest first: (time, kind — 0
    /// call, 1 email, 2 meeting —, whether the customer responded: a reply,
    /// a connected call, a held meeting).
    pub touches: Vec<(i64, u8, bool)>,
    /// Hidden truth, not what the CRM shows: the expected bookings a focus
    /// meeting held this week would add (its chance of being held × the
    /// gain in win probability it brings × the amount). Read only by the
    /// oracle that measures a policy's ceiling (`simulate --focus
    /// oracle`); no policy may read it.
    pub hidden_meeting_value: f64,
}

/// Scores an open deal's week for a focus meeting: the higher, the more
/// the deal deserves the rep's time this week.
pub trait DealScorer {
    fn score(&mut self, deal: &DealView) -> f64;
    /// The deal's win probability as the scorer sees it, when it has one
    /// (written to the recommendation log).
    fn probability(&mut self, _deal: &DealView) -> Option<f64> {
        None
    }
    /// A short name for reports.
    fn name(&self) -> &str;
}

/// Sees every open deal's week up to the window's end (for calibrating
/// thresholds on a run's history).
pub trait DealObserver {
    fn observe(&mut self, deal: &DealView);
}

/// Which deals reps give a focus meeting each week from the policy start
/// (see [`FOCUS_GAIN`]). A deal's week gets one when its score reaches the
/// threshold.
pub struct Focus {
    /// pipewise's list (scorer, threshold): each rep follows a recommended
    /// focus with their latent adherence; `None`: reps' own priorities only.
    pub list: Option<(Box<dyn DealScorer>, f64)>,
    /// The reps' own priorities (scorer, threshold): with a list, a rep
    /// also acts on their own pick with the chance of not following.
    pub own: (Box<dyn DealScorer>, f64),
    /// At most this many focus meetings per rep in a calendar week (weeks
    /// counted from the window's start); a deal week over it gets none.
    pub cap: u32,
    /// Every rep follows every recommendation (adherence 1) instead of
    /// their latent adherence.
    pub follow_all: bool,
}

impl Focus {
    /// The focus policy's name for reports.
    pub fn name(&self) -> String {
        match &self.list {
            Some((s, _)) => s.name().to_string(),
            None if self.own.1 == f64::INFINITY || self.cap == 0 => "none".to_string(),
            None => self.own.0.name().to_string(),
        }
    }
}

/// Strength (log-odds) a held focus meeting adds to its deal for the rest
/// of the deal's life; twice as much on a stalled deal (no customer
/// response in [`STALLED_DAYS`]), which the meeting re-engages; divided by
/// one more than the focus meetings the deal has had (returns diminish).
pub const FOCUS_GAIN: f64 = 0.25;
pub const STALLED_DAYS: i64 = 14;
/// Chance a focus meeting is held (else a no-show).
pub const FOCUS_HELD: f64 = 0.88;

/// The policies a run uses from `start` (epoch seconds) on.
pub struct Policies {
    pub routing: Routing,
    pub cadence: Cadence,
    /// Focus meetings on deals (none when `None`).
    pub focus: Option<Focus>,
    /// Sees every open deal's week (any time), when set.
    pub observer: Option<Box<dyn DealObserver>>,
    pub start: i64,
    /// With a [`Routing::Policy`]: leads arriving outside business hours
    /// wait for the next opening (08:00 on a weekday) and are routed there
    /// together by [`RoutingPolicy::route_batch`]; those arriving in
    /// business hours are routed one at a time as they arrive.
    pub batch: bool,
    /// How the sending system picks each message test's variant (an even
    /// split when `None`), over the whole window.
    pub messages: Option<Box<dyn MessagePolicy>>,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            routing: Routing::Territory,
            cadence: Cadence::Rep,
            focus: None,
            observer: None,
            start: i64::MAX,
            batch: false,
            messages: None,
        }
    }
}

/// A send's outcome class as a message policy sees it, in the order of
/// `pipewise_engines::bandit::Outcome::ALL`.
pub const MESSAGE_MEETING: u8 = 0;
pub const MESSAGE_POSITIVE: u8 = 1;
pub const MESSAGE_NONE: u8 = 2;
pub const MESSAGE_NEGATIVE: u8 = 3;

/// Days after a send its outcome is known: a reply's within
/// [`MESSAGE_REPLY_DAYS`], no reply once [`MESSAGE_SILENCE_DAYS`] have
/// passed.
pub const MESSAGE_REPLY_DAYS: i64 = 2;
pub const MESSAGE_SILENCE_DAYS: i64 = 14;

/// Picks the variants of a message test's sends, as a sending system does.
/// Asked once per test (0-based inbound-sequence step) and calendar week,
/// with the outcomes known by the week's start of the test's earlier sends
/// (variant, class: [`MESSAGE_MEETING`] ...); the week's sends then draw
/// their variant with the probabilities returned (logged with each send).
pub trait MessagePolicy {
    fn probabilities(&mut self, step: usize, variants: usize, known: &[(usize, u8)]) -> Vec<f64>;
    /// A short name for reports.
    fn name(&self) -> &str;
}

impl Policies {
    /// The routing's name for reports.
    pub fn routing_name(&self) -> String {
        match &self.routing {
            Routing::Territory => "territory".into(),
            Routing::RoundRobin => "round-robin".into(),
            Routing::Policy(p) if self.batch => format!("{} (batch)", p.name()),
            Routing::Policy(p) => p.name().into(),
        }
    }

    /// The cadence's name for reports.
    pub fn cadence_name(&self) -> String {
        match &self.cadence {
            Cadence::Rep => "rep".into(),
            Cadence::Policy(p) => p.name().into(),
        }
    }
}

/// The hour of day (UTC) at which each segment best answers each channel
/// (call, email, SMS), in the order of [`crate::model::SEGMENTS`].
pub const PEAK_HOUR: [[f64; 3]; 6] = [
    [16.0, 9.0, 12.0],
    [10.0, 8.0, 14.0],
    [11.0, 15.0, 17.0],
    [15.0, 8.0, 11.0],
    [9.0, 16.0, 13.0],
    [13.0, 10.0, 9.0],
];

/// Log-odds of a reply (email, SMS) or a connect (call) to an average lead
/// at its segment's peak hour on a weekday, by channel.
pub const REPLY_BASE: [f64; 3] = [-1.0, -1.3, -1.6];

/// The contact-timing effect on a touch's reply log-odds: 0 at the
/// segment's peak hour for the channel, down to -1.6 twelve hours away,
/// and -0.7 more at weekends. 0 everywhere when `on` is false.
pub fn timing_effect(segment: usize, channel: Channel, t: i64, on: bool) -> f64 {
    if !on {
        return -0.6;
    }
    let hour = (t - time::day_start(t)) as f64 / HOUR as f64;
    let peak = PEAK_HOUR[segment % PEAK_HOUR.len()][channel.index()];
    let weekend = if time::weekday(t) >= 5 { -0.7 } else { 0.0 };
    0.8 * ((2.0 * std::f64::consts::PI * (hour - peak) / 24.0).cos() - 1.0) + weekend
}

/// The touch-count effect on a touch's reply log-odds: the 11th and later
/// unanswered touches barely land (a lead that has ignored ten is gone).
pub fn fatigue_effect(k: usize) -> f64 {
    if k >= 10 { -3.0 } else { 0.0 }
}

/// The conversion log-odds a touch after the lead's reply costs (it reads as
/// not listening), for up to [`AFTER_REPLY_MAX`] such touches.
pub const AFTER_REPLY_COST: f64 = 0.2;
pub const AFTER_REPLY_MAX: u32 = 4;

/// Reply log-odds gained by a first reply that names the inquiry's product
/// and pain point.
pub const PERSONAL_GAIN: f64 = 0.6;

/// A business hour `hour` (UTC) on the business day `days` after `t`'s day.
pub fn business_day_at(t: i64, days: i64, hour: f64) -> i64 {
    let mut d = time::day_start(t) + days * DAY;
    while time::weekday(d) >= 5 {
        d += DAY;
    }
    d + (hour * HOUR as f64) as i64
}
