//! The model registry as the API shows it: every trained model with its
//! windows and metrics, and one model's card.

use pipewise_store::ModelRecord;
use serde::Serialize;
use utoipa::ToSchema;

/// A registered model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelView {
    /// `win`, `slip` or `lead`.
    pub kind: String,
    pub version: i64,
    /// Whether it is the version that scores.
    pub active: bool,
    pub created_at: String,
    pub algorithm: String,
    /// The training and test windows (YYYY-MM-DD or date-times; null when not split by time).
    pub train_from: Option<String>,
    pub train_to: Option<String>,
    pub test_from: Option<String>,
    pub test_to: Option<String>,
    /// The features it reads.
    pub features: Vec<String>,
    /// Its measured accuracy on data it did not see (as `pipewise models --json` shows it).
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
}

impl From<&ModelRecord> for ModelView {
    fn from(m: &ModelRecord) -> Self {
        ModelView {
            kind: m.kind.clone(),
            version: m.version,
            active: m.active,
            created_at: m.created_at.clone(),
            algorithm: m.algorithm.clone(),
            train_from: m.train_from.clone(),
            train_to: m.train_to.clone(),
            test_from: m.test_from.clone(),
            test_to: m.test_to.clone(),
            features: m
                .features
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            metrics: if m.metrics.is_object() {
                m.metrics.clone()
            } else {
                serde_json::json!({ "value": m.metrics })
            },
        }
    }
}

/// One model with its card (Markdown: purpose, data, validation, drivers, limits).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelCard {
    #[serde(flatten)]
    pub model: ModelView,
    pub card: String,
}
