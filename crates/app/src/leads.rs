//! Open leads in the caller's scope with their conversion scores from the
//! active lead model (`pipewise score leads` trains and registers it), and
//! inbound leads delivered by a webhook.

use std::collections::HashMap;

use pipewise_engines::leads;
use pipewise_features::format_date;
use pipewise_models::tabular::TabularModel;
use pipewise_store::SqliteStore;
use pipewise_store::read::CrmData;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::InputError;
use crate::scope::Scope;
pub use pipewise_engines::lead_draft::Draft;
pub use pipewise_engines::lead_sla::{ResponseBand, SlaReport};

/// An open lead with its score.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeadRow {
    pub id: String,
    /// When it came in (YYYY-MM-DDTHH:MM:SSZ).
    pub created_at: String,
    pub source: Option<String>,
    pub campaign_id: Option<String>,
    pub title: Option<String>,
    pub inquiry: Option<String>,
    pub owner_id: Option<String>,
    pub owner: Option<String>,
    pub status: Option<String>,
    /// Hours from arrival to the first response (null: not answered yet).
    pub response_hours: Option<f64>,
    /// Probability of converting (0-1) from the active lead model; null
    /// without one.
    pub conversion_probability: Option<f64>,
    /// What drives it, strongest first, in words ("source partner: raises
    /// the chance", "first answer after 1.6 h: lowers the chance").
    pub factors: Vec<String>,
}

/// The open leads, scored once per data and lead-model version.
pub struct LeadBase {
    pub as_of: i64,
    pub model_version: Option<i64>,
    pub rows: Vec<LeadRow>,
    /// Routing, follow-up queues, speed to lead and drafts over the same data.
    pub desk: crate::lead_desk::LeadDesk,
}

/// Scores the open leads with the active lead model, if any, and reads the
/// lead desk (router, cadence, task marks).
pub fn build(crm: &std::sync::Arc<CrmData>, store: &SqliteStore) -> anyhow::Result<LeadBase> {
    let desk = crate::lead_desk::LeadDesk::new(crm.clone(), store.lead_task_marks()?)?;
    let crm: &CrmData = crm;
    let leads::LeadRows { table, open, as_of } = leads::lead_table(crm);
    let model = match store.model("lead", None)? {
        Some(rec) => Some((
            TabularModel::from_json(rec.artifact.as_deref().unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("lead model v{} cannot be read: {e}", rec.version))?,
            rec.version,
        )),
        None => None,
    };
    let sub = pipewise_core::TextTable {
        rows: open.iter().map(|&r| table.rows[r].clone()).collect(),
        lines: open.iter().map(|&r| table.lines[r]).collect(),
        ..table.clone()
    };
    let preds = match &model {
        Some((m, _)) if !sub.rows.is_empty() => Some(m.predict(&sub, 3, true)?.0),
        _ => None,
    };
    let names: HashMap<&str, &str> = crm
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.name.as_str()))
        .collect();
    let when = |t: i64| {
        pipewise_core::value::format_instant(
            chrono::DateTime::from_timestamp(t, 0).unwrap_or_default(),
        )
    };
    let mut rows: Vec<LeadRow> = open
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let l = &crm.leads[i];
            let p = preds.as_ref().map(|p| &p[k]);
            LeadRow {
                id: l.id.clone(),
                created_at: when(l.created_at),
                source: l.source.clone(),
                campaign_id: l.campaign_id.clone(),
                title: l.title.clone(),
                inquiry: l.inquiry.clone(),
                owner_id: l.owner_id.clone(),
                owner: l
                    .owner_id
                    .as_deref()
                    .and_then(|o| names.get(o))
                    .map(|n| n.to_string()),
                status: l.status.clone(),
                response_hours: l
                    .first_response_at
                    .map(|r| (r - l.created_at) as f64 / 3600.0),
                conversion_probability: p.map(|p| p.probability),
                factors: p
                    .map(|p| p.factors.iter().map(factor_words).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.conversion_probability
            .unwrap_or(-1.0)
            .total_cmp(&a.conversion_probability.unwrap_or(-1.0))
            .then(b.created_at.cmp(&a.created_at))
            .then(a.id.cmp(&b.id))
    });
    Ok(LeadBase {
        as_of,
        model_version: model.map(|m| m.1),
        rows,
        desk,
    })
}

