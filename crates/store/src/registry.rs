//! The model registry and the scores: versioned models per kind, one active.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::{Result, SqliteStore, StoreError};

/// A model to register. The store assigns its version.
pub struct NewModel<'a> {
    pub kind: &'a str,
    pub created_at: &'a str,
    pub algorithm: &'a str,
    pub train_from: Option<&'a str>,
    pub train_to: Option<&'a str>,
    pub test_from: Option<&'a str>,
    pub test_to: Option<&'a str>,
    pub features_json: &'a str,
    pub metrics_json: &'a str,
    pub card: &'a str,
    pub artifact_json: &'a str,
    /// Its scores on the held-out test window, with the outcomes.
    pub holdout: &'a [HoldoutRow],
}

/// One held-out score of a registered model and the outcome.
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutRow {
    /// The deal's or lead's id.
    pub entity_id: String,
    /// When it was scored (a date or date-time).
    pub as_of: String,
    pub probability: f64,
    /// 1 or 0.
    pub outcome: f64,
}

/// A registered model (the artifact only when asked for).
#[derive(Debug, Clone, Serialize)]
pub struct ModelRecord {
    pub id: i64,
    pub kind: String,
    pub version: i64,
    pub created_at: String,
    pub algorithm: String,
    pub train_from: Option<String>,
    pub train_to: Option<String>,
    pub test_from: Option<String>,
    pub test_to: Option<String>,
    pub active: bool,
    pub features: serde_json::Value,
    pub metrics: serde_json::Value,
    pub card: String,
    /// Why the model should be retrained, when something it was trained on
    /// has changed (a person erased from its training data).
    pub retrain_reason: Option<String>,
    #[serde(skip)]
    pub artifact: Option<String>,
}

/// One stored score.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreRecord {
    pub model_kind: String,
    pub model_version: i64,
    pub entity_id: String,
    pub as_of: String,
    pub probability: f64,
    pub factors: serde_json::Value,
}

const COLUMNS: &str = "id, kind, version, created_at, algorithm, train_from, train_to, test_from, test_to, active, features, metrics, card, retrain_reason";

fn record(r: &rusqlite::Row<'_>, with_artifact: bool) -> rusqlite::Result<ModelRecord> {
    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
        let s: String = r.get(i)?;
        Ok(serde_json::from_str(&s).unwrap_or(serde_json::Value::Null))
    };
    Ok(ModelRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        version: r.get(2)?,
        created_at: r.get(3)?,
        algorithm: r.get(4)?,
        train_from: r.get(5)?,
        train_to: r.get(6)?,
        test_from: r.get(7)?,
        test_to: r.get(8)?,
        active: r.get::<_, i64>(9)? != 0,
        features: json(10)?,
        metrics: json(11)?,
        card: r.get(12)?,
        retrain_reason: r.get(13)?,
        artifact: if with_artifact { r.get(14)? } else { None },
    })
}

