//! Reading the CRM back for the feature engine.
//!
//! [`SqliteStore::load_crm`] returns every row the engines need as plain typed
//! records, with instants as Unix seconds (UTC). Nothing here decides what was
//! known when: the feature engine applies the as-of rules to these records
//! (opportunity fields through their history, events by their timestamps).

use pipewise_core::value::parse_datetime;
use rusqlite::Row;
use serde::Serialize;

use crate::{Result, SqliteStore};

/// An instant in Unix seconds (UTC).
pub type Instant = i64;

/// Parses a stored instant or date (`YYYY-MM-DDTHH:MM:SSZ`, `YYYY-MM-DD`: midnight UTC).
pub fn instant(s: &str) -> Option<Instant> {
    parse_datetime(s, &[]).map(|t| t.timestamp())
}

#[derive(Debug, Clone, Default)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Option<String>,
    pub manager_id: Option<String>,
    pub team_id: Option<String>,
    pub region: Option<String>,
    pub hire_date: Option<Instant>,
    /// IANA time zone name, as imported (validated); `None`: UTC.
    pub timezone: Option<String>,
    /// Working week in canonical form (`Mon-Fri 09:00-17:30`); `None`: the
    /// org's business hours.
    pub working_hours: Option<String>,
}

/// A person the database holds, for pseudonyms: a user, a contact or a
/// lead's contact.
#[derive(Debug, Clone)]
pub struct Person {
    /// `user`, `contact` or `lead`.
    pub kind: &'static str,
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// A period a user is away, `[start, end)` in epoch seconds.
#[derive(Debug, Clone)]
pub struct OutOfOffice {
    pub user_id: String,
    pub start: Instant,
    pub end: Instant,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub industry: Option<String>,
    pub employees: Option<f64>,
    pub annual_revenue: Option<f64>,
    pub location: Option<String>,
    /// Year the company was founded.
    pub year_established: Option<i64>,
    /// The rep who owns the account in the CRM (its territory today).
    pub owner_id: Option<String>,
}

/// A product-usage event of an account: `quantity` is the count or amount
/// it records (1 when the export leaves it empty, as for a login).
#[derive(Debug, Clone)]
pub struct Usage {
    pub account_id: String,
    pub occurred_at: Instant,
    pub quantity: f64,
    /// The product the event is about, when the export names one.
    pub product_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Contact {
    pub id: String,
    pub account_id: Option<String>,
    pub title: Option<String>,
    pub seniority: Option<String>,
}

/// An opportunity as it is now; its past is in [`History`].
#[derive(Debug, Clone, Default)]
pub struct Opportunity {
    pub id: String,
    pub name: Option<String>,
    pub account_id: Option<String>,
    pub owner_id: String,
    pub lead_id: Option<String>,
    pub amount: Option<f64>,
    pub stage: String,
    pub forecast_category: Option<String>,
    pub created_at: Option<Instant>,
    pub close_date: Option<Instant>,
    pub closed_at: Option<Instant>,
    pub loss_reason: Option<String>,
    pub lead_source: Option<String>,
    pub kind: Option<String>,
    /// Product ids on the deal.
    pub products: Vec<String>,
    /// The currency the amount was recorded in (ISO 4217); `amount` and the
    /// amount history are in the corporate currency (see [`Currencies`]).
    pub currency: Option<String>,
    /// When the current values were observed (the import's as-of date or the
    /// row's own timestamp); `None` for rows stored before it was recorded.
    pub state_at: Option<Instant>,
}

/// How amounts were brought into one currency when the CRM was loaded.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Currencies {
    /// The currency every amount of [`CrmData`] is in: the `corporate_currency`
    /// setting, else the one currency the deals use. `None` when deals use
    /// several currencies and no corporate currency is set.
    pub corporate: Option<String>,
    /// Deals whose amounts were converted at a dated rate.
    pub converted: usize,
    /// Deals whose amounts could not be converted: their amount (and amount
    /// history) is left out (`None`), never mixed with other currencies.
    pub unconverted: Vec<Unconverted>,
}

/// A deal amount that could not be brought into the corporate currency.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unconverted {
    pub opportunity_id: String,
    pub currency: String,
    pub amount: f64,
    /// The date whose rate was needed (`YYYY-MM-DD`), when known.
    pub on: Option<String>,
    pub reason: String,
}