/// A lead model's factor in words: the column as words, the value as people
/// write it, and which way it pushes the chance of converting.
pub fn factor_words(f: &pipewise_models::tabular::RowFactor) -> String {
    let column = f.column.replace('_', " ");
    let what = if f.value.trim().is_empty() {
        format!("{column} not recorded")
    } else {
        match f.column.as_str() {
            "response_hours" => match f.value.parse::<f64>() {
                Ok(h) if h < 1.0 => format!("first answer after {:.0} min", h * 60.0),
                Ok(h) if h < 48.0 => format!("first answer after {h:.1} h"),
                Ok(h) => format!("first answer after {:.0} days", h / 24.0),
                Err(_) => format!("first answer after {}", f.value),
            },
            "created_at" => format!("came in {}", &f.value[..f.value.len().min(10)]),
            _ => {
                let v: String = f.value.chars().take(40).collect();
                let more = if f.value.chars().count() > 40 {
                    "…"
                } else {
                    ""
                };
                format!("{column} {v}{more}")
            }
        }
    };
    let way = if f.effect >= 0.0 { "raises" } else { "lowers" };
    format!("{what}: {way} the chance")
}

/// Filters and paging of the lead list.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LeadQuery {
    /// Only this owner's leads (a user id).
    pub owner: Option<String>,
    /// Only leads not answered yet.
    pub unanswered: Option<bool>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// Leads to skip (default 0).
    #[param(minimum = 0, maximum = 1000000000)]
    pub offset: Option<usize>,
}

/// A page of open leads, most likely to convert first (newest first without a model).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeadPage {
    pub as_of: String,
    pub total: usize,
    pub unanswered: usize,
    pub offset: usize,
    pub limit: usize,
    /// The lead model's version; null when none is trained (`pipewise score leads`).
    pub model_version: Option<i64>,
    pub items: Vec<LeadRow>,
}

pub fn list(base: &LeadBase, scope: &Scope, q: &LeadQuery) -> Result<LeadPage, InputError> {
    let (limit, offset) = crate::page(q.limit, q.offset)?;
    let hits: Vec<&LeadRow> = base
        .rows
        .iter()
        .filter(|r| scope.allows(r.owner_id.as_deref()))
        .filter(|r| {
            q.owner
                .as_deref()
                .is_none_or(|o| r.owner_id.as_deref() == Some(o))
        })
        .filter(|r| q.unanswered != Some(true) || r.response_hours.is_none())
        .collect();
    Ok(LeadPage {
        as_of: format_date(base.as_of),
        total: hits.len(),
        unanswered: hits.iter().filter(|r| r.response_hours.is_none()).count(),
        offset,
        limit,
        model_version: base.model_version,
        items: hits.into_iter().skip(offset).take(limit).cloned().collect(),
    })
}

/// An inbound lead, as a web form or marketing tool posts it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundLead {
    /// The lead's id in the sending system (default: one is made up).
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub id: Option<String>,
    /// When it came in (RFC 3339; default: now).
    #[schema(format = DateTime)]
    pub received_at: Option<String>,
    #[schema(max_length = 200, pattern = "\\S", nullable = false)]
    #[serde(default, deserialize_with = "present")]
    pub contact_name: Option<String>,
    #[schema(format = Email, max_length = 320, pattern = "\\S", nullable = false)]
    #[serde(default, deserialize_with = "present")]
    pub email: Option<String>,
    #[schema(max_length = 200, pattern = "\\S", nullable = false)]
    #[serde(default, deserialize_with = "present")]
    pub company: Option<String>,
    #[schema(max_length = 200)]
    pub title: Option<String>,
    /// `web_form`, `partner`, `event`...
    #[schema(max_length = 100)]
    pub source: Option<String>,
    pub campaign_id: Option<String>,
    /// What they wrote.
    #[schema(max_length = 20000)]
    pub inquiry: Option<String>,
    /// The rep it goes to, if the sender routes; else pipewise routes it
    /// at once (the rep most likely to convert it within capacity and
    /// fairness, or the owner of its account), or it waits unassigned when
    /// there are too few past leads to learn routing from.
    pub owner_id: Option<String>,
}

