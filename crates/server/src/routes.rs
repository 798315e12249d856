//! The routes, their OpenAPI annotations and the middleware.

use std::time::Instant;

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use pipewise_app::book::{DealDetail, DealPage, DealQuery};
use pipewise_app::calls::{CallDetail, CallPage, CallQuery};
use pipewise_app::coaching::{Decision, DecisionRecord};
use pipewise_app::forecasting::{ForecastQuery, ForecastView};
use pipewise_app::imports::{ImportJob, ImportRequest, Upload};
use pipewise_app::insight::{
    BiasView, CoachingOverview, InspectionPage, InspectionQuery, RepCoaching,
};
use pipewise_app::leads::{InboundAccepted, InboundLead, LeadPage, LeadQuery};
use pipewise_app::models::{ModelCard, ModelView};
use pipewise_app::monitor::MonitorReport;
use pipewise_app::{AuditEntry, Me, SessionStart};
use serde::{Deserialize, Serialize};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{ApiJson, ApiQuery, Authed, ClientAddr, NoQuery, SESSION_COOKIE, cookie};
use crate::metrics::{RequestLabels, RouteLabels};
use crate::problem::Problem;
use crate::{AppState, Options};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pipewise",
        description = "Sales intelligence over your CRM: scored pipeline, forecasts, coaching. Every `/api/v1` route needs `Authorization: Bearer TOKEN` (`pipewise token create --user ID`) and answers within the caller's scope: a rep sees their own book, a manager their team down the hierarchy, a director or admin everything. Records outside the scope answer 404. Errors are application/problem+json (RFC 9457). With the request header `Pseudonymise: true`, every person in a JSON or CSV answer is replaced by a stable keyed pseudonym (the server's key; see docs/privacy.md).",
        license(name = "Apache-2.0")
    ),
    modifiers(&Bearer),
    components(schemas(Problem)),
    tags(
        (name = "service", description = "Health, metrics and this document"),
        (name = "pipeline", description = "Open deals with win and slip probabilities, entered against evidence stage, stage bias"),
        (name = "forecast", description = "Bookings forecasts with their range, rolled up over the caller's scope"),
        (name = "coaching", description = "Rep profiles, coaching plans and managers' decisions; recorded calls and their analysis"),
        (name = "leads", description = "Open leads with conversion scores; inbound leads"),
        (name = "actions", description = "Next-best actions for a rep's day, dismissals, adherence, message tests"),
        (name = "comp", description = "Incentive plans applied to the org's performance, side by side"),
        (name = "territories", description = "Account segments, which reps win where, account plans and whitespace; customers' next product and churn risk"),
        (name = "models", description = "The model registry and model cards"),
        (name = "privacy", description = "What pipewise holds about a person and every estimate it makes of them"),
        (name = "admin", description = "Admin only")
    )
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `pipewise token create --user ID`"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "pipewise_session",
                    "The cookie POST /api/v1/session sets; requests that change something also send X-CSRF-Token",
                ),
            )),
        );
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(me))
        .routes(routes!(my_data))
        .routes(routes!(user_data))
        .routes(routes!(erase_person))
        .routes(routes!(apply_retention))
        .routes(routes!(list_opportunities))
        .routes(routes!(get_opportunity))
        .routes(routes!(override_forecast))
        .routes(routes!(audit_log))
        .routes(routes!(get_forecast))
        .routes(routes!(pipeline_inspection))
        .routes(routes!(rep_bias))
        .routes(routes!(coaching_overview))
        .routes(routes!(rep_coaching))
        .routes(routes!(team_report))
        .routes(routes!(rep_report))
        .routes(routes!(decide))
        .routes(routes!(list_calls))
        .routes(routes!(get_call))
        .routes(routes!(list_models))
        .routes(routes!(get_model))
        .routes(routes!(model_monitor))
        .routes(routes!(model_fairness))
        .routes(routes!(export_scores))
        .routes(routes!(list_leads))
        .routes(routes!(inbound_lead))
        .routes(routes!(lead_queue))
        .routes(routes!(lead_sla))
        .routes(routes!(lead_draft))
        .routes(routes!(lead_routing))
        .routes(routes!(mark_lead_task))
        .routes(routes!(rep_actions))
        .routes(routes!(dismiss_action))
        .routes(routes!(adherence))
        .routes(routes!(adherence_effect))
        .routes(routes!(message_tests))
        .routes(routes!(message_choice))
        .routes(routes!(roi))
        .routes(routes!(comp_plans))
        .routes(routes!(comp_simulate))
        .routes(routes!(territory_segments))
        .routes(routes!(territory_plan))
        .routes(routes!(territory_whitespace))
        .routes(routes!(next_products))
        .routes(routes!(churn_risk))
        .routes(routes!(start_import, list_imports))
        .routes(routes!(get_import))
        .routes(routes!(sign_in, sign_out))
}

/// The OpenAPI document.
pub fn spec() -> utoipa::openapi::OpenApi {
    finish(api().split_for_parts().1)
}

/// Constraints the derives cannot say, added to the finished document.
fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    if let Some(c) = doc.components.as_mut() {
        // An inbound lead names someone to answer: an email, a contact name
        // or a company (JSON Schema `anyOf` of `required`).
        if let Some(lead) = c.schemas.remove("InboundLead") {
            use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder};
            let mut any = AnyOfBuilder::new();
            for f in ["email", "contact_name", "company"] {
                any = any.item(ObjectBuilder::new().required(f));
            }
            c.schemas.insert(
                "InboundLead".into(),
                AllOfBuilder::new()
                    .item(lead)
                    .item(utoipa::openapi::Schema::AnyOf(any.build()))
                    .into(),
            );
        }
    }
    doc
}

pub fn router(state: AppState, opts: &Options) -> (Router, utoipa::openapi::OpenApi) {
    let (api_router, spec) = api().split_for_parts();
    let spec = finish(spec);
    let doc = spec.clone();
    let router = api_router
        .merge(crate::web::router())
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { Json(doc) }
            }),
        )
        .route("/metrics", axum::routing::get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), pseudonymise))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            opts.request_timeout,
        ))
        // One limit for every body, the server's (axum's own 2 MB default off).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(opts.body_limit))
        .layer(middleware::map_response(plain_errors_as_problems))
        .layer(middleware::from_fn_with_state(
            opts.secure_cookies,
            secure_session_cookie,
        ))
        .with_state(state);
    (router, spec)
}

