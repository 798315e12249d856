//! Counts, date ranges, data-quality findings and a pipeline summary.

use std::collections::BTreeMap;

use pipewise_core::Entity;
use rusqlite::Connection;
use serde::Serialize;

use crate::Result;

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub schema_version: i64,
    /// Rows per entity table.
    pub counts: BTreeMap<String, u64>,
    pub entities: BTreeMap<String, EntityStats>,
    pub data_quality: DataQuality,
    pub pipeline: Pipeline,
    pub org: OrgSummary,
    pub leads: LeadSummary,
    pub imports: u64,
    /// Whether the file is encrypted at rest.
    pub encryption: Encryption,
}

/// Encryption at rest of the database file ([`crate::encryption`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Encryption {
    pub encrypted: bool,
    /// The cipher and key derivation, when encrypted, e.g. "SQLCipher 4.6.1
    /// community: AES-256-CBC, HMAC-SHA512, PBKDF2-HMAC-SHA512 256000".
    pub cipher: Option<String>,
}

impl Encryption {
    pub(crate) fn of(store: &crate::SqliteStore) -> Result<Self> {
        if !store.is_encrypted() {
            return Ok(Self::default());
        }
        let get = |pragma: &str| -> Result<String> {
            Ok(store
                .conn
                .query_row(&format!("PRAGMA {pragma}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| match v {
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    other => format!("{other:?}"),
                })?)
        };
        Ok(Self {
            encrypted: true,
            cipher: Some(format!(
                "SQLCipher {}: AES-256-CBC per page, {}, {} with {} iterations",
                get("cipher_version")?,
                get("cipher_hmac_algorithm")?,
                get("cipher_kdf_algorithm")?,
                get("kdf_iter")?
            )),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OrgSummary {
    pub teams: u64,
    pub regions: Vec<String>,
    pub users_by_role: BTreeMap<String, u64>,
}

/// Speed to lead: how fast and how often inbound leads are answered, and
/// how each response-time band converts.
#[derive(Debug, Clone, Serialize)]
pub struct LeadSummary {
    pub leads: u64,
    pub answered: u64,
    pub median_response_minutes: Option<f64>,
    pub converted: u64,
    pub by_response_time: Vec<ResponseBand>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseBand {
    pub band: String,
    pub leads: u64,
    pub converted: u64,
    pub conversion_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntityStats {
    pub count: u64,
    /// The column the date range is over.
    pub time_field: Option<String>,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Share of rows with a value, per optional field.
    pub filled: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataQuality {
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `missing`, `orphan`, `duplicate` or `inconsistent`.
    pub kind: String,
    pub entity: String,
    pub count: u64,
    pub message: String,
    /// A few ids (or values) to look at.
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub by_stage: Vec<PipelineStage>,
    pub open: u64,
    pub open_amount: f64,
    pub won: u64,
    pub lost: u64,
    pub won_amount: f64,
    /// Won / (won + lost); `None` with no closed deals.
    pub win_rate: Option<f64>,
    pub reps: Vec<RepSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineStage {
    pub stage: String,
    pub count: u64,
    pub amount: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepSummary {
    pub id: String,
    pub name: String,
    pub team: Option<String>,
    pub open: u64,
    pub won: u64,
    pub lost: u64,
    pub won_amount: f64,
    pub win_rate: Option<f64>,
}

fn one<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> Result<T> {
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}

/// Runs `count_sql` (one number) and, when non-zero, `examples_sql` (one text column).
fn finding(
    conn: &Connection,
    kind: &str,
    entity: &str,
    message: &str,
    count_sql: &str,
    examples_sql: &str,
) -> Result<Option<Finding>> {
    let count: i64 = one(conn, count_sql)?;
    if count == 0 {
        return Ok(None);
    }
    let mut st = conn.prepare(&format!("{examples_sql} LIMIT 5"))?;
    let examples = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(Finding {
        kind: kind.into(),
        entity: entity.into(),
        count: count as u64,
        message: message.into(),
        examples,
    }))
}

/// Optional fields whose partial absence is worth a finding.
const WATCHED: &[(&str, &[&str])] = &[
    (
        "opportunities",
        &["amount", "created_at", "forecast_category"],
    ),
    (
        "leads",
        &["owner_id", "first_response_at", "source", "status"],
    ),
    ("accounts", &["industry", "employees", "annual_revenue"]),
    ("users", &["team_id", "hire_date", "email"]),
    ("activities", &["user_id", "outcome"]),
    ("contacts", &["title", "account_id"]),
];

/// A deal's amount (`o.amount`) in the corporate currency, at the rate in
/// effect on its close date (created date without one), through the corporate
/// currency's own rate when the rates are quoted against another base; NULL
/// (left out of sums) when it cannot be converted. As `read::convert_amounts`.
const AMOUNT: &str = "(CASE
    WHEN o.currency IS NULL AND (SELECT value FROM settings WHERE key = 'corporate_currency') IS NULL
        AND EXISTS (SELECT 1 FROM opportunities WHERE currency IS NOT NULL) THEN NULL
    WHEN o.currency IS NULL OR o.currency = coalesce((SELECT value FROM settings WHERE key = 'corporate_currency'),
        (SELECT currency FROM opportunities WHERE currency IS NOT NULL GROUP BY currency ORDER BY count(*) DESC, currency LIMIT 1)) THEN o.amount
    WHEN (SELECT value FROM settings WHERE key = 'corporate_currency') IS NULL THEN NULL
    ELSE o.amount / (SELECT r.rate FROM exchange_rates r WHERE r.currency = o.currency
        AND r.valid_from <= coalesce(o.close_date, substr(o.created_at, 1, 10), '9999-12-31') ORDER BY r.valid_from DESC LIMIT 1)
      * coalesce((SELECT r.rate FROM exchange_rates r
            WHERE r.currency = (SELECT value FROM settings WHERE key = 'corporate_currency')
            AND r.valid_from <= coalesce(o.close_date, substr(o.created_at, 1, 10), '9999-12-31') ORDER BY r.valid_from DESC LIMIT 1),
          CASE WHEN EXISTS (SELECT 1 FROM exchange_rates r
              WHERE r.currency = (SELECT value FROM settings WHERE key = 'corporate_currency')) THEN NULL ELSE 1 END)
    END)";

pub(crate) fn compute(conn: &Connection) -> Result<Stats> {
    let schema_version: i64 = one(conn, "PRAGMA user_version")?;
    let mut counts = BTreeMap::new();
    let mut entities = BTreeMap::new();
    let mut findings = Vec::new();
    for e in Entity::ALL {
        let table = e.table();
        let optional: Vec<&str> = e
            .fields()
            .iter()
            .filter(|f| !f.required)
            .map(|f| f.name)
            .collect();
        let mut sel = vec!["count(*)".to_string()];
        sel.extend(optional.iter().map(|c| format!("count({c})")));
        if let Some(tf) = e.time_field() {
            sel.push(format!("min({tf})"));
            sel.push(format!("max({tf})"));
        }
        let sql = format!("SELECT {} FROM {table}", sel.join(", "));
        let (count, filled_counts, first, last) = conn.query_row(&sql, [], |r| {
            let n: i64 = r.get(0)?;
            let filled: Vec<i64> = (0..optional.len())
                .map(|i| r.get(i + 1))
                .collect::<rusqlite::Result<_>>()?;
            let (a, b) = if e.time_field().is_some() {
                (
                    r.get::<_, Option<String>>(optional.len() + 1)?,
                    r.get::<_, Option<String>>(optional.len() + 2)?,
                )
            } else {
                (None, None)
            };
            Ok((n as u64, filled, a, b))
        })?;
        let mut filled = BTreeMap::new();
        for (c, n) in optional.iter().zip(&filled_counts) {
            let share = if count == 0 {
                0.0
            } else {
                *n as f64 / count as f64
            };
            filled.insert((*c).to_string(), (share * 10_000.0).round() / 10_000.0);
            let watched = WATCHED
                .iter()
                .any(|(t, cols)| *t == table && cols.contains(c));
            if watched && count > 0 && (*n as u64) < count && *n > 0 {
                let missing = count - *n as u64;
                let key = e.key()[0];
                findings.push(Finding {
                    kind: "missing".into(),
                    entity: table.into(),
                    count: missing,
                    message: format!("{missing} of {count} {table} have no {c}"),
                    examples: {
                        let mut st = conn.prepare(&format!(
                            "SELECT {key} FROM {table} WHERE {c} IS NULL LIMIT 5"
                        ))?;
                        st.query_map([], |r| r.get::<_, String>(0))?
                            .collect::<rusqlite::Result<Vec<_>>>()?
                    },
                });
            }
        }
        counts.insert(table.to_string(), count);
        entities.insert(
            table.to_string(),
            EntityStats {
                count,
                time_field: e.time_field().map(str::to_string),
                first,
                last,
                filled,
            },
        );
    }

    let checks: &[(&str, &str, &str, &str, &str)] = &[
        (
            "orphan",
            "opportunities",
            "opportunities without an account",
            "SELECT count(*) FROM opportunities WHERE account_id IS NULL",
            "SELECT id FROM opportunities WHERE account_id IS NULL ORDER BY id",
        ),
        (
            "missing",
            "opportunities",
            "open opportunities without an expected close date",
            "SELECT count(*) FROM opportunities WHERE outcome = 'open' AND close_date IS NULL",
            "SELECT id FROM opportunities WHERE outcome = 'open' AND close_date IS NULL ORDER BY id",
        ),
        (
            "missing",
            "opportunities",
            "closed opportunities without a close date",
            "SELECT count(*) FROM opportunities WHERE outcome <> 'open' AND closed_at IS NULL AND close_date IS NULL",
            "SELECT id FROM opportunities WHERE outcome <> 'open' AND closed_at IS NULL AND close_date IS NULL ORDER BY id",
        ),
        (
            "inconsistent",
            "opportunities",
            "opportunities that close before they were created",
            "SELECT count(*) FROM opportunities WHERE coalesce(closed_at, close_date) < substr(created_at, 1, 10)",
            "SELECT id FROM opportunities WHERE coalesce(closed_at, close_date) < substr(created_at, 1, 10) ORDER BY id",
        ),
        (
            "orphan",
            "contacts",
            "contacts without an account",
            "SELECT count(*) FROM contacts WHERE account_id IS NULL",
            "SELECT id FROM contacts WHERE account_id IS NULL ORDER BY id",
        ),
        (
            "orphan",
            "activities",
            "activities linked to no lead, opportunity, contact or account",
            "SELECT count(*) FROM activities WHERE lead_id IS NULL AND opportunity_id IS NULL AND contact_id IS NULL AND account_id IS NULL",
            "SELECT id FROM activities WHERE lead_id IS NULL AND opportunity_id IS NULL AND contact_id IS NULL AND account_id IS NULL ORDER BY id",
        ),
        (
            "orphan",
            "conversations",
            "conversations linked to no opportunity or lead",
            "SELECT count(*) FROM conversations WHERE opportunity_id IS NULL AND lead_id IS NULL",
            "SELECT id FROM conversations WHERE opportunity_id IS NULL AND lead_id IS NULL ORDER BY id",
        ),
        (
            "orphan",
            "conversations",
            "conversations without any transcript turn",
            "SELECT count(*) FROM conversations c WHERE NOT EXISTS (SELECT 1 FROM conversation_turns t WHERE t.conversation_id = c.id)",
            "SELECT id FROM conversations c WHERE NOT EXISTS (SELECT 1 FROM conversation_turns t WHERE t.conversation_id = c.id) ORDER BY id",
        ),
        (
            "orphan",
            "users",
            "reps that own opportunities but are not on any team",
            "SELECT count(*) FROM users u WHERE team_id IS NULL AND EXISTS (SELECT 1 FROM opportunities o WHERE o.owner_id = u.id)",
            "SELECT id FROM users u WHERE team_id IS NULL AND EXISTS (SELECT 1 FROM opportunities o WHERE o.owner_id = u.id) ORDER BY id",
        ),
        (
            "orphan",
            "users",
            "reps without a manager",
            "SELECT count(*) FROM users WHERE coalesce(role, 'rep') IN ('rep', 'sdr') AND manager_id IS NULL",
            "SELECT id FROM users WHERE coalesce(role, 'rep') IN ('rep', 'sdr') AND manager_id IS NULL ORDER BY id",
        ),
        (
            "duplicate",
            "accounts",
            "accounts sharing a name under different ids",
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) n FROM accounts GROUP BY lower(trim(name)) HAVING n > 1)",
            "SELECT name FROM accounts GROUP BY lower(trim(name)) HAVING count(*) > 1 ORDER BY name",
        ),
        (
            "duplicate",
            "users",
            "users sharing an email under different ids",
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) n FROM users WHERE email IS NOT NULL GROUP BY lower(trim(email)) HAVING n > 1)",
            "SELECT email FROM users WHERE email IS NOT NULL GROUP BY lower(trim(email)) HAVING count(*) > 1 ORDER BY email",
        ),
        (
            "duplicate",
            "contacts",
            "contacts sharing an email under different ids",
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) n FROM contacts WHERE email IS NOT NULL GROUP BY lower(trim(email)) HAVING n > 1)",
            "SELECT email FROM contacts WHERE email IS NOT NULL GROUP BY lower(trim(email)) HAVING count(*) > 1 ORDER BY email",
        ),
        (
            "duplicate",
            "leads",
            "leads sharing an email (the same person inquiring again)",
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) n FROM leads WHERE email IS NOT NULL GROUP BY lower(trim(email)) HAVING n > 1)",
            "SELECT email FROM leads WHERE email IS NOT NULL GROUP BY lower(trim(email)) HAVING count(*) > 1 ORDER BY email",
        ),
        (
            "duplicate",
            "opportunities",
            "opportunities with the same name on the same account",
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) n FROM opportunities WHERE name IS NOT NULL AND account_id IS NOT NULL GROUP BY account_id, lower(trim(name)) HAVING n > 1)",
            "SELECT account_id || ': ' || name FROM opportunities WHERE name IS NOT NULL AND account_id IS NOT NULL GROUP BY account_id, lower(trim(name)) HAVING count(*) > 1 ORDER BY 1",
        ),
        (
            "missing",
            "leads",
            "leads never answered (no first response, not converted or disqualified)",
            "SELECT count(*) FROM leads WHERE first_response_at IS NULL AND converted_at IS NULL AND disqualified_at IS NULL",
            "SELECT id FROM leads WHERE first_response_at IS NULL AND converted_at IS NULL AND disqualified_at IS NULL ORDER BY created_at",
        ),
    ];
    let latest_year = pipewise_core::date::latest_year();
    let unconvertible_count = format!(
        "SELECT count(*) FROM opportunities o WHERE o.amount IS NOT NULL AND {AMOUNT} IS NULL"
    );
    let unconvertible_examples = format!(
        "SELECT o.id || ' (' || coalesce(o.currency, 'no currency') || ' ' || o.amount || ')' FROM opportunities o WHERE o.amount IS NOT NULL AND {AMOUNT} IS NULL ORDER BY o.id"
    );
    let mut dated: Vec<(&str, &str, String, String, String)> = Vec::new();
    for (table, col) in [
        ("opportunities", "created_at"),
        ("opportunities", "close_date"),
        ("opportunities", "closed_at"),
        ("leads", "created_at"),
        ("activities", "occurred_at"),
        ("accounts", "created_at"),
    ] {
        let cond = format!(
            "{col} IS NOT NULL AND (substr({col}, 1, 4) < '1900' OR substr({col}, 1, 4) > '{latest_year}')"
        );
        dated.push((
            table,
            col,
            format!("implausible {col} (before 1900 or after {latest_year}): a two-digit year read as four digits?"),
            format!("SELECT count(*) FROM {table} WHERE {cond}"),
            format!("SELECT id || ': ' || {col} FROM {table} WHERE {cond} ORDER BY id"),
        ));
    }
    for (table, _, message, count_sql, examples_sql) in &dated {
        if let Some(f) = finding(
            conn,
            "inconsistent",
            table,
            message,
            count_sql,
            examples_sql,
        )? {
            findings.push(f);
        }
    }
    let overdue_cond = "outcome = 'open' AND close_date < coalesce(substr((SELECT max(changed_at) FROM opportunity_history), 1, 10), date('now'))";
    let late: [(&str, &str, &str, String, String); 2] = [
        (
            "inconsistent",
            "opportunities",
            "open deals whose close date has passed (as of the latest recorded change): update the close date or close them",
            format!("SELECT count(*) FROM opportunities WHERE {overdue_cond}"),
            format!(
                "SELECT id || ': ' || close_date FROM opportunities WHERE {overdue_cond} ORDER BY close_date"
            ),
        ),
        (
            "inconsistent",
            "opportunities",
            "deal amounts that cannot be converted into the corporate currency (no corporate currency set, or no rate in effect on the close date): left out of every total",
            unconvertible_count,
            unconvertible_examples,
        ),
    ];
    for (kind, entity, message, count_sql, examples_sql) in &late {
        if let Some(f) = finding(conn, kind, entity, message, count_sql, examples_sql)? {
            findings.push(f);
        }
    }
    for (kind, entity, message, count_sql, examples_sql) in checks {
        if let Some(f) = finding(conn, kind, entity, message, count_sql, examples_sql)? {
            findings.push(f);
        }
    }

    let mut by_stage = Vec::new();
    {
        let mut st = conn.prepare(&format!(
            "SELECT stage, count(*), coalesce(sum({AMOUNT}), 0) FROM opportunities o GROUP BY stage"
        ))?;
        let rows = st.query_map([], |r| {
            Ok(PipelineStage {
                stage: r.get(0)?,
                count: r.get::<_, i64>(1)? as u64,
                amount: r.get(2)?,
            })
        })?;
        for r in rows {
            by_stage.push(r?);
        }
        let order = |s: &str| {
            pipewise_core::schema::STAGES
                .values
                .iter()
                .position(|v| *v == s)
                .unwrap_or(usize::MAX)
        };
        by_stage.sort_by_key(|s| order(&s.stage));
    }
    let (open, open_amount, won, lost, won_amount) = conn.query_row(
        &format!("SELECT count(*) FILTER (WHERE outcome = 'open'), coalesce(sum({AMOUNT}) FILTER (WHERE outcome = 'open'), 0),
                count(*) FILTER (WHERE outcome = 'won'), count(*) FILTER (WHERE outcome = 'lost'),
                coalesce(sum({AMOUNT}) FILTER (WHERE outcome = 'won'), 0)
         FROM opportunities o"),
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get::<_, i64>(2)? as u64, r.get::<_, i64>(3)? as u64, r.get(4)?)),
    )?;
    let rate = |w: u64, l: u64| (w + l > 0).then(|| w as f64 / (w + l) as f64);
    let mut reps = Vec::new();
    {
        let mut st = conn.prepare(&format!(
            "SELECT u.id, u.name, t.name,
                    count(*) FILTER (WHERE o.outcome = 'open'), count(*) FILTER (WHERE o.outcome = 'won'),
                    count(*) FILTER (WHERE o.outcome = 'lost'), coalesce(sum({AMOUNT}) FILTER (WHERE o.outcome = 'won'), 0)
             FROM opportunities o JOIN users u ON u.id = o.owner_id LEFT JOIN teams t ON t.id = u.team_id
             GROUP BY u.id ORDER BY u.name"
        ))?;
        let rows = st.query_map([], |r| {
            let (w, l) = (r.get::<_, i64>(4)? as u64, r.get::<_, i64>(5)? as u64);
            Ok(RepSummary {
                id: r.get(0)?,
                name: r.get(1)?,
                team: r.get(2)?,
                open: r.get::<_, i64>(3)? as u64,
                won: w,
                lost: l,
                won_amount: r.get(6)?,
                win_rate: rate(w, l),
            })
        })?;
        for r in rows {
            reps.push(r?);
        }
    }
    let imports: i64 = one(conn, "SELECT count(*) FROM imports")?;
    let org = {
        let teams: i64 = one(conn, "SELECT count(*) FROM teams")?;
        let mut st = conn.prepare(
            "SELECT DISTINCT region FROM teams WHERE region IS NOT NULL ORDER BY region",
        )?;
        let regions = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut st = conn
            .prepare("SELECT coalesce(role, 'rep'), count(*) FROM users GROUP BY 1 ORDER BY 1")?;
        let users_by_role = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
        OrgSummary {
            teams: teams as u64,
            regions,
            users_by_role,
        }
    };
    let leads = {
        let mut st = conn.prepare(
            "SELECT (julianday(first_response_at) - julianday(created_at)) * 1440.0, converted_at IS NOT NULL FROM leads",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, Option<f64>>(0)?, r.get::<_, bool>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let bands: [(&str, f64, f64); 4] = [
            ("under 5 minutes", 0.0, 5.0),
            ("5 to 60 minutes", 5.0, 60.0),
            ("1 to 24 hours", 60.0, 1440.0),
            ("over 24 hours", 1440.0, f64::MAX),
        ];
        let mut by = vec![(0u64, 0u64); bands.len() + 1];
        let mut minutes = Vec::new();
        for (m, conv) in &rows {
            let i = match m {
                Some(m) => {
                    minutes.push(*m);
                    bands
                        .iter()
                        .position(|b| *m >= b.1 && *m < b.2)
                        .unwrap_or(bands.len() - 1)
                }
                None => bands.len(),
            };
            by[i].0 += 1;
            by[i].1 += u64::from(*conv);
        }
        minutes.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let median = (!minutes.is_empty()).then(|| minutes[minutes.len() / 2]);
        let names: Vec<&str> = bands
            .iter()
            .map(|b| b.0)
            .chain(["never answered"])
            .collect();
        LeadSummary {
            leads: rows.len() as u64,
            answered: minutes.len() as u64,
            median_response_minutes: median.map(|m| (m * 10.0).round() / 10.0),
            converted: rows.iter().filter(|r| r.1).count() as u64,
            by_response_time: names
                .iter()
                .zip(&by)
                .map(|(n, (l, c))| ResponseBand {
                    band: (*n).to_string(),
                    leads: *l,
                    converted: *c,
                    conversion_rate: (*l > 0).then(|| *c as f64 / *l as f64),
                })
                .collect(),
        }
    };
    Ok(Stats {
        encryption: Encryption::default(),
        schema_version,
        counts,
        entities,
        data_quality: DataQuality { findings },
        pipeline: Pipeline {
            by_stage,
            open,
            open_amount,
            won,
            lost,
            won_amount,
            win_rate: rate(won, lost),
            reps,
        },
        org,
        leads,
        imports: imports as u64,
    })
}
