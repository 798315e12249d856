//! Prometheus metrics: request counts and latency histograms per route.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EngineLabels {
    pub engine: String,
}

type Buckets = fn() -> Histogram;

fn buckets() -> Histogram {
    // 0.1 ms to about 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram, Buckets>,
    pub engines: Family<EngineLabels, Histogram, Buckets>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pipewise");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RouteLabels, Histogram, Buckets>::new_with_constructor(buckets as Buckets);
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route",
            latency.clone(),
        );
        let engines =
            Family::<EngineLabels, Histogram, Buckets>::new_with_constructor(buckets as Buckets);
        registry.register(
            "engine_duration_seconds",
            "Time an engine took: score_pipeline (every open deal scored at start-up or reload), and the background analyses coaching, lead_scores, evidence_stage, forecast_models",
            engines.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            engines,
        }
    }

    pub fn engine(&self, name: &str, seconds: f64) {
        self.engines
            .get_or_create(&EngineLabels {
                engine: name.into(),
            })
            .observe(seconds);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}