/// Adds `Secure` to the session cookie a response sets when the server
/// is told it is reached over HTTPS, or when the request came through a
/// TLS-terminating proxy (`X-Forwarded-Proto: https`; a forged header only
/// makes the sender's own cookie stricter).
async fn secure_session_cookie(
    State(always): State<bool>,
    req: Request,
    next: middleware::Next,
) -> Response {
    let https = always
        || req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            // A chain of proxies lists the client's side first.
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let mut r = next.run(req).await;
    if https {
        let cookies: Vec<axum::http::HeaderValue> = r
            .headers_mut()
            .remove(axum::http::header::SET_COOKIE)
            .into_iter()
            .collect();
        for c in cookies {
            let v = match c.to_str() {
                Ok(s)
                    if s.starts_with(&format!("{}=", crate::extract::SESSION_COOKIE))
                        && !s.contains("; Secure") =>
                {
                    axum::http::HeaderValue::from_str(&format!("{s}; Secure")).unwrap_or(c)
                }
                _ => c,
            };
            r.headers_mut().append(axum::http::header::SET_COOKIE, v);
        }
    }
    r
}

/// The errors the tower layers answer in plain text (a body over the limit,
/// a request over the time limit) as application/problem+json too.
async fn plain_errors_as_problems(r: Response) -> Response {
    let status = r.status();
    let is_problem = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem
        || !(status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::REQUEST_TIMEOUT)
    {
        return r;
    }
    let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "the request body is over the server's limit (pipewise serve --body-limit-mib)"
    } else {
        "the request took longer than the server's limit (pipewise serve --timeout-secs)"
    };
    let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "too-large"
    } else {
        "timeout"
    };
    Problem::new(status, kind, detail).into_response()
}

/// Counts and times every request by its route template, and logs it.
/// The request header asking for people to be replaced by pseudonyms.
pub const PSEUDONYMISE_HEADER: &str = "pseudonymise";

/// With `Pseudonymise: true` (or `Pseudonymize`), a successful JSON, CSV or
/// text (Markdown, HTML) response has every person in it replaced by their
/// keyed pseudonym (ids exactly, names and emails inside text;
/// docs/privacy.md), and says so in its own `Pseudonymise` header; any
/// other kind of answer is refused (400), never sent with names. A server
/// without a key answers 400.
async fn pseudonymise(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Either spelling: a header misspelt would otherwise give names back.
    let asked = [PSEUDONYMISE_HEADER, "pseudonymize"]
        .iter()
        .find_map(|h| req.headers().get(*h))
        .map(|v| {
            v.to_str()
                .map(|v| v.trim().to_ascii_lowercase())
                .unwrap_or_default()
        });
    match asked.as_deref() {
        None | Some("false") | Some("0") => return next.run(req).await,
        Some("true") | Some("1") => {}
        Some(other) => {
            return Problem::bad_request(
                "Pseudonymise",
                "true or false",
                format!("Pseudonymise: {other}"),
            )
            .into_response();
        }
    }
    let px = match state.service.pseudonymiser() {
        Ok(p) => p,
        Err(e) => return Problem::from(e).into_response(),
    };
    let resp = next.run(req).await;
    if !resp.status().is_success() {
        return resp;
    }
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let json =
        ctype.starts_with("application/json") || ctype.starts_with("application/problem+json");
    let csv = ctype.starts_with("text/csv");
    let text = ctype.starts_with("text/");
    if !json && !text {
        // Never an answer with names left in: refuse what cannot be read.
        return Problem::bad_request(
            "Pseudonymise",
            "an answer in JSON, CSV or text (Markdown, HTML)",
            format!("this answer is {ctype}: it cannot be pseudonymised"),
        )
        .into_response();
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return Problem::from(pipewise_app::AppError::Internal(anyhow::anyhow!(
                "reading the response to pseudonymise: {e}"
            )))
            .into_response();
        }
    };
    let body = String::from_utf8_lossy(&bytes);
    let out = if json {
        match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(mut v) => {
                px.json(&mut v);
                v.to_string()
            }
            Err(_) => px.text(&body),
        }
    } else if csv {
        match px.csv(&body) {
            Ok(c) => c,
            Err(e) => {
                return Problem::from(pipewise_app::AppError::Internal(e)).into_response();
            }
        }
    } else {
        px.text(&body)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(PSEUDONYMISE_HEADER, HeaderValue::from_static("true"));
    Response::from_parts(parts, axum::body::Body::from(out))
}

async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let resp = next.run(req).await;
    let secs = started.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(secs);
    tracing::info!(%method, %route, status, ms = secs * 1e3, "request");
    resp
}

async fn not_found(headers: axum::http::HeaderMap) -> Response {
    // A browser asking for a page gets one; API clients get problem+json.
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return crate::web::no_such_page();
    }
    Problem::not_found("no such route: the routes are listed in /openapi.json").into_response()
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not take that method: see /openapi.json",
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    for (engine, secs) in state.service.take_analysis_timings() {
        state.metrics.engine(engine, secs);
    }
    let mut r = state.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// Whether the server is up and what it can answer.
#[derive(Debug, Serialize, ToSchema)]
struct Health {
    /// `ok`.
    status: &'static str,
    /// `ready`, or why the pipeline routes answer 503 (e.g. no model trained yet).
    pipeline: String,
    /// The background analyses: `ready`, how far each is, or why it is unavailable.
    analyses: pipewise_app::analyses::AnalysesStatus,
    version: &'static str,
}