/// A field that may be left out but, when given, is a string (not null).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// A stored inbound lead.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InboundAccepted {
    pub id: String,
    pub created_at: String,
    pub status: String,
    pub owner_id: Option<String>,
    /// How pipewise routed it, when the sender named no owner and a router
    /// is trained (null otherwise).
    pub routing: Option<RoutedLead>,
}

impl InboundLead {
    /// Checks the lead and makes the row to store.
    pub fn to_new(&self, id: String) -> Result<pipewise_store::access::NewLead, InputError> {
        if let Some(i) = &self.id
            && (i.is_empty()
                || i.len() > 64
                || !i
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(InputError::new(
                "id",
                "1 to 64 letters, digits, '.', '_', ':' or '-'",
                i,
            ));
        }
        for (field, v, max) in [
            ("contact_name", &self.contact_name, 200),
            ("email", &self.email, 320),
            ("company", &self.company, 200),
            ("title", &self.title, 200),
            ("source", &self.source, 100),
            ("inquiry", &self.inquiry, 20000),
        ] {
            if let Some(v) = v
                && v.chars().count() > max
            {
                return Err(InputError::new(
                    field,
                    &format!("at most {max} characters"),
                    &format!("{} characters", v.chars().count()),
                ));
            }
        }
        for (field, v) in [
            ("contact_name", &self.contact_name),
            ("email", &self.email),
            ("company", &self.company),
        ] {
            if let Some(v) = v
                && v.trim().is_empty()
            {
                return Err(InputError::new(
                    field,
                    "text that is not blank (or leave it out)",
                    v,
                ));
            }
        }
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        if blank(&self.email) && blank(&self.contact_name) && blank(&self.company) {
            return Err(InputError::new(
                "email",
                "at least one of email, contact_name or company",
                "",
            ));
        }
        if let Some(e) = &self.email {
            let ok = e.split_once('@').is_some_and(|(a, b)| {
                !a.is_empty() && b.contains('.') && !e.contains(char::is_whitespace)
            });
            if !ok {
                return Err(InputError::new("email", "an email address", e));
            }
        }
        let created_at = match &self.received_at {
            None => crate::auth::now(),
            Some(t) => {
                let at = chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|_| {
                        InputError::new(
                            "received_at",
                            "an RFC 3339 date-time such as 2025-06-30T18:00:00Z",
                            t,
                        )
                    })?
                    .with_timezone(&chrono::Utc);
                if at > chrono::Utc::now() + chrono::Duration::hours(1) {
                    return Err(InputError::refused(
                        "received_at",
                        "a date-time that is not in the future",
                        t,
                    ));
                }
                at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            }
        };
        let clean = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        Ok(pipewise_store::access::NewLead {
            id,
            created_at,
            source: clean(&self.source),
            campaign_id: clean(&self.campaign_id),
            company: clean(&self.company),
            contact_name: clean(&self.contact_name),
            email: clean(&self.email),
            title: clean(&self.title),
            inquiry: clean(&self.inquiry),
            owner_id: clean(&self.owner_id),
        })
    }
}