impl Currencies {
    /// One line for people, when some amounts were left out.
    pub fn warning(&self) -> Option<String> {
        if self.unconverted.is_empty() {
            return None;
        }
        let mut by: std::collections::BTreeMap<&str, (usize, f64)> = Default::default();
        for u in &self.unconverted {
            let e = by.entry(u.currency.as_str()).or_default();
            e.0 += 1;
            e.1 += u.amount;
        }
        let parts: Vec<String> = by
            .iter()
            .map(|(c, (n, a))| format!("{n} in {c} ({a:.0} {c})"))
            .collect();
        Some(format!(
            "{} deal amounts left out of every total, forecast and feature because they cannot be converted into {}: {}. {}",
            self.unconverted.len(),
            self.corporate.as_deref().unwrap_or("one currency"),
            parts.join(", "),
            self.unconverted[0].reason
        ))
    }
}

/// One change of a tracked opportunity field.
#[derive(Debug, Clone)]
pub struct History {
    pub opportunity_id: String,
    pub field: String,
    pub changed_at: Instant,
    pub value: Option<String>,
    pub old_value: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub id: String,
    pub kind: String,
    pub direction: Option<String>,
    pub occurred_at: Instant,
    pub duration_s: Option<i64>,
    pub outcome: Option<String>,
    pub user_id: Option<String>,
    pub lead_id: Option<String>,
    pub opportunity_id: Option<String>,
    pub contact_id: Option<String>,
    pub account_id: Option<String>,
    /// Logged from pipewise's list of next-best actions (its `sequence_id`
    /// is [`pipewise_core::FROM_LIST_SEQUENCE`]).
    pub from_list: bool,
}

#[derive(Debug, Clone)]
pub struct Turn {
    pub speaker_role: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Time the speaker spoke (the stored `speech_ms`; `end_ms - start_ms`
    /// for turns stored without it).
    pub speech_ms: i64,
    pub text: String,
}

/// A turn's speech time: as stored, or its span when none was stored (turns
/// that speak throughout, turns written before speech time was recorded,
/// canonical files without it), never more than the span.
pub fn speech_or_span(speech_ms: Option<i64>, start_ms: i64, end_ms: i64) -> i64 {
    let span = (end_ms - start_ms).max(0);
    speech_ms.map_or(span, |s| s.clamp(0, span))
}

/// One stored conversation as it was read: what it is linked to and its turns.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationDetail {
    pub id: String,
    pub started_at: Option<String>,
    pub duration_s: Option<i64>,
    pub title: Option<String>,
    pub activity_id: Option<String>,
    pub opportunity_id: Option<String>,
    pub lead_id: Option<String>,
    /// The rep on the call.
    pub user_id: Option<String>,
    /// The rep's name, when the user is known.
    pub user_name: Option<String>,
    pub source_file: Option<String>,
    pub turns: Vec<TurnDetail>,
}

/// One stored turn, every column.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TurnDetail {
    pub seq: i64,
    pub speaker: Option<String>,
    pub speaker_role: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Time the speaker spoke ([`speech_or_span`] of the stored value).
    pub speech_ms: i64,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Conversation {
    pub id: String,
    pub started_at: Option<Instant>,
    pub duration_s: Option<i64>,
    pub opportunity_id: Option<String>,
    pub lead_id: Option<String>,
    pub user_id: Option<String>,
    pub turns: Vec<Turn>,
}

#[derive(Debug, Clone, Default)]
pub struct Lead {
    pub id: String,
    pub created_at: Instant,
    pub source: Option<String>,
    pub campaign_id: Option<String>,
    pub title: Option<String>,
    pub inquiry: Option<String>,
    pub owner_id: Option<String>,
    pub first_response_at: Option<Instant>,
    pub status: Option<String>,
    pub converted_at: Option<Instant>,
    pub disqualified_at: Option<Instant>,
    pub account_id: Option<String>,
    /// The company and person as the lead gave them.
    pub company: Option<String>,
    pub contact_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub region: Option<String>,
}