impl SqliteStore {
    /// Registers a model as the next version of its kind and makes it the active one.
    pub fn register_model(&mut self, m: &NewModel<'_>) -> Result<ModelRecord> {
        let tx = self.conn.transaction()?;
        let version: i64 = tx.query_row(
            "SELECT coalesce(max(version), 0) + 1 FROM models WHERE kind = ?1",
            [m.kind],
            |r| r.get(0),
        )?;
        tx.execute("UPDATE models SET active = 0 WHERE kind = ?1", [m.kind])?;
        tx.execute(
            "INSERT INTO models (kind, version, created_at, algorithm, train_from, train_to, test_from,
                                 test_to, features, metrics, card, artifact, active)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1)",
            params![
                m.kind,
                version,
                m.created_at,
                m.algorithm,
                m.train_from,
                m.train_to,
                m.test_from,
                m.test_to,
                m.features_json,
                m.metrics_json,
                m.card,
                m.artifact_json
            ],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut st = tx.prepare(
                "INSERT INTO model_holdout (model_id, entity_id, as_of, probability, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for h in m.holdout {
                st.execute(params![id, h.entity_id, h.as_of, h.probability, h.outcome])?;
            }
        }
        tx.commit()?;
        self.model(m.kind, Some(version))?
            .ok_or_else(|| StoreError::Invalid("registered model vanished".into()))
    }

    /// Every registered model, newest first per kind (without artifacts).
    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM models ORDER BY kind, version DESC"
        ))?;
        let rows = st
            .query_map([], |r| record(r, false))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// A model of a kind with its artifact: the given version, or the active one.
    pub fn model(&self, kind: &str, version: Option<i64>) -> Result<Option<ModelRecord>> {
        let sql = format!(
            "SELECT {COLUMNS}, artifact FROM models WHERE kind = ?1 AND {}",
            if version.is_some() {
                "version = ?2"
            } else {
                "active = 1 AND ?2 IS NULL"
            }
        );
        Ok(self
            .conn
            .query_row(&sql, params![kind, version], |r| record(r, true))
            .optional()?)
    }

    /// A registered model's held-out scores with their outcomes (empty for
    /// a model registered before they were kept), in entity and date order.
    pub fn model_holdout(&self, model_id: i64) -> Result<Vec<HoldoutRow>> {
        let mut st = self.conn.prepare(
            "SELECT entity_id, as_of, probability, outcome FROM model_holdout
             WHERE model_id = ?1 ORDER BY entity_id, as_of",
        )?;
        let rows = st
            .query_map([model_id], |r| {
                Ok(HoldoutRow {
                    entity_id: r.get(0)?,
                    as_of: r.get(1)?,
                    probability: r.get(2)?,
                    outcome: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every stored score of a model kind (any version): (version, entity
    /// id, as of, probability), oldest first.
    pub fn scores_of_kind(&self, kind: &str) -> Result<Vec<(i64, String, String, f64)>> {
        let mut st = self.conn.prepare(
            "SELECT m.version, s.entity_id, s.as_of, s.probability
             FROM scores s JOIN models m ON m.id = s.model_id
             WHERE m.kind = ?1 ORDER BY s.as_of, s.entity_id",
        )?;
        let rows = st
            .query_map([kind], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Makes a version the active one of its kind.
    pub fn activate_model(&mut self, kind: &str, version: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE models SET active = (version = ?2) WHERE kind = ?1",
            params![kind, version],
        )?;
        let exists: i64 = tx.query_row(
            "SELECT count(*) FROM models WHERE kind = ?1 AND version = ?2",
            params![kind, version],
            |r| r.get(0),
        )?;
        if n == 0 || exists == 0 {
            return Err(StoreError::Invalid(format!(
                "no {kind} model version {version}"
            )));
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores the scores a model gave as of a date (replacing that model's scores of that date).
    pub fn save_scores(
        &mut self,
        model_id: i64,
        as_of: &str,
        rows: &[(String, f64, String)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM scores WHERE model_id = ?1 AND as_of = ?2",
            params![model_id, as_of],
        )?;
        {
            let mut st = tx.prepare(
                "INSERT INTO scores (model_id, entity_id, as_of, probability, factors) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (id, p, factors) in rows {
                st.execute(params![model_id, id, as_of, p, factors])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The latest stored scores of an entity, one per model kind.
    pub fn latest_scores(&self, entity_id: &str) -> Result<Vec<ScoreRecord>> {
        let mut st = self.conn.prepare(
            "SELECT m.kind, m.version, s.entity_id, s.as_of, s.probability, s.factors
             FROM scores s JOIN models m ON m.id = s.model_id
             WHERE s.entity_id = ?1 ORDER BY m.kind, s.as_of DESC, m.version DESC",
        )?;
        let mut out: Vec<ScoreRecord> = Vec::new();
        for r in st.query_map([entity_id], |r| {
            let f: String = r.get(5)?;
            Ok(ScoreRecord {
                model_kind: r.get(0)?,
                model_version: r.get(1)?,
                entity_id: r.get(2)?,
                as_of: r.get(3)?,
                probability: r.get(4)?,
                factors: serde_json::from_str(&f).unwrap_or(serde_json::Value::Null),
            })
        })? {
            let r = r?;
            if out.last().is_none_or(|l| l.model_kind != r.model_kind) {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// A manager's decision about a coaching recommendation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CoachingDecision {
    pub id: i64,
    /// The recommendation's stable id (`rep:skill` or `alert:opportunity`).
    pub recommendation: String,
    pub rep_id: String,
    /// `accepted`, `edited` or `dismissed`.
    pub action: String,
    pub reason: Option<String>,
    pub edited_text: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: String,
}

impl SqliteStore {
    /// Records a decision (kept with every earlier one: the latest counts).
    #[allow(clippy::too_many_arguments)]
    pub fn record_coaching_decision(
        &mut self,
        recommendation: &str,
        rep_id: &str,
        action: &str,
        reason: Option<&str>,
        edited_text: Option<&str>,
        decided_by: Option<&str>,
        decided_at: &str,
    ) -> Result<CoachingDecision> {
        if !matches!(action, "accepted" | "edited" | "dismissed") {
            return Err(StoreError::Invalid(format!(
                "decision {action:?}: expected accepted, edited or dismissed"
            )));
        }
        self.conn.execute(
            "INSERT INTO coaching_decisions (recommendation, rep_id, action, reason, edited_text, decided_by, decided_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![recommendation, rep_id, action, reason, edited_text, decided_by, decided_at],
        )?;
        let id = self.conn.last_insert_rowid();
        Ok(CoachingDecision {
            id,
            recommendation: recommendation.into(),
            rep_id: rep_id.into(),
            action: action.into(),
            reason: reason.map(Into::into),
            edited_text: edited_text.map(Into::into),
            decided_by: decided_by.map(Into::into),
            decided_at: decided_at.into(),
        })
    }

    /// Every decision, oldest first.
    pub fn coaching_decisions(&self) -> Result<Vec<CoachingDecision>> {
        let mut st = self.conn.prepare(
            "SELECT id, recommendation, rep_id, action, reason, edited_text, decided_by, decided_at
             FROM coaching_decisions ORDER BY id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(CoachingDecision {
                    id: r.get(0)?,
                    recommendation: r.get(1)?,
                    rep_id: r.get(2)?,
                    action: r.get(3)?,
                    reason: r.get(4)?,
                    edited_text: r.get(5)?,
                    decided_by: r.get(6)?,
                    decided_at: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// A manager's override of the forecast: a deal taken out (or put back in).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForecastOverride {
    pub id: i64,
    pub opportunity_id: String,
    /// True: taken out of the forecast; false: put back.
    pub excluded: bool,
    pub reason: String,
    pub decided_by: Option<String>,
    pub decided_at: String,
}

impl SqliteStore {
    /// Records an override; the latest per deal holds. Errors on an empty reason.
    pub fn record_forecast_override(
        &mut self,
        opportunity_id: &str,
        excluded: bool,
        reason: &str,
        decided_by: Option<&str>,
        decided_at: &str,
    ) -> Result<ForecastOverride> {
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a forecast override needs a reason".into(),
            ));
        }
        self.conn.execute(
            "INSERT INTO forecast_overrides (opportunity_id, excluded, reason, decided_by, decided_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![opportunity_id, excluded, reason, decided_by, decided_at],
        )?;
        Ok(ForecastOverride {
            id: self.conn.last_insert_rowid(),
            opportunity_id: opportunity_id.into(),
            excluded,
            reason: reason.into(),
            decided_by: decided_by.map(Into::into),
            decided_at: decided_at.into(),
        })
    }

    /// The latest override of every deal that has one.
    pub fn forecast_overrides(&self) -> Result<Vec<ForecastOverride>> {
        let mut st = self.conn.prepare(
            "SELECT id, opportunity_id, excluded, reason, decided_by, decided_at
             FROM forecast_overrides f
             WHERE id = (SELECT MAX(id) FROM forecast_overrides g WHERE g.opportunity_id = f.opportunity_id)
             ORDER BY opportunity_id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(ForecastOverride {
                    id: r.get(0)?,
                    opportunity_id: r.get(1)?,
                    excluded: r.get(2)?,
                    reason: r.get(3)?,
                    decided_by: r.get(4)?,
                    decided_at: r.get(5)?,
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// A follow-up task (a cadence step of a lead) a rep marked done or skipped.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeadTaskMark {
    pub id: i64,
    pub lead_id: String,
    /// The cadence step, 1-based.
    pub step: u32,
    /// `done` or `skipped`.
    pub status: String,
    pub note: Option<String>,
    pub marked_by: Option<String>,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub marked_at: String,
}

impl SqliteStore {
    /// Marks step `step` of lead `lead_id` done or skipped; the latest mark
    /// per step holds. Errors: no such lead, a step below 1, a status other
    /// than `done` or `skipped`.
    pub fn record_lead_task(
        &mut self,
        lead_id: &str,
        step: u32,
        status: &str,
        note: Option<&str>,
        marked_by: Option<&str>,
        marked_at: &str,
    ) -> Result<LeadTaskMark> {
        if !matches!(status, "done" | "skipped") {
            return Err(StoreError::Invalid(format!(
                "a task is marked done or skipped, not {status:?}"
            )));
        }
        if step == 0 {
            return Err(StoreError::Invalid("cadence steps count from 1".into()));
        }
        let known: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM leads WHERE id = ?1", [lead_id], |r| r.get(0))
            .optional()?;
        if known.is_none() {
            return Err(StoreError::Invalid(format!("no lead with id {lead_id:?}")));
        }
        self.conn.execute(
            "INSERT INTO lead_task_marks (lead_id, step, status, note, marked_by, marked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![lead_id, step, status, note, marked_by, marked_at],
        )?;
        Ok(LeadTaskMark {
            id: self.conn.last_insert_rowid(),
            lead_id: lead_id.into(),
            step,
            status: status.into(),
            note: note.map(Into::into),
            marked_by: marked_by.map(Into::into),
            marked_at: marked_at.into(),
        })
    }

    /// The latest mark of every (lead, step) that has one, by lead and step.
    pub fn lead_task_marks(&self) -> Result<Vec<LeadTaskMark>> {
        let mut st = self.conn.prepare(
            "SELECT id, lead_id, step, status, note, marked_by, marked_at
             FROM lead_task_marks m
             WHERE id = (SELECT MAX(id) FROM lead_task_marks n
                         WHERE n.lead_id = m.lead_id AND n.step = m.step)
             ORDER BY lead_id, step",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(LeadTaskMark {
                    id: r.get(0)?,
                    lead_id: r.get(1)?,
                    step: r.get(2)?,
                    status: r.get(3)?,
                    note: r.get(4)?,
                    marked_by: r.get(5)?,
                    marked_at: r.get(6)?,
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Gives lead `lead_id` to `owner_id` (a routing decision); false when
    /// there is no such lead. Errors: no such user.
    pub fn assign_lead(&mut self, lead_id: &str, owner_id: &str) -> Result<bool> {
        let known: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM users WHERE id = ?1", [owner_id], |r| {
                r.get(0)
            })
            .optional()?;
        if known.is_none() {
            return Err(StoreError::Invalid(format!("no user with id {owner_id:?}")));
        }
        let n = self.conn.execute(
            "UPDATE leads SET owner_id = ?2 WHERE id = ?1",
            params![lead_id, owner_id],
        )?;
        Ok(n > 0)
    }
}