/// Registers a fitted lead model (the new active `lead` version) with its
/// card, in the sections of Mitchell et al. (2019); `source` says what it
/// was fitted on, `as_of` when (both shown in the card and the registry).
/// With `crm`, the held-out scores are audited by group of reps (the lead's
/// owner) and customers (its account) for the card's fairness section.
pub fn register(
    store: &mut SqliteStore,
    model: &TabularModel,
    source: &str,
    as_of: &str,
    created_at: &str,
    holdout: &[pipewise_store::HoldoutRow],
    crm: Option<&CrmData>,
) -> anyhow::Result<pipewise_store::ModelRecord> {
    let r = &model.report;
    let m = &r.validation.metrics;
    let fairness = match crm {
        Some(crm) if !holdout.is_empty() => {
            let groups: Vec<String> = crate::fairness::DEFAULT_GROUPS
                .iter()
                .map(|g| g.to_string())
                .collect();
            let a = crate::fairness::audit_holdout(
                crm,
                crate::fairness::Subject::Lead,
                holdout,
                &groups,
                None,
            )?;
            crate::fairness::card_section(&a.audits)
        }
        _ => String::new(),
    };
    let candidates = r
        .validation
        .candidates
        .iter()
        .map(|c| {
            format!(
                "{} {:.3}{}",
                c.algorithm,
                c.roc_auc,
                if c.chosen { " (chosen)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let card = format!(
        "# Model card: lead conversion model\n\n\
         ## Model details\n\n**Purpose.** Rank open leads by their chance to convert. \
         **Algorithm.** {}, chosen by cross-validated ROC-AUC among: {}. Created {created_at} by pipewise {}.\n\n\
         ## Intended use\n\n**Primary use.** Ordering reps' lead queues and routing; the lead's factors are shown with its score. \
         **Out of scope.** Deciding that a lead is not worth an answer without a person; judging reps by their leads' scores.\n\n\
         ## Factors\n\nGroups audited below: of reps (the lead's owner) by region, team and tenure band; \
         of customers (the lead's account, when it has one) by industry and size. \
         `pipewise fairness --model lead --attributes FILE` audits any other attribute.\n\n\
         ## Metrics\n\nROC-AUC and PR-AUC (ranking), log loss, Brier score and ECE (the probabilities), lift in the top decile; \
         fairness by group as in `pipewise fairness`.\n\n\
         ## Evaluation data\n\nHeld-out predictions of the validation folds ({}): each lead scored by a model that did not see it.\n\n\
         ## Training data\n\n{source}: {} leads with an outcome ({} converted), as of {as_of}.\n\n\
         ## Quantitative analyses\n\nROC-AUC {:.3}  PR-AUC {:.3}  log loss {:.3}  Brier {:.3}  ECE {:.3}  lift in top decile {:.2}x\n\n\
         Top drivers: {}\n\n{}\n\
         ## Ethical considerations\n\nThe model reads a lead's source, campaign, company, title, inquiry and response times, \
         not its name or email. Leads from groups who were answered late or not at all in the past convert less in the data, \
         and the model learns that: the fairness section shows whether its scores are off for any group.\n\n\
         ## Caveats and recommendations\n\nTrained on past conversions; a lead's inquiry and response time are read as recorded, \
         and leads never answered count as such. Retrain monthly and after a change in lead sources.\n",
        model.classifier.algorithm.name(),
        if candidates.is_empty() {
            "one learner".to_string()
        } else {
            candidates
        },
        env!("CARGO_PKG_VERSION"),
        r.validation.scheme,
        r.rows,
        r.positives,
        m.roc_auc,
        m.pr_auc,
        m.log_loss,
        m.brier,
        m.ece,
        m.lift_top_decile,
        r.drivers
            .iter()
            .take(6)
            .map(|d| format!("{} {:.1}%", d.column, 100.0 * d.share))
            .collect::<Vec<_>>()
            .join(", "),
        if fairness.is_empty() {
            "**Fairness by group.** No held-out scores to audit (a model read from a file) or no group large enough to judge.\n".to_string()
        } else {
            format!(
                "**Fairness by group** (held-out scores; calibration gap against the other groups'):\n{fairness}"
            )
        }
    );
    let features: Vec<&str> = model.schema.used().map(|c| c.name.as_str()).collect();
    Ok(store.register_model(&pipewise_store::NewModel {
        kind: "lead",
        created_at,
        algorithm: model.classifier.algorithm.name(),
        train_from: None,
        train_to: Some(as_of),
        test_from: None,
        test_to: None,
        features_json: &serde_json::to_string(&features)?,
        metrics_json: &serde_json::to_string(&r.validation)?,
        card: &card,
        artifact_json: &model.to_json(),
        holdout,
    })?)
}

/// A freshly fitted lead model's held-out scores from its validation
/// folds, by lead (the lead table's first column is the lead id), dated by
/// the lead's creation: what fairness by group reads. Empty for a model
/// read from a file.
pub fn holdout_rows(
    model: &TabularModel,
    table: &pipewise_core::TextTable,
    crm: &CrmData,
) -> Vec<pipewise_store::HoldoutRow> {
    let created: std::collections::HashMap<&str, i64> = crm
        .leads
        .iter()
        .map(|l| (l.id.as_str(), l.created_at))
        .collect();
    model
        .held_out
        .iter()
        .filter_map(|&(r, p, y)| {
            let row = table.rows.get(r)?;
            let created = *created.get(row.first()?.as_str())?;
            Some(pipewise_store::HoldoutRow {
                entity_id: row[0].clone(),
                as_of: pipewise_core::value::format_instant(
                    chrono::DateTime::from_timestamp(created, 0).unwrap_or_default(),
                ),
                probability: p,
                outcome: y,
            })
        })
        .collect()
}

/// Fits the lead model on the database's leads older than
/// [`leads::STALE_DAYS`] days and registers it; `None` when there are no leads.
pub fn fit_and_register(
    store: &mut SqliteStore,
    crm: &CrmData,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Option<pipewise_store::ModelRecord>> {
    let rows = leads::lead_table(crm);
    if rows.table.rows.is_empty() {
        return Ok(None);
    }
    let model = leads::fit_leads(&rows.table, progress)?;
    let as_of = pipewise_core::value::format_instant(
        chrono::DateTime::from_timestamp(rows.as_of, 0).unwrap_or_default(),
    );
    let source = format!("the database's leads older than {} days", leads::STALE_DAYS);
    let holdout = holdout_rows(&model, &rows.table, crm);
    Ok(Some(register(
        store,
        &model,
        &source,
        &as_of,
        &crate::auth::now(),
        &holdout,
        Some(crm),
    )?))
}

#[cfg(test)]
mod tests {
    use super::factor_words;
    use pipewise_models::tabular::RowFactor;

    fn f(column: &str, value: &str, effect: f64) -> String {
        factor_words(&RowFactor {
            column: column.into(),
            value: value.into(),
            effect,
        })
    }

    #[test]
    fn lead_factors_read_as_words() {
        assert_eq!(
            f("source", "referral", 0.88),
            "source referral: raises the chance"
        );
        assert_eq!(
            f("response_hours", "1.62", 0.69),
            "first answer after 1.6 h: raises the chance"
        );
        assert_eq!(
            f("response_hours", "0.25", -0.1),
            "first answer after 15 min: lowers the chance"
        );
        assert_eq!(
            f("response_hours", "72", -0.3),
            "first answer after 3 days: lowers the chance"
        );
        assert_eq!(
            f("created_at", "2025-11-24T17:56:13Z", 0.1),
            "came in 2025-11-24: raises the chance"
        );
        assert_eq!(
            f("campaign_id", "", -0.2),
            "campaign id not recorded: lowers the chance"
        );
    }
}

/// Imports the canonical files in `dir` (a simulated history) into a
/// temporary database, as of `as_of` (epoch seconds). The directory must
/// outlive the store. Errors: an import that fails.
pub fn import_history(
    dir: &std::path::Path,
    as_of: i64,
    progress: &dyn pipewise_ingest::Progress,
) -> anyhow::Result<(tempfile::TempDir, SqliteStore)> {
    let tmp = tempfile::tempdir()?;
    let mut store = SqliteStore::open(tmp.path().join("history.db"))?;
    let sources = pipewise_ingest::sources_in_dir(dir, None)?;
    let opts = pipewise_ingest::ImportOptions {
        dry_run: false,
        max_errors: 100,
        as_of: pipewise_core::value::format_instant(
            chrono::DateTime::from_timestamp(as_of, 0).unwrap_or_default(),
        ),
        kind: "canonical".into(),
        encoding: None,
    };
    let report = pipewise_ingest::run_import(&mut store, &sources, &opts, progress)?;
    if !report.ok() {
        anyhow::bail!(
            "the history in {} did not import: {} errors",
            dir.display(),
            report.errors.len()
        );
    }
    Ok((tmp, store))
}

/// pipewise's lead policies learned from an org's records before a date.
pub struct LearnedPolicies {
    pub router: Option<pipewise_engines::lead_policy::Router>,
    pub cadence: Option<pipewise_engines::lead_policy::PipewiseCadence>,
    /// What was learned, in words (one line each).
    pub summary: Vec<String>,
}

/// Imports the canonical files in `dir` into a temporary database and
/// learns the routing (when `routing`) and the cadence's send-time model
/// (when `cadence`) from what was known at `as_of` (epoch seconds).
/// Errors: an import that fails, or too few leads to learn routing from.
pub fn learn_lead_policies(
    dir: &std::path::Path,
    as_of: i64,
    routing: bool,
    cadence: bool,
    progress: &dyn pipewise_ingest::Progress,
) -> anyhow::Result<LearnedPolicies> {
    use pipewise_engines::lead_policy::{
        CadenceDef, ConversionModel, DEFAULT_CADENCE, PipewiseCadence, Router, RouterOptions,
        SendTimeModel,
    };
    let (_tmp, store) = import_history(dir, as_of, progress)?;
    let crm = store.load_crm()?;
    let mut summary = Vec::new();
    let router = if routing {
        let model = ConversionModel::fit(&crm, as_of)?;
        summary.push(format!(
            "routing learned from {} leads ({} converted); priors: rep sd {:.2}, rep-industry sd {:.2} \
             log-odds; validation log loss {:.4} against {:.4} for the lead alone",
            model.leads,
            model.converted,
            model.tau_rep,
            model.tau_cell,
            model.validation.0,
            model.validation.1
        ));
        Some(Router::new(model, RouterOptions::default()))
    } else {
        None
    };
    let cadence = if cadence {
        let def = CadenceDef::parse(DEFAULT_CADENCE)?;
        let send_time = SendTimeModel::fit(&crm, as_of);
        summary.push(format!(
            "cadence {}: {} touches, stop on reply; send times learned from {} lead touches",
            def.name,
            def.steps.len(),
            send_time.touches
        ));
        Some(PipewiseCadence::new(def, send_time, &crm))
    } else {
        None
    };
    Ok(LearnedPolicies {
        router,
        cadence,
        summary,
    })
}

/// Drafts the first reply to the lead `lead_id` from its inquiry
/// (`pipewise leads draft`). Errors: no such lead.
pub fn draft_reply(
    crm: &CrmData,
    lead_id: &str,
) -> Result<pipewise_engines::lead_draft::Draft, InputError> {
    let lead = crm
        .leads
        .iter()
        .find(|l| l.id == lead_id)
        .ok_or_else(|| InputError::new("lead", "the id of a lead in the database", lead_id))?;
    let account = lead
        .account_id
        .as_deref()
        .and_then(|a| crm.accounts.iter().find(|x| x.id == a));
    let rep = lead
        .owner_id
        .as_deref()
        .and_then(|o| crm.users.iter().find(|u| u.id == o));
    let products: Vec<String> = crm.products.iter().map(|p| p.1.clone()).collect();
    let mut d = pipewise_engines::lead_draft::draft(&pipewise_engines::lead_draft::DraftInput {
        lead_id: &lead.id,
        inquiry: lead.inquiry.as_deref().unwrap_or(""),
        contact_name: lead.contact_name.as_deref(),
        company: lead.company.as_deref().or(account.map(|a| a.name.as_str())),
        industry: account.and_then(|a| a.industry.as_deref()),
        source: lead.source.as_deref(),
        rep_name: rep.map(|u| u.name.as_str()),
        products: &products,
    });
    d.already_answered = lead.first_response_at.map(|t| {
        pipewise_core::value::format_instant(
            chrono::DateTime::from_timestamp(t, 0).unwrap_or_default(),
        )
    });
    Ok(d)
}

/// A local language model behind an OpenAI-compatible chat endpoint (a
/// llama.cpp server, Ollama, vLLM...), for first-reply drafts. Optional:
/// without it, or when it fails, the template writes the draft.
#[derive(Debug, Clone)]
pub struct LlmOptions {
    /// The server's base URL (`http://127.0.0.1:8081`, `.../v1`) or the
    /// full `.../chat/completions` address.
    pub url: String,
    /// The model name sent with each request.
    pub model: String,
    /// Seconds before giving up on an answer.
    pub timeout_secs: u64,
}

impl LlmOptions {
    fn endpoint(&self) -> String {
        let u = self.url.trim_end_matches('/');
        if u.ends_with("/chat/completions") {
            u.to_string()
        } else if u.ends_with("/v1") {
            format!("{u}/chat/completions")
        } else {
            format!("{u}/v1/chat/completions")
        }
    }
}

/// [`draft_reply`], with the body written by the language model of `llm`
/// from the same details when it answers with a body that names the
/// product and the pain point the template used
/// ([`pipewise_engines::lead_draft::check_llm_body`]); otherwise the
/// template's draft with `fallback` saying why. Blocks for up to
/// `llm.timeout_secs`. Errors: no such lead.
pub fn draft_reply_with(
    crm: &CrmData,
    lead_id: &str,
    llm: Option<&LlmOptions>,
) -> Result<pipewise_engines::lead_draft::Draft, InputError> {
    let mut d = draft_reply(crm, lead_id)?;
    let Some(llm) = llm else {
        return Ok(d);
    };
    let rep = crm
        .leads
        .iter()
        .find(|l| l.id == lead_id)
        .and_then(|l| l.owner_id.as_deref())
        .and_then(|o| crm.users.iter().find(|u| u.id == o))
        .map(|u| u.name.as_str());
    let (system, user) = pipewise_engines::lead_draft::llm_prompt(&d, rep);
    let request = serde_json::json!({
        "model": llm.model,
        "temperature": 0.3,
        "max_tokens": 400,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
    });
    let answer = ureq::post(&llm.endpoint())
        .config()
        .timeout_global(Some(std::time::Duration::from_secs(
            llm.timeout_secs.max(1),
        )))
        .build()
        .send_json(&request)
        .map_err(|e| format!("the language model at {} did not answer: {e}", llm.url))
        .and_then(|mut r| {
            r.body_mut()
                .read_json::<serde_json::Value>()
                .map_err(|e| format!("the language model's answer was not JSON: {e}"))
        })
        .and_then(|v| {
            v["choices"][0]["message"]["content"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| {
                    "the language model's answer had no choices[0].message.content".into()
                })
        })
        .and_then(|text| pipewise_engines::lead_draft::check_llm_body(&text, &d));
    match answer {
        Ok(body) => {
            d.body = body;
            d.generator = format!("llm:{}", llm.model);
        }
        Err(why) => d.fallback = Some(why),
    }
    Ok(d)
}

/// A candidate owner of a lead, as the router saw them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteCandidate {
    pub rep_id: String,
    pub rep_name: String,
    /// Predicted conversion (0-1) with this rep at their current queue.
    pub probability: f64,
    /// The rep's leads not answered yet (count).
    pub unanswered: u32,
    /// Why the rep cannot take the lead, if so.
    pub excluded: Option<String>,
}

/// A routing recommendation for one lead.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoutedLead {
    pub lead_id: String,
    /// YYYY-MM-DD HH:MM UTC.
    pub created_at: String,
    pub current_owner: Option<String>,
    pub recommended: RouteCandidate,
    /// `conversion` (the best predicted conversion within capacity and
    /// fairness) or `account_owner` (the lead's account is an existing one:
    /// its owner keeps the lead).
    pub rule: String,
    /// The decision in words.
    pub why: String,
    /// Every candidate, the recommended first.
    pub candidates: Vec<RouteCandidate>,
}

/// Routing recommendations for the leads not answered yet.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoutingReport {
    /// The instant the queues were read at (the latest lead event).
    pub as_of: String,
    /// What the conversion model learned from.
    pub model: String,
    /// With `--batch`: how the joint assignment was solved.
    #[schema(value_type = Option<Object>)]
    pub batch: Option<pipewise_engines::lead_policy::BatchReport>,
    pub leads: Vec<RoutedLead>,
}

/// Routes the leads waiting for a first response (up to 14 days old; or
/// only `only`) in order of arrival with [`crate::lead_desk::LiveRouter`]:
/// each among the reps of its current owner's region (every rep when it has
/// no owner), with queues of waiting leads as of the latest lead event and
/// fairness counts from the last 30 days; each recommendation counts
/// towards the next, as if the leads were reassigned as recommended; a lead
/// from an existing account stays with its owner (`pipewise leads route`).
/// With `batch`, the leads are assigned jointly by a linear program
/// ([`crate::lead_desk::LiveRouter::route_batch`]). Errors: too few leads
/// to learn from; `only` not a lead.
pub fn route_leads(
    crm: &CrmData,
    only: Option<&str>,
    batch: bool,
) -> anyhow::Result<RoutingReport> {
    use crate::lead_desk::{LiveRouter, waiting};
    let as_of = leads::lead_table(crm).as_of;
    if let Some(id) = only
        && !crm.leads.iter().any(|l| l.id == id)
    {
        return Err(InputError::new("lead", "the id of a lead in the database", id).into());
    }
    let mut router = LiveRouter::new(crm, as_of)?;
    let chosen: Vec<crate::lead_desk::LeadToRoute> = crm
        .leads
        .iter()
        .filter(|l| only.map_or(waiting(l, as_of), |id| id == l.id))
        .map(Into::into)
        .collect();
    let mut out = Vec::new();
    let mut solved = None;
    if batch {
        let (routed, report) = router.route_batch(crm, &chosen);
        out = routed;
        solved = Some(report);
    } else {
        for l in chosen {
            if let Some(r) = router.route(crm, l) {
                out.push(r);
            }
        }
    }
    Ok(RoutingReport {
        as_of: pipewise_core::value::format_instant(
            chrono::DateTime::from_timestamp(as_of, 0).unwrap_or_default(),
        ),
        model: router.summary.clone(),
        batch: solved,
        leads: out,
    })
}

/// The speed-to-lead report with an SLA of `minutes` business minutes
/// (`pipewise leads sla`).
pub fn lead_sla(crm: &CrmData, minutes: f64) -> pipewise_engines::lead_sla::SlaReport {
    pipewise_engines::lead_sla::report(
        crm,
        &pipewise_engines::lead_sla::SlaOptions {
            minutes,
            ..Default::default()
        },
    )
}

/// A rep's follow-up tasks for a day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepQueue {
    pub rep_id: String,
    pub rep_name: String,
    /// YYYY-MM-DD.
    pub date: String,
    pub cadence: String,
    pub tasks: Vec<pipewise_engines::lead_queue::Task>,
}