/// Health check (no sign-in needed).
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, description = "The server is up", body = Health)))]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        pipeline: state.service.readiness(),
        analyses: state.service.analyses_status(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The signed-in caller: identity, role and scope.
#[utoipa::path(get, path = "/api/v1/me", tag = "pipeline", security(("bearer" = [])),
    responses(
        (status = 200, body = Me),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn me(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<Me>, Problem> {
    state.service.me(&caller).map(Json).map_err(Problem::from)
}

/// "My data": everything pipewise holds about the caller and every
/// estimate it makes of them: their profile, sign-in data (never a
/// secret), time off, the records linked to them, decisions about and by
/// them, the models trained on their records, the groups the fairness
/// reports put them in, their stage bias and coaching profile, who read
/// their data and what they did (docs/privacy.md).
#[utoipa::path(get, path = "/api/v1/me/data", tag = "privacy", security(("bearer" = [])),
    responses(
        (status = 200, body = pipewise_app::my_data::MyData),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn my_data(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<pipewise_app::my_data::MyData>, Problem> {
    state
        .service
        .my_data(&caller, None, "GET /api/v1/me/data")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// The kind of person to erase.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum PersonKind {
    /// A contact: the contact, the leads linked to it and every lead or
    /// contact with the same email.
    Contact,
    /// A lead: the lead, its contact, and the same again.
    Lead,
    /// A user: a rep, manager or admin.
    User,
}

/// Who to erase.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ErasureRequest {
    person: PersonKind,
    /// Their id.
    #[schema(min_length = 1)]
    id: String,
    /// Why (the request's reference); kept in the audit log with any
    /// mention of the person removed.
    reason: Option<String>,
}

/// Erases a person (GDPR article 17, CCPA; admin only): their name, email,
/// inquiries and words removed or anonymised everywhere, the aggregates
/// kept, audit details that named them blanked, the erasure audited
/// without their identity, models trained on them marked for retraining,
/// and the file rewritten. Erasing someone again changes nothing. See
/// docs/privacy.md.
#[utoipa::path(post, path = "/api/v1/privacy/erasures", tag = "privacy",
    security(("bearer" = []), ("session" = [])),
    request_body = ErasureRequest,
    responses(
        (status = 200, body = pipewise_app::privacy::ErasureReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn erase_person(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    ApiJson(body): ApiJson<ErasureRequest>,
) -> Result<Json<pipewise_app::privacy::ErasureReport>, Problem> {
    use pipewise_app::privacy::Subject;
    let subject = match body.person {
        PersonKind::Contact => Subject::Contact(&body.id),
        PersonKind::Lead => Subject::Lead(&body.id),
        PersonKind::User => Subject::User(&body.id),
    };
    state
        .service
        .erase(
            &caller,
            subject,
            body.reason.as_deref(),
            "POST /api/v1/privacy/erasures",
        )
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// What a retention rule removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum RetentionData {
    /// Recorded calls' transcripts (each turn's text and speaker name, the
    /// call's title).
    Transcripts,
    /// Leads that never converted: their contact's name, email, title and
    /// inquiry, and their scores.
    UnconvertedLeads,
}

/// One rule: what goes once older than how many days.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RetentionRule {
    data: RetentionData,
    /// Whole days (a JSON number such as 365 or 365.0).
    #[schema(value_type = u32, minimum = 1, maximum = 36500)]
    days: f64,
}

/// A retention run, with ages counted from now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RetentionRequest {
    /// One rule or two; two for the same data keep the shorter period.
    #[schema(min_items = 1, max_items = 2)]
    rules: Vec<RetentionRule>,
    /// Report what is due and change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Applies a retention policy (admin only), ages counted from now:
/// transcripts and unconverted leads past their age lose their personal
/// data, logged in the audit log
/// (`privacy.retention`) and followed by a rewrite of the file. See
/// docs/privacy.md.
#[utoipa::path(post, path = "/api/v1/privacy/retention", tag = "privacy",
    security(("bearer" = []), ("session" = [])),
    request_body = RetentionRequest,
    responses(
        (status = 200, body = pipewise_app::privacy::RetentionReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn apply_retention(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    ApiJson(body): ApiJson<RetentionRequest>,
) -> Result<Json<pipewise_app::privacy::RetentionReport>, Problem> {
    if body.rules.is_empty() || body.rules.len() > 2 {
        return Err(Problem::bad_request(
            "rules",
            "one or two rules",
            format!("{} rules", body.rules.len()),
        ));
    }
    let mut policy = pipewise_app::privacy::RetentionPolicy::default();
    for r in &body.rules {
        if !(1.0..=36_500.0).contains(&r.days) || r.days.fract() != 0.0 {
            return Err(Problem::bad_request(
                "days",
                "a whole number of days from 1 to 36500",
                format!("{} days", r.days),
            ));
        }
        let days = r.days as u32;
        let slot = match r.data {
            RetentionData::Transcripts => &mut policy.transcripts_days,
            RetentionData::UnconvertedLeads => &mut policy.unconverted_leads_days,
        };
        *slot = Some(slot.map_or(days, |d| d.min(days)));
    }
    state
        .service
        .apply_retention(
            &caller,
            &policy,
            None,
            body.dry_run,
            "POST /api/v1/privacy/retention",
        )
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// A user's data as "my data" shows it to them, for an admin answering a
/// subject access request (GDPR article 15); audited.
#[utoipa::path(get, path = "/api/v1/users/{id}/data", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, body = pipewise_app::my_data::MyData),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn user_data(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<pipewise_app::my_data::MyData>, Problem> {
    let via = format!("GET /api/v1/users/{id}/data");
    state
        .service
        .my_data(&caller, Some(&id), &via)
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Open deals in the caller's scope with win and slip probabilities,
/// filtered, sorted and paged.
#[utoipa::path(get, path = "/api/v1/opportunities", tag = "pipeline", security(("bearer" = [])),
    params(DealQuery),
    responses(
        (status = 200, body = DealPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No model trained yet", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_opportunities(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<DealQuery>,
) -> Result<Json<DealPage>, Problem> {
    let s = state.service.clone();
    s.opportunities(&caller, &q, "GET /api/v1/opportunities")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// One open deal: its scores with every factor, the values the models read
/// and its history. Deals outside the caller's scope answer 404.
#[utoipa::path(get, path = "/api/v1/opportunities/{id}", tag = "pipeline", security(("bearer" = [])),
    params(("id" = String, Path, description = "Opportunity id")),
    responses(
        (status = 200, body = DealDetail),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No model trained yet", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_opportunity(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<DealDetail>, Problem> {
    let s = state.service.clone();
    s.opportunity(&caller, &id, "GET /api/v1/opportunities/{id}")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// A manager's override of the forecast.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    /// `true` takes the deal out of the forecast; `false` puts it back.
    excluded: bool,
    /// Why (shown beside the deal, kept in the audit log).
    #[schema(pattern = "\\S", max_length = 2000)]
    reason: String,
}

/// Takes an open deal out of the forecast, or puts it back, with a reason
/// (a manager, director or admin: the human override). The forecast counts
/// the deal for nothing from its next request; deals outside the caller's
/// scope answer 404.
#[utoipa::path(post, path = "/api/v1/opportunities/{id}/forecast-override", tag = "forecast",
    security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "Opportunity id")),
    request_body = OverrideBody,
    responses(
        (status = 201, body = pipewise_app::ForecastOverride),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No model trained yet", body = Problem, content_type = "application/problem+json"),
    ))]
async fn override_forecast(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<OverrideBody>,
) -> Result<(StatusCode, Json<pipewise_app::ForecastOverride>), Problem> {
    let s = state.service.clone();
    s.override_forecast(
        &caller,
        &id,
        body.excluded,
        &body.reason,
        "POST /api/v1/opportunities/{id}/forecast-override",
    )
    .await
    .map(|o| (StatusCode::CREATED, Json(o)))
    .map_err(Problem::from)
}

/// Filters of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Only what this user did.
    user: Option<String>,
    /// Only rows naming this record id.
    id: Option<String>,
    /// Rows, newest first, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only rows before this sequence number: the next page starts before
    /// the last row's `seq`.
    #[param(minimum = 1)]
    before: Option<i64>,
}

/// The audit log, newest first (admin only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = [AuditEntry]),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn audit_log(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, Problem> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request(
            "limit",
            "a number of rows from 1 to 1000",
            format!("limit {limit} is out of range"),
        ));
    }
    let s = state.service.clone();
    if let Some(b) = q.before
        && b < 1
    {
        return Err(Problem::bad_request(
            "before",
            "a sequence number from 1",
            format!("before {b} is out of range"),
        ));
    }
    s.audit_log(
        &caller,
        q.user.as_deref(),
        q.id.as_deref(),
        q.before,
        limit,
        "GET /api/v1/audit",
    )
    .await
    .map(Json)
    .map_err(Problem::from)
}

/// A sign-in.
#[derive(Debug, Deserialize, ToSchema)]
struct SignIn {
    user_id: String,
    /// Set with `pipewise user set-password USER_ID`.
    password: String,
}

/// Signs in with a password: sets the HttpOnly, SameSite=Strict session
/// cookie and returns the CSRF token to send as `X-CSRF-Token` with every
/// request that changes something. Five failures for a user or from an
/// address within 15 minutes answer 429 until the window has passed.
#[utoipa::path(post, path = "/api/v1/session", tag = "service",
    request_body = SignIn,
    responses(
        (status = 200, body = SessionStart, headers(("set-cookie" = String, description = "pipewise_session=...; HttpOnly; SameSite=Strict; Path=/"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Response, Problem> {
    let s = state.service.clone();
    let started =
        tokio::task::spawn_blocking(move || s.sign_in(&body.user_id, &body.password, &client))
            .await
            .map_err(|_| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "sign-in failed inside the server",
                )
            })?
            .map_err(Problem::from)?;
    let sid = started.session_id.clone();
    let mut r = Json(started).into_response();
    crate::extract::set_session_cookie(&mut r, &sid);
    Ok(r)
}

/// Signs out: ends the session of the cookie sent and clears the cookie.
/// Needs the session cookie and its `X-CSRF-Token`.
#[utoipa::path(delete, path = "/api/v1/session", tag = "service",
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "No session cookie, or the session has ended", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Missing or wrong X-CSRF-Token", body = Problem, content_type = "application/problem+json"),
    ))]
