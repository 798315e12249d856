//! Lead scoring on the database's leads, with the same tabular engine that
//! `pipewise model fit` runs on any export.
//!
//! Each lead becomes one row of [`LEAD_COLUMNS`]: what is known about it once
//! it has been answered (source, campaign, title, inquiry text, owner and
//! region, account industry and size, creation time, hours to the first
//! response).
//!
//! Training uses the leads created more than [`STALE_DAYS`] days before the
//! data ends, whose outcome has had time to happen: converted (1), or not
//! (disqualified, or left without an outcome). Younger leads are left out of
//! training even when already closed: among them the quick conversions are
//! over-represented, and a model would learn that "recent" means "converts".
//! Validation is in time order on `created_at`. Scored: the leads without an
//! outcome that are young or still being worked (status new or working).

use pipewise_core::TextTable;
use pipewise_core::value::format_instant;
use pipewise_models::tabular::{TabularError, TabularModel, TabularOptions, Target};
use pipewise_store::read::CrmData;

/// The columns of the lead table, in order, and what each holds.
pub const LEAD_COLUMNS: [(&str, &str); 13] = [
    ("lead_id", "the lead's id (not a feature)"),
    ("source", "lead source"),
    ("campaign", "campaign id"),
    ("title", "the person's job title"),
    ("inquiry", "the inquiry text"),
    ("owner", "the owning rep's name"),
    ("region", "the owning rep's region"),
    ("industry", "the account's industry"),
    ("employees", "the account's employees"),
    ("created_at", "when the lead came in"),
    (
        "response_hours",
        "hours from creation to the first response (empty: none yet)",
    ),
    (
        "converted",
        "leads older than STALE_DAYS: 1 converted, 0 not; younger leads: empty (the target)",
    ),
    (
        "status",
        "the lead's status (not a feature: it tells the outcome)",
    ),
];

/// Leads older than this have a known outcome (without one: not converted).
pub const STALE_DAYS: i64 = 90;

/// The lead table and which of its rows are open leads to score.
pub struct LeadRows {
    pub table: TextTable,
    pub open: Vec<usize>,
    /// The latest instant in the leads (epoch seconds): when they are scored.
    pub as_of: i64,
}

/// Every lead as a row of [`LEAD_COLUMNS`].
pub fn lead_table(data: &CrmData) -> LeadRows {
    let latest = data
        .leads
        .iter()
        .flat_map(|l| {
            [
                Some(l.created_at),
                l.first_response_at,
                l.converted_at,
                l.disqualified_at,
            ]
        })
        .flatten()
        .max()
        .unwrap_or_default();
    let users: std::collections::HashMap<&str, &pipewise_store::read::User> =
        data.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let accounts: std::collections::HashMap<&str, &pipewise_store::read::Account> =
        data.accounts.iter().map(|a| (a.id.as_str(), a)).collect();
    let when = |t: i64| format_instant(chrono::DateTime::from_timestamp(t, 0).unwrap_or_default());
    let mut t = TextTable {
        file: "leads (database)".into(),
        headers: LEAD_COLUMNS.iter().map(|c| c.0.to_string()).collect(),
        ..Default::default()
    };
    let mut open = Vec::new();
    for (i, l) in data.leads.iter().enumerate() {
        let mature = latest - l.created_at > STALE_DAYS * 86_400;
        if l.converted_at.is_none()
            && l.disqualified_at.is_none()
            && (!mature || matches!(l.status.as_deref(), Some("new" | "working")))
        {
            open.push(i);
        }
        let owner = l.owner_id.as_deref().and_then(|o| users.get(o));
        let account = l.account_id.as_deref().and_then(|a| accounts.get(a));
        let s = |v: Option<&str>| v.unwrap_or_default().to_string();
        t.rows.push(vec![
            l.id.clone(),
            s(l.source.as_deref()),
            s(l.campaign_id.as_deref()),
            s(l.title.as_deref()),
            s(l.inquiry.as_deref()),
            owner.map(|u| u.name.clone()).unwrap_or_default(),
            s(owner.and_then(|u| u.region.as_deref())),
            s(account.and_then(|a| a.industry.as_deref())),
            account
                .and_then(|a| a.employees)
                .map(|e| e.to_string())
                .unwrap_or_default(),
            when(l.created_at),
            l.first_response_at
                .map(|r| format!("{:.2}", (r - l.created_at) as f64 / 3600.0))
                .unwrap_or_default(),
            match (mature, l.converted_at.is_some()) {
                (false, _) => String::new(),
                (true, true) => "1".into(),
                (true, false) => "0".into(),
            },
            s(l.status.as_deref()),
        ]);
        t.lines.push(i as u64 + 2);
    }
    LeadRows {
        table: t,
        open,
        as_of: latest,
    }
}

/// Fits the lead model on the closed leads (time-ordered validation).
pub fn fit_leads(table: &TextTable, progress: &dyn Fn(&str)) -> Result<TabularModel, TabularError> {
    let opts = TabularOptions {
        time_column: Some("created_at".into()),
        named: pipewise_models::tabular::Overrides {
            ignore: vec!["lead_id".into(), "status".into()],
            ..Default::default()
        },
        ..TabularOptions::default()
    };
    TabularModel::fit(
        table,
        Target {
            column: "converted".into(),
            positive: None,
            negative: None,
        },
        &opts,
        progress,
    )
}