/// The follow-up tasks of `rep` (a name or an id) on `date` (epoch seconds;
/// default: the latest lead event's day) under `cadence` (default: the
/// built-in one), with the steps reps marked done or skipped (`marks`)
/// (`pipewise leads queue`). Errors: no such rep.
pub fn rep_queue(
    crm: &CrmData,
    rep: &str,
    date: Option<i64>,
    all: bool,
    cadence: Option<pipewise_engines::lead_policy::CadenceDef>,
    marks: &[pipewise_store::LeadTaskMark],
) -> anyhow::Result<RepQueue> {
    use pipewise_engines::lead_policy::{CadenceDef, DEFAULT_CADENCE, SendTimeModel};
    let user = crate::lead_desk::find_user(crm, rep)
        .ok_or_else(|| InputError::new("rep", "a rep's name or id", rep))?;
    let date = date.unwrap_or(leads::lead_table(crm).as_of);
    let def = match cadence {
        Some(c) => c,
        None => CadenceDef::parse(DEFAULT_CADENCE)?,
    };
    let send_time = SendTimeModel::fit(crm, date);
    Ok(queue_of(crm, user, date, &def, &send_time, all, marks))
}

/// `user`'s follow-up tasks on `date` under `def` with `send_time`'s hours
/// and the tasks marked (`marks`), as a [`RepQueue`].
pub(crate) fn queue_of(
    crm: &CrmData,
    user: &pipewise_store::read::User,
    date: i64,
    def: &pipewise_engines::lead_policy::CadenceDef,
    send_time: &pipewise_engines::lead_policy::SendTimeModel,
    all: bool,
    marks: &[pipewise_store::LeadTaskMark],
) -> RepQueue {
    RepQueue {
        rep_id: user.id.clone(),
        rep_name: user.name.clone(),
        date: format_date(date),
        cadence: def.name.clone(),
        tasks: pipewise_engines::lead_queue::queue(crm, &user.id, date, def, send_time, all, marks),
    }
}