async fn sign_out(State(state): State<AppState>, req: Request) -> Result<Response, Problem> {
    let (parts, _) = req.into_parts();
    let sid = cookie(&parts, SESSION_COOKIE)
        .ok_or_else(|| Problem::from(pipewise_app::auth::AuthError::NoSession))?;
    let sent = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let s = state.service.clone();
    tokio::task::spawn_blocking(move || s.sign_out(&sid, &sent))
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "sign-out failed inside the server",
            )
        })?
        .map_err(Problem::from)?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    crate::extract::clear_session_cookie(&mut r);
    Ok(r)
}

/// The forecast of a month or quarter over the caller's scope: P10/P50/P90
/// with won-to-date, the reps' commit, the stage-weighted pipeline and a
/// run-rate, rolled up by rep, team, region or company; the open deals
/// behind it and what moved it over the last week.
#[utoipa::path(get, path = "/api/v1/forecast", tag = "forecast", security(("bearer" = [])),
    params(ForecastQuery),
    responses(
        (status = 200, body = ForecastView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A period outside the forecast window", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After), or the data cannot support it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_forecast(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<ForecastQuery>,
) -> Result<Json<ForecastView>, Problem> {
    let s = state.service.clone();
    s.forecast(&caller, q, "GET /api/v1/forecast")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Open deals in the caller's scope with the stage their evidence supports:
/// those ahead of it (optimism) or behind it (sandbagging) first, with the
/// reasons, and their win and slip probabilities.
#[utoipa::path(get, path = "/api/v1/pipeline/inspection", tag = "pipeline", security(("bearer" = [])),
    params(InspectionQuery),
    responses(
        (status = 200, body = InspectionPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After), or the data cannot support it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn pipeline_inspection(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<InspectionQuery>,
) -> Result<Json<InspectionPage>, Problem> {
    let s = state.service.clone();
    s.inspection(&caller, &q, "GET /api/v1/pipeline/inspection")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Each rep's stage bias in the caller's scope: how far and how
/// consistently their entered stages run ahead of or behind the evidence,
/// with a 95% interval and by quarter.
#[utoipa::path(get, path = "/api/v1/reps/bias", tag = "pipeline", security(("bearer" = [])),
    responses(
        (status = 200, body = BiasView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After), or the data cannot support it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn rep_bias(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<BiasView>, Problem> {
    let s = state.service.clone();
    s.rep_bias(&caller, "GET /api/v1/reps/bias")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Coaching over the caller's scope: team headlines and each rep's first
/// priority with its worth.
#[utoipa::path(get, path = "/api/v1/coaching", tag = "coaching", security(("bearer" = [])),
    responses(
        (status = 200, body = CoachingOverview),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After), or the data cannot support it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn coaching_overview(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<CoachingOverview>, Problem> {
    let s = state.service.clone();
    s.coaching(&caller, "GET /api/v1/coaching")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// One rep's profile (metrics against peers and top performers, skill
/// estimates) and coaching plan with the managers' latest decisions. Reps
/// outside the caller's scope answer 404.
#[utoipa::path(get, path = "/api/v1/coaching/{rep_id}", tag = "coaching", security(("bearer" = [])),
    params(("rep_id" = String, Path, description = "The rep's user id")),
    responses(
        (status = 200, body = RepCoaching),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After), or the data cannot support it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn rep_coaching(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    Path(rep_id): Path<String>,
) -> Result<Json<RepCoaching>, Problem> {
    let s = state.service.clone();
    s.rep_coaching(&caller, &rep_id, "GET /api/v1/coaching/{rep_id}")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Records a manager's decision about a recommendation in a rep's plan:
/// accept, edit (with the edited text) or dismiss, with a reason (required
/// to edit or dismiss). Managers, directors and admins, for reps in their
/// scope; with the session cookie, send `X-CSRF-Token`.
#[utoipa::path(post, path = "/api/v1/coaching/{rep_id}/decisions", tag = "coaching",
    security(("bearer" = []), ("session" = [])),
    params(("rep_id" = String, Path, description = "The rep's user id")),
    request_body = Decision,
    responses(
        (status = 201, body = DecisionRecord),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A rep deciding about their own plan, or a missing CSRF token", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn decide(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    Path(rep_id): Path<String>,
    ApiJson(body): ApiJson<Decision>,
) -> Result<(StatusCode, Json<DecisionRecord>), Problem> {
    let s = state.service.clone();
    s.decide(
        &caller,
        &rep_id,
        &body,
        "POST /api/v1/coaching/{rep_id}/decisions",
    )
    .await
    .map(|d| (StatusCode::CREATED, Json(d)))
    .map_err(Problem::from)
}

/// Recorded calls in the caller's scope, newest first, with their headline
/// measures (talk ratio, longest monologue, questions, objections handled,
/// next step agreed).
#[utoipa::path(get, path = "/api/v1/calls", tag = "coaching", security(("bearer" = [])),
    params(CallQuery),
    responses(
        (status = 200, body = CallPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_calls(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<CallQuery>,
) -> Result<Json<CallPage>, Problem> {
    let s = state.service.clone();
    s.calls(&caller, &q, "GET /api/v1/calls")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// One call: every turn with its speaker, role and times, and its analysis
/// (talk ratio, monologues, questions, objections and how each was handled,
/// next steps, fillers, sentiment, keyword trackers). Calls outside the
/// caller's scope answer 404.
#[utoipa::path(get, path = "/api/v1/calls/{call_id}", tag = "coaching", security(("bearer" = [])),
    params(("call_id" = String, Path, description = "The call's id")),
    responses(
        (status = 200, body = CallDetail),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_call(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    Path(call_id): Path<String>,
) -> Result<Json<CallDetail>, Problem> {
    let s = state.service.clone();
    s.call(&caller, &call_id, "GET /api/v1/calls/{call_id}")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Every registered model (win, slip, lead), each kind newest first, with
/// its windows and measured accuracy.
#[utoipa::path(get, path = "/api/v1/models", tag = "models", security(("bearer" = [])),
    responses(
        (status = 200, body = [ModelView]),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_models(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(_caller): Authed,
) -> Result<Json<Vec<ModelView>>, Problem> {
    state.service.models().map(Json).map_err(Problem::from)
}

/// One model with its card: purpose, data, validation, drivers and limits.
#[utoipa::path(get, path = "/api/v1/models/{kind}/{version}", tag = "models", security(("bearer" = [])),
    params(
        ("kind" = String, Path, description = "`win`, `slip` or `lead`"),
        ("version" = String, Path, description = "The version number"),
    ),
    responses(
        (status = 200, body = ModelCard),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_model(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(_caller): Authed,
    Path((kind, version)): Path<(String, String)>,
) -> Result<Json<ModelCard>, Problem> {
    state
        .service
        .model_card(&kind, &version)
        .map(Json)
        .map_err(Problem::from)
}

/// The monitor's window.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MonitorQuery {
    /// The recent window: weeks to the end of the data, 1-52 (default 8).
    #[param(minimum = 1, maximum = 52)]
    weeks: Option<i64>,
}

/// Drift and accuracy of the active win or slip model (admin only): each
/// input's population stability index, Jensen-Shannon and Wasserstein
/// distances between the last 13 weeks it was fitted on and the recent
/// weeks, over the open pipeline and over new deals; accuracy by month on
/// its test window and on stored scores; alerts. See docs/monitoring.md.
#[utoipa::path(get, path = "/api/v1/monitor/{kind}", tag = "admin", security(("bearer" = [])),
    params(
        ("kind" = String, Path, description = "`win` or `slip`"),
        MonitorQuery,
    ),
    responses(
        (status = 200, body = MonitorReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
async fn model_monitor(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(kind): Path<String>,
    ApiQuery(q): ApiQuery<MonitorQuery>,
) -> Result<Json<MonitorReport>, Problem> {
    let via = format!("GET /api/v1/monitor/{kind}");
    state
        .service
        .monitor(&caller, &kind, q.weeks.unwrap_or(8), &via)
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// The groups of a fairness report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FairnessQuery {
    /// Group attributes, comma-separated: of reps `region`, `team`,
    /// `tenure`, `new_hire`; of customers `industry`, `size`, `location`
    /// (default: region, team, tenure, industry, size; coaching: the rep
    /// groups among them).
    #[param(
        example = "region,tenure",
        pattern = r"^(region|team|tenure|new_hire|industry|size|location)(,(region|team|tenure|new_hire|industry|size|location))*$"
    )]
    groups: Option<String>,
}

/// Fairness by group of reps and of customers (admin only): for the win,
/// slip or lead model, calibration, selection rates, the four-fifths rule
/// and equalized odds on its held-out scores, with clustered tests, and for
/// win and slip the record (entered stages against the evidence) by group;
/// for coaching, the rate of each recommendation by group. See
/// docs/fairness.md.
#[utoipa::path(get, path = "/api/v1/fairness/{kind}", tag = "admin", security(("bearer" = [])),
    params(
        ("kind" = String, Path, description = "`win`, `slip`, `lead` or `coaching`"),
        FairnessQuery,
    ),
    responses(
        (status = 200, body = pipewise_app::fairness::FairnessReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
async fn model_fairness(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(kind): Path<String>,
    ApiQuery(q): ApiQuery<FairnessQuery>,
) -> Result<Json<pipewise_app::fairness::FairnessReport>, Problem> {
    let via = format!("GET /api/v1/fairness/{kind}");
    let groups = split_groups(q.groups.as_deref());
    state
        .service
        .fairness(&caller, &kind, &groups, &via)
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// `a,b` → `["a", "b"]` (blanks dropped).
pub(crate) fn split_groups(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

/// The caller's open deals with their win and slip probabilities and top
/// factors as CSV, for writing back to the CRM (recorded in the audit log
/// as an export).
#[utoipa::path(get, path = "/api/v1/export/scores.csv", tag = "pipeline", security(("bearer" = [])),
    responses(
        (status = 200, description = "One row per open deal: opportunity_id, name, account_id, account, owner_id, owner, stage, forecast_category, amount, close_date, win_probability, slip_probability, expected_amount, raising, lowering, as_of, win_model_version, slip_model_version", body = String, content_type = "text/csv"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No model trained yet", body = Problem, content_type = "application/problem+json"),
    ))]
async fn export_scores(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Response, Problem> {
    let s = state.service.clone();
    let csv = s
        .scores_csv(&caller, "GET /api/v1/export/scores.csv")
        .await
        .map_err(Problem::from)?;
    let mut r = csv.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"scores.csv\""),
    );
    Ok(r)
}

/// Open leads in the caller's scope, most likely to convert first, with
/// the factors behind each score and how long each waited for an answer.
#[utoipa::path(get, path = "/api/v1/leads", tag = "leads", security(("bearer" = [])),
    params(LeadQuery),
    responses(
        (status = 200, body = LeadPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_leads(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<LeadQuery>,
) -> Result<Json<LeadPage>, Problem> {
    let s = state.service.clone();
    s.leads(&caller, &q, "GET /api/v1/leads")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// An inbound lead from a web form or marketing tool (admin: an
/// integration's token). Stored with status `new` and scored in the
/// background; routing acts on it once the leads engine lands.
#[utoipa::path(post, path = "/api/v1/leads/inbound", tag = "leads",
    security(("bearer" = []), ("session" = [])),
    request_body = InboundLead,
    responses(
        (status = 201, body = InboundAccepted),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A lead with this id exists", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn inbound_lead(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    ApiJson(body): ApiJson<InboundLead>,
) -> Result<(StatusCode, Json<InboundAccepted>), Problem> {
    let s = state.service.clone();
    s.inbound_lead(&caller, &body, "POST /api/v1/leads/inbound")
        .await
        .map(|d| (StatusCode::CREATED, Json(d)))
        .map_err(Problem::from)
}

/// A rep's follow-up tasks for the day under the built-in cadence (8
/// touches over about three weeks, stop on reply): late ones first, then
/// the day's, each with its channel and the send-time model's hour, then
/// the ones marked done or skipped that day. Default: the caller's own; a
/// manager may name a rep in their scope (others answer 404).
#[utoipa::path(get, path = "/api/v1/leads/queue", tag = "leads", security(("bearer" = [])),
    params(pipewise_app::lead_desk::QueueQuery),
    responses(
        (status = 200, body = pipewise_app::leads::RepQueue),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn lead_queue(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<pipewise_app::lead_desk::QueueQuery>,
) -> Result<Json<pipewise_app::leads::RepQueue>, Problem> {
    let s = state.service.clone();
    s.lead_queue(&caller, &q, "GET /api/v1/leads/queue")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Speed to lead over the caller's scope: each lead's response clock in
/// working minutes (the owner's hours in their time zone, less time out of
/// office; Monday-Friday, 08:00-18:00 UTC without hours of their own)
/// against the SLA, the share answered within it and never answered per
/// rep, the leads waiting (`breached` past the SLA, `reassign` past twice
/// it or with the owner away) and conversion by response time.
#[utoipa::path(get, path = "/api/v1/leads/sla", tag = "leads", security(("bearer" = [])),
    params(pipewise_app::lead_desk::SlaQuery),
    responses(
        (status = 200, body = pipewise_app::leads::SlaReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn lead_sla(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<pipewise_app::lead_desk::SlaQuery>,
) -> Result<Json<pipewise_app::leads::SlaReport>, Problem> {
    let s = state.service.clone();
    s.lead_sla(&caller, &q, "GET /api/v1/leads/sla")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// The first reply to a lead, drafted from its inquiry: the product of
/// interest and pain point found by the product catalogue and a pain
/// lexicon, the company, industry and source, in a template; the details
/// used and those not found are listed. Leads outside the caller's scope
/// answer 404.
#[utoipa::path(get, path = "/api/v1/leads/{id}/draft", tag = "leads", security(("bearer" = [])),
    params(("id" = String, Path, description = "The lead's id")),
    responses(
        (status = 200, body = pipewise_app::leads::Draft),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn lead_draft(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<pipewise_app::leads::Draft>, Problem> {
    let s = state.service.clone();
    s.lead_draft(&caller, &id, "GET /api/v1/leads/{id}/draft")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Who should own a lead and why (a manager, director or admin): every
/// candidate rep's predicted conversion at their current queue, the ones
/// capacity or fairness rules out, the recommendation in words; a lead from
/// an existing account stays with its owner. A manager's candidates are
/// the reps of their team. Nothing changes. Leads outside the caller's
/// scope answer 404.
#[utoipa::path(get, path = "/api/v1/leads/{id}/routing", tag = "leads", security(("bearer" = [])),
    params(("id" = String, Path, description = "The lead's id")),
    responses(
        (status = 200, body = pipewise_app::leads::RoutedLead),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed, or too few past leads to learn routing from", body = Problem, content_type = "application/problem+json"),
    ))]
async fn lead_routing(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<pipewise_app::leads::RoutedLead>, Problem> {
    let s = state.service.clone();
    s.lead_routing(&caller, &id, "GET /api/v1/leads/{id}/routing")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Marks a follow-up task (a cadence step of the lead) done or skipped; the
/// rep's queue moves on to the next step at once. The latest mark of a step
/// holds. Leads outside the caller's scope answer 404.
#[utoipa::path(post, path = "/api/v1/leads/{id}/tasks", tag = "leads",
    security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "The lead's id")),
    request_body = pipewise_app::lead_desk::TaskMarkRequest,
    responses(
        (status = 201, body = pipewise_app::LeadTaskMark),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn mark_lead_task(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<pipewise_app::lead_desk::TaskMarkRequest>,
) -> Result<(StatusCode, Json<pipewise_app::LeadTaskMark>), Problem> {
    let s = state.service.clone();
    s.mark_lead_task(&caller, &id, &body, "POST /api/v1/leads/{id}/tasks")
        .await
        .map(|m| (StatusCode::CREATED, Json(m)))
        .map_err(Problem::from)
}

/// A rep's next-best actions for a day (default: the caller's own; a
/// manager may name a rep in their scope, others answer 404): open deals
/// (the win probability raised through the org's funnel by each channel's
/// assumed shift), due lead cadence steps, renewal checks and cross-sell
/// offers, at most one per target, chosen by value per minute to fill the
/// rep's selling time, ranked by expected value, each with when, channel,
/// message, why and where its uplift comes from. The list is stored for
/// adherence unless `record=false` (a list made again the same day replaces
/// that day's).
#[utoipa::path(get, path = "/api/v1/actions", tag = "actions", security(("bearer" = [])),
    params(pipewise_app::actions::ActionsQuery),
    responses(
        (status = 200, body = pipewise_app::actions::RepActions),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn rep_actions(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<pipewise_app::actions::ActionsQuery>,
) -> Result<Json<pipewise_app::actions::RepActions>, Problem> {
    let s = state.service.clone();
    s.actions(&caller, &q, "GET /api/v1/actions")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Dismisses an action from a rep's list with a reason: `done` hides it for
/// 7 days, `not_useful` 14 (and weighs that kind of action down for the
/// rep), `wrong_timing` 3, `not_mine` 30 (every action on the target),
/// `other` 7 (say why in the note). Reps outside the caller's scope and
/// unknown targets answer 404.
#[utoipa::path(post, path = "/api/v1/actions/dismissals", tag = "actions",
    security(("bearer" = []), ("session" = [])),
    request_body = pipewise_app::actions::DismissRequest,
    responses(
        (status = 201, body = pipewise_app::ActionDismissal),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn dismiss_action(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    ApiJson(body): ApiJson<pipewise_app::actions::DismissRequest>,
) -> Result<(StatusCode, Json<pipewise_app::ActionDismissal>), Problem> {
    let s = state.service.clone();
    s.dismiss_action(&caller, &body, "POST /api/v1/actions/dismissals")
        .await
        .map(|d| (StatusCode::CREATED, Json(d)))
        .map_err(Problem::from)
}

/// Adherence (managers and above): over the stored lists of the reps in the
/// caller's scope whose window has closed by the data's end, the share of
/// recommended actions acted on (an activity by the rep on the target, in
/// the window, by the channel) and the share of the recommended expected
/// value, by rep, team and action.
#[utoipa::path(get, path = "/api/v1/adherence", tag = "actions", security(("bearer" = [])),
    params(pipewise_app::actions::AdherenceQuery),
    responses(
        (status = 200, body = pipewise_app::actions::AdherenceReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn adherence(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<pipewise_app::actions::AdherenceQuery>,
) -> Result<Json<pipewise_app::actions::AdherenceReport>, Problem> {
    let s = state.service.clone();
    s.adherence(&caller, &q, "GET /api/v1/adherence")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// What following the list was worth (managers and above): over the closed
/// deals of the reps in the caller's scope that had recommendations, the
/// change in win probability per recommendation followed from the list
/// (an activity logged from it), adjusted for rep and deal, with its 95%
/// interval and the naive comparison; or why it cannot be judged
/// (`cannot_judge`: too few deals, no activity logged from the list).
#[utoipa::path(get, path = "/api/v1/adherence/effect", tag = "actions", security(("bearer" = [])),
    params(pipewise_app::actions::AdherenceQuery),
    responses(
        (status = 200, body = pipewise_app::actions::AdherenceEffectReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn adherence_effect(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<pipewise_app::actions::AdherenceQuery>,
) -> Result<Json<pipewise_app::actions::AdherenceEffectReport>, Problem> {
    let s = state.service.clone();
    s.adherence_effect(&caller, &q, "GET /api/v1/adherence/effect")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// The live message tests (managers and above): each sequence step whose
/// outbound sends carry two or more templates, each variant's sends,
/// outcomes, value per send (a meeting 1, a positive reply 0.3, a negative
/// reply or unsubscribe -0.5) and probability of being best, the verdict
/// (no winner below the stated sample size), and other policies' value
/// estimated from the logged selection probabilities (IPS and doubly
/// robust). The org's sends, whatever the caller's scope: templates are
/// the org's.
#[utoipa::path(get, path = "/api/v1/messages", tag = "actions", security(("bearer" = [])),
    params(pipewise_app::messages::MessagesQuery),
    responses(
        (status = 200, body = pipewise_app::messages::MessagesReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn message_tests(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<pipewise_app::messages::MessagesQuery>,
) -> Result<Json<pipewise_app::messages::MessagesReport>, Problem> {
    let s = state.service.clone();
    s.messages(&caller, &q, "GET /api/v1/messages")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// The variants of a test's next sends (managers and above), chosen by
/// Thompson sampling over the sends so far, each with the probability it
/// had of being chosen: the sending system logs it with the send as the
/// activity's `selection_probability`. Nothing is stored.
#[utoipa::path(get, path = "/api/v1/messages/choose", tag = "actions", security(("bearer" = [])),
    params(pipewise_app::messages::ChooseQuery),
    responses(
        (status = 200, body = pipewise_app::messages::ChoiceReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn message_choice(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<pipewise_app::messages::ChooseQuery>,
) -> Result<Json<pipewise_app::messages::ChoiceReport>, Problem> {
    let s = state.service.clone();
    s.message_choice(&caller, &q, "GET /api/v1/messages/choose")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// The return on AI-assisted coaching (directors and admins): managers'
/// coaching time priced as the share of their salary it takes (hours a
/// week over a 40-hour week), with and without pipewise, the software's
/// cost, the revenue the win-rate change brings and the payback in months.
/// A win-rate change, deals per rep or deal size left out is measured on
/// the org's data (`measured`: the coaching gaps' worth, with its 80%
/// interval). Coaching beyond the managers' week is refused (400).
#[utoipa::path(get, path = "/api/v1/roi", tag = "coaching", security(("bearer" = [])),
    params(pipewise_app::roi::RoiQuery),
    responses(
        (status = 200, body = pipewise_app::roi::RoiReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn roi(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<pipewise_app::roi::RoiQuery>,
) -> Result<Json<pipewise_app::roi::RoiReport>, Problem> {
    let s = state.service.clone();
    s.roi(&caller, &q, "GET /api/v1/roi")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// The incentive plans the server was given (directors and admins): each
/// `*.toml` of `pipewise serve --plans DIR` by name, with the plan or why
/// it does not read.
#[utoipa::path(get, path = "/api/v1/comp/plans", tag = "comp", security(("bearer" = [])),
    responses(
        (status = 200, body = pipewise_app::comp::PlanList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn comp_plans(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<pipewise_app::comp::PlanList>, Problem> {
    let s = state.service.clone();
    s.comp_plans(&caller, "GET /api/v1/comp/plans")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// A plan of record, and optionally a second plan beside it, applied to the
/// period's actual performance (directors and admins): each rep's payout,
/// the plan's cost, cost of sales, payout against attainment and pay
/// dispersion, with the stated effort-response assumption for the compared
/// plan. Plans are named as `GET /api/v1/comp/plans` lists them; an
/// unknown one is 404.
#[utoipa::path(get, path = "/api/v1/comp/simulate", tag = "comp", security(("bearer" = [])),
    params(pipewise_app::comp::CompQuery),
    responses(
        (status = 200, body = pipewise_app::comp::CompReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn comp_simulate(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<pipewise_app::comp::CompQuery>,
) -> Result<Json<pipewise_app::comp::CompReport>, Problem> {
    let s = state.service.clone();
    s.comp_simulate(&caller, &q, "GET /api/v1/comp/simulate")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// An import upload.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ImportForm {
    /// The files, one `file` part each, named as exported: canonical
    /// `<entity>.csv`/`.jsonl` (or any name with `entity`), CSV files a
    /// mapping names, or transcripts (`.vtt`, `.srt`, each with an optional
    /// `NAME.json` sidecar saying what it belongs to).
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1)]
    file: Vec<Vec<u8>>,
    /// A mapping in TOML (docs/data-format.md), as text or a file part.
    mapping: Option<String>,
    /// The entity of canonical files whose names do not say it (`opportunities`...).
    entity: Option<String>,
    /// `true`: check everything and change nothing (default `false`).
    #[serde(default)]
    dry_run: bool,
}

/// Starts an import (admin): the files are imported in the background, in
/// one transaction (whole or nothing); read the job for its progress and
/// report. Files that cannot be read make a job that has failed, with the
/// reason. The served scores follow the new data at the next reload check.
#[utoipa::path(post, path = "/api/v1/imports", tag = "admin",
    security(("bearer" = []), ("session" = [])),
    request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, body = ImportJob),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
    ))]
async fn start_import(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    form: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<ImportJob>), Problem> {
    let mut form = form.map_err(|e| {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("expected multipart/form-data with `file` parts: {e}"),
        )
    })?;
    let bad =
        |field: &str, expected: &str, detail: String| Problem::bad_request(field, expected, detail);
    let mut req = ImportRequest {
        files: Vec::new(),
        mapping: None,
        entity: None,
        dry_run: false,
    };
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                let status = e.status();
                return Err(Problem::new(
                    status,
                    "invalid-body",
                    format!("the form cannot be read: {e}"),
                ));
            }
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(|e| {
            Problem::new(
                e.status(),
                "invalid-body",
                format!("part {name:?} cannot be read: {e}"),
            )
        })?;
        let text = || {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| Box::new(bad(&name, "UTF-8 text", format!("{name}: not UTF-8 text"))))
        };
        match name.as_str() {
            "file" => match file_name {
                Some(n) => req.files.push(Upload {
                    name: n,
                    bytes: bytes.to_vec(),
                }),
                None => {
                    return Err(bad(
                        "file",
                        "a file part with a file name (Content-Disposition: form-data; name=\"file\"; filename=\"opportunities.csv\")",
                        "a `file` part has no file name".into(),
                    ));
                }
            },
            "mapping" => req.mapping = Some(text().map_err(|e| *e)?),
            "entity" => req.entity = Some(text().map_err(|e| *e)?),
            "dry_run" => {
                req.dry_run = match text().map_err(|e| *e)?.trim() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(bad(
                            "dry_run",
                            "true or false",
                            format!("dry_run: expected true or false, got {other:?}"),
                        ));
                    }
                }
            }
            other => {
                return Err(bad(
                    other,
                    "one of the parts file, mapping, entity, dry_run",
                    format!("unknown part {other:?}: expected file, mapping, entity or dry_run"),
                ));
            }
        }
    }
    if req.files.is_empty() {
        return Err(bad(
            "file",
            "at least one `file` part",
            "no file uploaded".into(),
        ));
    }
    let s = state.service.clone();
    s.import(&caller, req, "POST /api/v1/imports")
        .await
        .map(|j| (StatusCode::ACCEPTED, Json(j)))
        .map_err(Problem::from)
}

/// The import jobs since the server started, newest first (admin).
#[utoipa::path(get, path = "/api/v1/imports", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, body = [ImportJob]),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_imports(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<Vec<ImportJob>>, Problem> {
    let s = state.service.clone();
    s.import_jobs(&caller, "GET /api/v1/imports")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// One import job: status, the file being read, progress and, when done,
/// the import report with every error's file, line and column (admin).
#[utoipa::path(get, path = "/api/v1/imports/{job_id}", tag = "admin", security(("bearer" = [])),
    params(("job_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, body = ImportJob),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_import(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
    Path(job_id): Path<String>,
) -> Result<Json<ImportJob>, Problem> {
    let s = state.service.clone();
    s.import_job(&caller, &job_id, "GET /api/v1/imports/{job_id}")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// The report's format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    /// `html` (default), `markdown` or `text`.
    format: Option<pipewise_app::insight::ReportFormat>,
}

fn text_response(media: &'static str, body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    r
}

/// The coaching report of every rep in the caller's scope (what `pipewise
/// coach --format html|md|text` prints): each rep's metrics against peers
/// and top performers, gaps ranked, plans, quotes and deal alerts.
#[utoipa::path(get, path = "/api/v1/coaching/report", tag = "coaching", security(("bearer" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "The report", content(
            (String = "text/html"),
            (String = "text/markdown"),
            (String = "text/plain"),
        )),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn team_report(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, Problem> {
    let s = state.service.clone();
    let format = q
        .format
        .unwrap_or(pipewise_app::insight::ReportFormat::Html);
    let (media, body) = s
        .coaching_report(&caller, None, format, "GET /api/v1/coaching/report")
        .await
        .map_err(Problem::from)?;
    Ok(text_response(media, body))
}

/// One rep's coaching report (404 outside the caller's scope).
#[utoipa::path(get, path = "/api/v1/coaching/{rep_id}/report", tag = "coaching", security(("bearer" = [])),
    params(("rep_id" = String, Path, description = "The rep's user id"), ReportQuery),
    responses(
        (status = 200, description = "The report", content(
            (String = "text/html"),
            (String = "text/markdown"),
            (String = "text/plain"),
        )),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn rep_report(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(rep_id): Path<String>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, Problem> {
    let s = state.service.clone();
    let format = q
        .format
        .unwrap_or(pipewise_app::insight::ReportFormat::Html);
    let (media, body) = s
        .coaching_report(
            &caller,
            Some(&rep_id),
            format,
            "GET /api/v1/coaching/{rep_id}/report",
        )
        .await
        .map_err(Problem::from)?;
    Ok(text_response(media, body))
}

/// Account segments by how accounts buy (principal components of each
/// industry's buying profile and company size, k-means with k by
/// silhouette): every segment with what sets it apart, and the accounts of
/// the caller's scope with their segment.
#[utoipa::path(get, path = "/api/v1/territories/segments", tag = "territories", security(("bearer" = [])),
    responses(
        (status = 200, body = pipewise_app::territories::SegmentsView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After), or the data cannot support it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn territory_segments(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<pipewise_app::territories::SegmentsView>, Problem> {
    let s = state.service.clone();
    s.territory_segments(&caller, "GET /api/v1/territories/segments")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// The proposed account plan against the current one (managers and above):
/// accounts with the rep most likely to win them within a ±10% balance
/// band, in their region, at most 20% moved; the org's expected bookings
/// under both with 80% intervals, and the assignments and balances of the
/// caller's reps, each move with its reason.
#[utoipa::path(get, path = "/api/v1/territories/plan", tag = "territories", security(("bearer" = [])),
    responses(
        (status = 200, body = pipewise_app::territories::PlanReport),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After), or the data cannot support it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn territory_plan(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<pipewise_app::territories::PlanReport>, Problem> {
    let s = state.service.clone();
    s.territory_plan(&caller, "GET /api/v1/territories/plan")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Accounts nobody has worked yet in the caller's scope, by likeness to the
/// accounts that became customers and expected value (managers and above),
/// with the ranking's AUC on the last year against company size alone.
#[utoipa::path(get, path = "/api/v1/territories/whitespace", tag = "territories", security(("bearer" = [])),
    responses(
        (status = 200, body = pipewise_app::territories::WhitespaceReport),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After), or the data cannot support it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn territory_whitespace(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<pipewise_app::territories::WhitespaceReport>, Problem> {
    let s = state.service.clone();
    s.territory_whitespace(&caller, "GET /api/v1/territories/whitespace")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Each customer's most likely next product in the caller's scope, with
/// why and the naive pick beside it; the pick rates' hit rate on the last
/// 180 days of purchases.
#[utoipa::path(get, path = "/api/v1/accounts/next-product", tag = "territories", security(("bearer" = [])),
    responses(
        (status = 200, body = pipewise_app::territories::NextProductsView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After), or the data cannot support it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn next_products(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<pipewise_app::territories::NextProductsView>, Problem> {
    let s = state.service.clone();
    s.next_products(&caller, "GET /api/v1/accounts/next-product")
        .await
        .map(Json)
        .map_err(Problem::from)
}

/// Churn risk of the open renewals in the caller's scope, riskiest first,
/// each with its factors; the model's AUC on later renewals against the
/// usage trend alone.
#[utoipa::path(get, path = "/api/v1/accounts/churn", tag = "territories", security(("bearer" = [])),
    responses(
        (status = 200, body = pipewise_app::territories::ChurnReport),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Still being computed (Retry-After), or the data cannot support it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn churn_risk(
    State(state): State<AppState>,
    _q: NoQuery,
    Authed(caller): Authed,
) -> Result<Json<pipewise_app::territories::ChurnReport>, Problem> {
    let s = state.service.clone();
    s.churn_risk(&caller, "GET /api/v1/accounts/churn")
        .await
        .map(Json)
        .map_err(Problem::from)
}