/// Everything the engines read, as stored.
#[derive(Debug, Clone, Default)]
pub struct CrmData {
    pub users: Vec<User>,
    pub teams: Vec<Team>,
    pub accounts: Vec<Account>,
    pub contacts: Vec<Contact>,
    /// Sorted by id.
    pub opportunities: Vec<Opportunity>,
    /// Sorted by (opportunity, field, time).
    pub history: Vec<History>,
    /// Sorted by time.
    pub activities: Vec<Activity>,
    /// Sorted by start; turns in order.
    pub conversations: Vec<Conversation>,
    pub leads: Vec<Lead>,
    /// The product catalogue as (id, name), sorted by id.
    pub products: Vec<(String, String)>,
    /// Product-usage events, sorted by (account, time).
    pub usage: Vec<Usage>,
    /// How amounts were brought into one currency.
    pub currencies: Currencies,
    /// Periods users are away, sorted by (user, start).
    pub out_of_office: Vec<OutOfOffice>,
}

fn opt_s(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    r.get::<_, Option<String>>(i)
}
fn opt_t(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Instant>> {
    Ok(r.get::<_, Option<String>>(i)?.as_deref().and_then(instant))
}

/// One send of a message test as stored: an outbound email, SMS or social
/// message with a `sequence_id` and a `template_id` (the variant).
#[derive(Debug, Clone)]
pub struct MessageSend {
    pub id: String,
    pub kind: String,
    pub occurred_at: Instant,
    pub outcome: Option<String>,
    pub sequence_id: String,
    /// `None` when the sequence step was not recorded.
    pub sequence_step: Option<i64>,
    pub template_id: String,
    /// The probability the sending policy gave this variant, when logged.
    pub selection_probability: Option<f64>,
    pub user_id: Option<String>,
    pub lead_id: Option<String>,
    pub contact_id: Option<String>,
    pub opportunity_id: Option<String>,
}

impl SqliteStore {
    /// Every send of a message test: outbound (or direction unrecorded)
    /// emails, SMS and social messages with both a `sequence_id` and a
    /// `template_id`, oldest first.
    pub fn message_sends(&self) -> Result<Vec<MessageSend>> {
        let mut st = self.conn.prepare(
            "SELECT id, type, occurred_at, outcome, sequence_id, sequence_step, template_id,
                    selection_probability, user_id, lead_id, contact_id, opportunity_id
             FROM activities
             WHERE template_id IS NOT NULL AND sequence_id IS NOT NULL
               AND type IN ('email', 'sms', 'social')
               AND (direction IS NULL OR direction = 'outbound')
             ORDER BY occurred_at, id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(MessageSend {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    occurred_at: opt_t(r, 2)?.unwrap_or(i64::MIN),
                    outcome: opt_s(r, 3)?,
                    sequence_id: r.get(4)?,
                    sequence_step: r.get(5)?,
                    template_id: r.get(6)?,
                    selection_probability: r.get(7)?,
                    user_id: opt_s(r, 8)?,
                    lead_id: opt_s(r, 9)?,
                    contact_id: opt_s(r, 10)?,
                    opportunity_id: opt_s(r, 11)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Every person: users, contacts and leads' contacts, with their names
    /// and emails.
    pub fn people(&self) -> Result<Vec<Person>> {
        let mut out = Vec::new();
        for (kind, sql) in [
            ("user", "SELECT id, name, email FROM users ORDER BY id"),
            (
                "contact",
                "SELECT id, name, email FROM contacts ORDER BY id",
            ),
            (
                "lead",
                "SELECT id, contact_name, email FROM leads ORDER BY id",
            ),
        ] {
            let mut st = self.conn.prepare(sql)?;
            let rows = st.query_map([], |r| {
                Ok(Person {
                    kind,
                    id: r.get(0)?,
                    name: r.get(1)?,
                    email: r.get(2)?,
                })
            })?;
            for p in rows {
                out.push(p?);
            }
        }
        Ok(out)
    }

    /// One conversation and its turns in order, as stored; `None` when no
    /// conversation has this id.
    pub fn conversation(&self, id: &str) -> Result<Option<ConversationDetail>> {
        let c = &self.conn;
        let mut st = c.prepare(
            "SELECT c.id, c.started_at, c.duration_s, c.title, c.activity_id, c.opportunity_id,
                    c.lead_id, c.user_id, u.name, c.source_file
             FROM conversations c LEFT JOIN users u ON u.id = c.user_id WHERE c.id = ?1",
        )?;
        let mut rows = st.query([id])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let mut detail = ConversationDetail {
            id: r.get(0)?,
            started_at: opt_s(r, 1)?,
            duration_s: r.get(2)?,
            title: opt_s(r, 3)?,
            activity_id: opt_s(r, 4)?,
            opportunity_id: opt_s(r, 5)?,
            lead_id: opt_s(r, 6)?,
            user_id: opt_s(r, 7)?,
            user_name: opt_s(r, 8)?,
            source_file: opt_s(r, 9)?,
            turns: Vec::new(),
        };
        let mut st = c.prepare(
            "SELECT seq, speaker, speaker_role, start_ms, end_ms, speech_ms, text
             FROM conversation_turns WHERE conversation_id = ?1 ORDER BY seq",
        )?;
        detail.turns = st
            .query_map([id], |r| {
                let (start_ms, end_ms) = (r.get(3)?, r.get(4)?);
                Ok(TurnDetail {
                    seq: r.get(0)?,
                    speaker: opt_s(r, 1)?,
                    speaker_role: opt_s(r, 2)?,
                    start_ms,
                    end_ms,
                    speech_ms: speech_or_span(r.get(5)?, start_ms, end_ms),
                    text: opt_s(r, 6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some(detail))
    }

    /// Loads the CRM for the feature engine.
    pub fn load_crm(&self) -> Result<CrmData> {
        let c = &self.conn;
        let mut data = CrmData::default();
        let mut st = c.prepare(
            "SELECT id, name, role, manager_id, team_id, region, hire_date, timezone, working_hours
             FROM users ORDER BY id",
        )?;
        data.users = st
            .query_map([], |r| {
                Ok(User {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    role: opt_s(r, 2)?,
                    manager_id: opt_s(r, 3)?,
                    team_id: opt_s(r, 4)?,
                    region: opt_s(r, 5)?,
                    hire_date: opt_t(r, 6)?,
                    timezone: opt_s(r, 7)?,
                    working_hours: opt_s(r, 8)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = c.prepare("SELECT id, name, region FROM teams ORDER BY id")?;
        data.teams = st
            .query_map([], |r| {
                Ok(Team {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    region: opt_s(r, 2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = c.prepare(
            "SELECT id, name, industry, employees, annual_revenue, location, year_established, owner_id
             FROM accounts ORDER BY id",
        )?;
        data.accounts = st
            .query_map([], |r| {
                Ok(Account {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    industry: opt_s(r, 2)?,
                    employees: r.get(3)?,
                    annual_revenue: r.get(4)?,
                    location: opt_s(r, 5)?,
                    year_established: r.get::<_, Option<i64>>(6).ok().flatten(),
                    owner_id: opt_s(r, 7)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st =
            c.prepare("SELECT id, account_id, title, seniority FROM contacts ORDER BY id")?;
        data.contacts = st
            .query_map([], |r| {
                Ok(Contact {
                    id: r.get(0)?,
                    account_id: opt_s(r, 1)?,
                    title: opt_s(r, 2)?,
                    seniority: opt_s(r, 3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = c.prepare(
            "SELECT id, name, account_id, owner_id, lead_id, amount, stage, forecast_category,
                    created_at, close_date, closed_at, loss_reason, lead_source, type, currency,
                    state_at
             FROM opportunities ORDER BY id",
        )?;
        data.opportunities = st
            .query_map([], |r| {
                Ok(Opportunity {
                    id: r.get(0)?,
                    name: opt_s(r, 1)?,
                    account_id: opt_s(r, 2)?,
                    owner_id: r.get(3)?,
                    lead_id: opt_s(r, 4)?,
                    amount: r.get(5)?,
                    stage: r.get(6)?,
                    forecast_category: opt_s(r, 7)?,
                    created_at: opt_t(r, 8)?,
                    close_date: opt_t(r, 9)?,
                    closed_at: opt_t(r, 10)?,
                    loss_reason: opt_s(r, 11)?,
                    lead_source: opt_s(r, 12)?,
                    kind: opt_s(r, 13)?,
                    products: Vec::new(),
                    currency: opt_s(r, 14)?,
                    state_at: opt_t(r, 15)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = c.prepare("SELECT id, name FROM products ORDER BY id")?;
        data.products = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = c.prepare(
            "SELECT opportunity_id, product_id FROM opportunity_products ORDER BY opportunity_id, product_id",
        )?;
        let mut rows = st.query([])?;
        let mut at = 0;
        while let Some(r) = rows.next()? {
            let (o, p): (String, String) = (r.get(0)?, r.get(1)?);
            while at < data.opportunities.len() && data.opportunities[at].id < o {
                at += 1;
            }
            if at < data.opportunities.len() && data.opportunities[at].id == o {
                data.opportunities[at].products.push(p);
            }
        }
        let mut st = c.prepare(
            "SELECT opportunity_id, field, changed_at, value, old_value FROM opportunity_history
             ORDER BY opportunity_id, field, changed_at",
        )?;
        data.history = st
            .query_map([], |r| {
                Ok(History {
                    opportunity_id: r.get(0)?,
                    field: r.get(1)?,
                    changed_at: opt_t(r, 2)?.unwrap_or(i64::MIN),
                    value: opt_s(r, 3)?,
                    old_value: opt_s(r, 4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = c.prepare(
            "SELECT id, type, direction, occurred_at, duration_s, outcome, user_id, lead_id,
                    opportunity_id, contact_id, account_id, sequence_id IS ?1
             FROM activities ORDER BY occurred_at, id",
        )?;
        data.activities = st
            .query_map([pipewise_core::FROM_LIST_SEQUENCE], |r| {
                Ok(Activity {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    direction: opt_s(r, 2)?,
                    occurred_at: opt_t(r, 3)?.unwrap_or(i64::MIN),
                    duration_s: r.get(4)?,
                    outcome: opt_s(r, 5)?,
                    user_id: opt_s(r, 6)?,
                    lead_id: opt_s(r, 7)?,
                    opportunity_id: opt_s(r, 8)?,
                    contact_id: opt_s(r, 9)?,
                    account_id: opt_s(r, 10)?,
                    from_list: r.get(11)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = c.prepare(
            "SELECT account_id, occurred_at, quantity, product_id FROM usage_events
             ORDER BY account_id, occurred_at, id",
        )?;
        data.usage = st
            .query_map([], |r| {
                Ok(Usage {
                    account_id: r.get(0)?,
                    occurred_at: opt_t(r, 1)?.unwrap_or(i64::MIN),
                    quantity: r.get::<_, Option<f64>>(2)?.unwrap_or(1.0),
                    product_id: opt_s(r, 3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = c.prepare(
            "SELECT user_id, start_at, end_at, reason FROM out_of_office
             ORDER BY user_id, start_at, id",
        )?;
        data.out_of_office = st
            .query_map([], |r| {
                Ok(OutOfOffice {
                    user_id: r.get(0)?,
                    start: opt_t(r, 1)?.unwrap_or(i64::MIN),
                    end: opt_t(r, 2)?.unwrap_or(i64::MIN),
                    reason: opt_s(r, 3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = c.prepare(
            "SELECT id, started_at, duration_s, opportunity_id, lead_id, user_id
             FROM conversations ORDER BY id",
        )?;
        data.conversations = st
            .query_map([], |r| {
                Ok(Conversation {
                    id: r.get(0)?,
                    started_at: opt_t(r, 1)?,
                    duration_s: r.get(2)?,
                    opportunity_id: opt_s(r, 3)?,
                    lead_id: opt_s(r, 4)?,
                    user_id: opt_s(r, 5)?,
                    turns: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = c.prepare(
            "SELECT conversation_id, speaker_role, start_ms, end_ms, text, speech_ms
             FROM conversation_turns ORDER BY conversation_id, seq",
        )?;
        let mut rows = st.query([])?;
        let mut at = 0;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            while at < data.conversations.len() && data.conversations[at].id < id {
                at += 1;
            }
            if at < data.conversations.len() && data.conversations[at].id == id {
                let (start_ms, end_ms) = (r.get(2)?, r.get(3)?);
                data.conversations[at].turns.push(Turn {
                    speaker_role: opt_s(r, 1)?,
                    start_ms,
                    end_ms,
                    speech_ms: speech_or_span(r.get(5)?, start_ms, end_ms),
                    text: opt_s(r, 4)?.unwrap_or_default(),
                });
            }
        }
        data.conversations
            .sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        let mut st = c.prepare(
            "SELECT id, created_at, source, campaign_id, title, inquiry, owner_id, first_response_at,
                    status, converted_at, disqualified_at, account_id, company, contact_name
             FROM leads ORDER BY created_at, id",
        )?;
        data.leads = st
            .query_map([], |r| {
                Ok(Lead {
                    id: r.get(0)?,
                    created_at: opt_t(r, 1)?.unwrap_or(i64::MIN),
                    source: opt_s(r, 2)?,
                    campaign_id: opt_s(r, 3)?,
                    title: opt_s(r, 4)?,
                    inquiry: opt_s(r, 5)?,
                    owner_id: opt_s(r, 6)?,
                    first_response_at: opt_t(r, 7)?,
                    status: opt_s(r, 8)?,
                    converted_at: opt_t(r, 9)?,
                    disqualified_at: opt_t(r, 10)?,
                    account_id: opt_s(r, 11)?,
                    company: opt_s(r, 12)?,
                    contact_name: opt_s(r, 13)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let rates = self.exchange_rates()?;
        let corporate = self.setting(CORPORATE_CURRENCY)?;
        data.currencies = convert_amounts(&mut data, corporate, &rates);
        Ok(data)
    }

    /// A setting of the organisation (`None` when unset).
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets the corporate currency (ISO 4217). Deals and product lines that
    /// name no currency were in the previous corporate currency: when it
    /// changes they are given it, so that they keep their value. Returns how
    /// many deals were.
    pub fn set_corporate_currency(&mut self, code: &str) -> Result<u64> {
        let tx = self.conn.transaction()?;
        let old: Option<String> = {
            use rusqlite::OptionalExtension;
            tx.query_row(
                "SELECT value FROM settings WHERE key = ?1",
                [CORPORATE_CURRENCY],
                |r| r.get(0),
            )
            .optional()?
        };
        let mut stamped = 0;
        if let Some(old) = old.filter(|o| o != code) {
            stamped = tx.execute(
                "UPDATE opportunities SET currency = ?1 WHERE currency IS NULL",
                [&old],
            )? as u64;
            tx.execute(
                "UPDATE opportunity_products SET currency = ?1 WHERE currency IS NULL",
                [&old],
            )?;
        }
        tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [CORPORATE_CURRENCY, code],
        )?;
        tx.commit()?;
        Ok(stamped)
    }

    /// Dated exchange rates: (currency, valid_from `YYYY-MM-DD`, rate), sorted.
    pub fn exchange_rates(&self) -> Result<Vec<(String, String, f64)>> {
        let mut st = self.conn.prepare(
            "SELECT currency, valid_from, rate FROM exchange_rates ORDER BY currency, valid_from",
        )?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Deal amounts by currency (`None`: no currency recorded, i.e. the
    /// corporate currency): (currency, deals, total amount).
    pub fn amounts_by_currency(&self) -> Result<Vec<(Option<String>, i64, f64)>> {
        let mut st = self.conn.prepare(
            "SELECT currency, count(*), coalesce(sum(amount), 0) FROM opportunities
             GROUP BY currency ORDER BY count(*) DESC",
        )?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

/// The setting that names the corporate currency (ISO 4217).
pub const CORPORATE_CURRENCY: &str = "corporate_currency";

/// Brings every deal amount (current and in the amount history) into one
/// currency. An amount recorded in another currency is divided by the rate in
/// effect on the deal's close date (its created date when it has none, the
/// latest rate when it has neither), times the corporate currency's own rate
/// when the rates are quoted against another base: the
/// convention of Salesforce's dated exchange rates, where one unit of the
/// corporate currency is `rate` units of the deal's currency. A deal with no
/// currency is in the corporate currency. Amounts with no rate in effect on
/// that date are left out (`None`) and listed, never added to others.
///
/// Without a corporate currency setting, the one currency the deals use is
/// it; when they use several, the most used one is the reference and the
/// others are left out until a corporate currency and rates are given.
pub fn convert_amounts(
    data: &mut CrmData,
    corporate: Option<String>,
    rates: &[(String, String, f64)],
) -> Currencies {
    let mut used: std::collections::BTreeMap<&str, usize> = Default::default();
    for o in &data.opportunities {
        if let Some(c) = o.currency.as_deref() {
            *used.entry(c).or_default() += 1;
        }
    }
    let (corporate, set) = match corporate {
        Some(c) => (Some(c), true),
        None => (
            used.iter()
                .max_by_key(|(c, n)| (**n, std::cmp::Reverse(*c)))
                .map(|(c, _)| c.to_string()),
            false,
        ),
    };
    let several = used.len() > 1;
    // Without a corporate currency, a deal that names none is in the one
    // currency the others name only if none names one: otherwise unknown.
    let untagged_unknown = !set && !used.is_empty();
    let mut out = Currencies {
        corporate: corporate.clone(),
        ..Default::default()
    };
    let mut factor: std::collections::HashMap<String, Option<f64>> = Default::default();
    for o in &mut data.opportunities {
        let Some(c) = o.currency.clone() else {
            if untagged_unknown {
                if let Some(a) = o.amount.take() {
                    out.unconverted.push(Unconverted {
                        opportunity_id: o.id.clone(),
                        currency: "(none)".into(),
                        amount: a,
                        on: None,
                        reason: "Some deals name a currency and this one does not, and no corporate currency is set: set one with `pipewise currency --corporate CODE` (deals without a currency are in it)".into(),
                    });
                }
            }
            continue;
        };
        if Some(&c) == corporate.as_ref() {
            continue;
        }
        let date = o.close_date.or(o.created_at).map(day_of);
        // A deal with no date at all takes the latest rate.
        let on = date.clone().unwrap_or_else(|| "9999-12-31".into());
        let rate_of = |cur: &str| {
            rates
                .iter()
                .filter(|(rc, from, _)| rc == cur && *from <= on)
                .next_back()
                .map(|(_, _, r)| *r)
        };
        // Rates quoted against another base (Salesforce's are per its own
        // corporate currency): the corporate currency's own rate converts
        // from that base; without rates of its own, rates are against it.
        let corporate_rate = match corporate.as_deref() {
            Some(k) if rates.iter().any(|(rc, _, _)| rc == k) => rate_of(k),
            _ => Some(1.0),
        };
        let rate = if !set && several {
            None
        } else {
            rate_of(&c).zip(corporate_rate).map(|(r, k)| r / k)
        };
        factor.insert(o.id.clone(), rate.map(|r| 1.0 / r));
        match rate {
            Some(r) => {
                o.amount = o.amount.map(|a| a / r);
                out.converted += 1;
            }
            None => {
                if let Some(a) = o.amount.take() {
                    let reason = if !set && several {
                        "The deals use several currencies and no corporate currency is set: set one with `pipewise currency --corporate CODE` and import exchange_rates.csv".to_string()
                    } else {
                        format!(
                            "No {c} rate in effect on that date: import exchange_rates.csv (currency, valid_from, rate = units of {c} per 1 {})",
                            corporate.as_deref().unwrap_or("corporate unit")
                        )
                    };
                    out.unconverted.push(Unconverted {
                        opportunity_id: o.id.clone(),
                        currency: c.clone(),
                        amount: a,
                        on: date,
                        reason,
                    });
                }
            }
        }
    }
    if !factor.is_empty() {
        for h in &mut data.history {
            if h.field != "amount" {
                continue;
            }
            let Some(f) = factor.get(&h.opportunity_id) else {
                continue;
            };
            let conv = |v: &Option<String>| -> Option<String> {
                let x: f64 = v.as_deref()?.parse().ok()?;
                f.map(|f| (x * f).to_string())
            };
            h.value = conv(&h.value);
            h.old_value = conv(&h.old_value);
        }
    }
    out
}

/// The UTC day (`YYYY-MM-DD`) of an instant.
pub fn day_of(t: Instant) -> String {
    pipewise_core::value::format_day(t)
}
