//! Next-best actions as stored: the lists made for reps (for adherence) and
//! the actions they dismissed.

use rusqlite::params;
use serde::Serialize;

use crate::{Result, SqliteStore, StoreError};

/// One action of a rep's list for a day, to store.
#[derive(Debug, Clone)]
pub struct NewRecommendation {
    pub target_kind: String,
    pub target_id: String,
    pub account_id: Option<String>,
    pub action: String,
    pub channel: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`: when, and when its window closes.
    pub at: String,
    pub window_end: String,
    pub probability: f64,
    pub amount: f64,
    pub uplift: f64,
    pub expected_value: f64,
    /// The reasons, joined by "; ".
    pub why: String,
}

/// A stored recommendation.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendation {
    pub id: i64,
    /// The list's day, `YYYY-MM-DD`.
    pub day: String,
    pub rep_id: String,
    pub target_kind: String,
    pub target_id: String,
    pub account_id: Option<String>,
    pub action: String,
    pub channel: String,
    pub at: String,
    pub window_end: String,
    /// 1-based place in the day's list.
    pub rank: i64,
    pub probability: f64,
    pub amount: f64,
    pub uplift: f64,
    pub expected_value: f64,
    pub why: String,
    pub made_at: String,
}

/// A stored dismissal.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionDismissal {
    pub id: i64,
    pub rep_id: String,
    pub target_kind: String,
    pub target_id: String,
    pub action: String,
    /// The day of the list it was dismissed from, `YYYY-MM-DD`.
    pub day: String,
    /// `done`, `not_useful`, `wrong_timing`, `not_mine` or `other`.
    pub reason: String,
    pub note: Option<String>,
    pub dismissed_by: Option<String>,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub dismissed_at: String,
}

/// The reasons a dismissal may give.
pub const DISMISSAL_REASONS: [&str; 5] =
    ["done", "not_useful", "wrong_timing", "not_mine", "other"];

impl SqliteStore {
    /// Stores `rep_id`'s list for `day` (`YYYY-MM-DD`), in rank order,
    /// replacing that day's list (a list made again the same day updates
    /// it; actions no longer on it are removed). Returns the rows' ids.
    pub fn record_recommendations(
        &mut self,
        day: &str,
        rep_id: &str,
        actions: &[NewRecommendation],
        made_at: &str,
    ) -> Result<Vec<i64>> {
        let tx = self.conn.transaction()?;
        let ids = insert_list(&tx, day, rep_id, actions, made_at)?;
        tx.commit()?;
        Ok(ids)
    }

    /// Stores many lists (`((day, rep_id), actions)`, each as
    /// [`record_recommendations`](Self::record_recommendations) with
    /// `made_at` the day's start) in one transaction: all or none.
    pub fn record_recommendation_lists(
        &mut self,
        lists: &[((String, String), Vec<NewRecommendation>)],
    ) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for ((day, rep_id), actions) in lists {
            n += insert_list(&tx, day, rep_id, actions, &format!("{day}T00:00:00Z"))?.len();
        }
        tx.commit()?;
        Ok(n)
    }

    /// Every stored recommendation (of `rep_id` when given), by day, rep
    /// and rank.
    pub fn recommendations(&self, rep_id: Option<&str>) -> Result<Vec<Recommendation>> {
        let mut st = self.conn.prepare(
            "SELECT id, day, rep_id, target_kind, target_id, account_id, action, channel, at,
                    window_end, rank, probability, amount, uplift, expected_value, why, made_at
             FROM action_recommendations WHERE ?1 IS NULL OR rep_id = ?1
             ORDER BY day, rep_id, rank",
        )?;
        let rows = st
            .query_map([rep_id], |r| {
                Ok(Recommendation {
                    id: r.get(0)?,
                    day: r.get(1)?,
                    rep_id: r.get(2)?,
                    target_kind: r.get(3)?,
                    target_id: r.get(4)?,
                    account_id: r.get(5)?,
                    action: r.get(6)?,
                    channel: r.get(7)?,
                    at: r.get(8)?,
                    window_end: r.get(9)?,
                    rank: r.get(10)?,
                    probability: r.get(11)?,
                    amount: r.get(12)?,
                    uplift: r.get(13)?,
                    expected_value: r.get(14)?,
                    why: r.get(15)?,
                    made_at: r.get(16)?,
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Records that `rep_id` dismissed `action` on a target (the note, if
    /// any, says why). Errors: an unknown reason.
    #[allow(clippy::too_many_arguments)]
    pub fn record_dismissal(
        &mut self,
        rep_id: &str,
        target_kind: &str,
        target_id: &str,
        action: &str,
        day: &str,
        reason: &str,
        note: Option<&str>,
        dismissed_by: Option<&str>,
        dismissed_at: &str,
    ) -> Result<ActionDismissal> {
        if !DISMISSAL_REASONS.contains(&reason) {
            return Err(StoreError::Invalid(format!(
                "a dismissal's reason is one of {}, not {reason:?}",
                DISMISSAL_REASONS.join(", ")
            )));
        }
        self.conn.execute(
            "INSERT INTO action_dismissals (rep_id, target_kind, target_id, action, day, reason,
                note, dismissed_by, dismissed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                rep_id,
                target_kind,
                target_id,
                action,
                day,
                reason,
                note,
                dismissed_by,
                dismissed_at
            ],
        )?;
        Ok(ActionDismissal {
            id: self.conn.last_insert_rowid(),
            rep_id: rep_id.into(),
            target_kind: target_kind.into(),
            target_id: target_id.into(),
            action: action.into(),
            day: day.into(),
            reason: reason.into(),
            note: note.map(Into::into),
            dismissed_by: dismissed_by.map(Into::into),
            dismissed_at: dismissed_at.into(),
        })
    }

    /// Every dismissal (of `rep_id` when given), oldest first.
    pub fn dismissals(&self, rep_id: Option<&str>) -> Result<Vec<ActionDismissal>> {
        let mut st = self.conn.prepare(
            "SELECT id, rep_id, target_kind, target_id, action, day, reason, note, dismissed_by,
                    dismissed_at
             FROM action_dismissals WHERE ?1 IS NULL OR rep_id = ?1 ORDER BY id",
        )?;
        let rows = st
            .query_map([rep_id], |r| {
                Ok(ActionDismissal {
                    id: r.get(0)?,
                    rep_id: r.get(1)?,
                    target_kind: r.get(2)?,
                    target_id: r.get(3)?,
                    action: r.get(4)?,
                    day: r.get(5)?,
                    reason: r.get(6)?,
                    note: r.get(7)?,
                    dismissed_by: r.get(8)?,
                    dismissed_at: r.get(9)?,
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

fn insert_list(
    tx: &rusqlite::Transaction,
    day: &str,
    rep_id: &str,
    actions: &[NewRecommendation],
    made_at: &str,
) -> Result<Vec<i64>> {
    tx.execute(
        "DELETE FROM action_recommendations WHERE day = ?1 AND rep_id = ?2",
        params![day, rep_id],
    )?;
    let mut ids = Vec::with_capacity(actions.len());
    let mut st = tx.prepare(
        "INSERT INTO action_recommendations (day, rep_id, target_kind, target_id, account_id,
            action, channel, at, window_end, rank, probability, amount, uplift,
            expected_value, why, made_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for (k, a) in actions.iter().enumerate() {
        st.execute(params![
            day,
            rep_id,
            a.target_kind,
            a.target_id,
            a.account_id,
            a.action,
            a.channel,
            a.at,
            a.window_end,
            k as i64 + 1,
            a.probability,
            a.amount,
            a.uplift,
            a.expected_value,
            a.why,
            made_at
        ])?;
        ids.push(tx.last_insert_rowid());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, action: &str) -> NewRecommendation {
        NewRecommendation {
            target_kind: "deal".into(),
            target_id: id.into(),
            account_id: None,
            action: action.into(),
            channel: "call".into(),
            at: "2025-01-06T10:00:00Z".into(),
            window_end: "2025-01-09T00:00:00Z".into(),
            probability: 0.4,
            amount: 1000.0,
            uplift: 0.02,
            expected_value: 20.0,
            why: "quiet for 20 days".into(),
        }
    }

    #[test]
    fn a_day_list_is_replaced_when_made_again_and_a_dismissal_needs_a_known_reason() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.record_recommendations(
            "2025-01-06",
            "u1",
            &[rec("o1", "call"), rec("o2", "email")],
            "t",
        )
        .unwrap();
        s.record_recommendations("2025-01-06", "u1", &[rec("o3", "call")], "t")
            .unwrap();
        s.record_recommendations("2025-01-07", "u1", &[rec("o1", "call")], "t")
            .unwrap();
        let all = s.recommendations(Some("u1")).unwrap();
        let got: Vec<(&str, &str, i64)> = all
            .iter()
            .map(|r| (r.day.as_str(), r.target_id.as_str(), r.rank))
            .collect();
        assert_eq!(got, vec![("2025-01-06", "o3", 1), ("2025-01-07", "o1", 1)]);
        assert!(s.recommendations(Some("u2")).unwrap().is_empty());

        let err = s
            .record_dismissal(
                "u1",
                "deal",
                "o1",
                "call",
                "2025-01-06",
                "bored",
                None,
                None,
                "t",
            )
            .unwrap_err();
        assert!(err.to_string().contains("not_useful"), "{err}");
        s.record_dismissal(
            "u1",
            "deal",
            "o1",
            "call",
            "2025-01-06",
            "done",
            None,
            Some("u1"),
            "t",
        )
        .unwrap();
        let d = s.dismissals(None).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].reason, "done");
    }
}
