//! The dashboard's pages: each parses its parameters, calls the use cases
//! with the signed-in user's scope, and renders.

use std::collections::HashMap;

use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use pipewise_app::AppError;
use pipewise_app::book::DealQuery;
use pipewise_app::calls::CallQuery;
use pipewise_app::coaching::Decision;
use pipewise_app::forecasting::ForecastQuery;
use pipewise_app::imports::{ImportRequest, Upload};
use pipewise_app::insight::InspectionQuery;
use pipewise_app::leads::LeadQuery;
use pipewise_app::scope::Role;
use serde::{Deserialize, Serialize};

use super::{Viewer, error_page, render, render_status, safe_next};
use crate::AppState;
use crate::extract::{ClientAddr, SESSION_COOKIE};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/deals", get(deals))
        .route("/deals/{id}", get(deal))
        .route("/deals/{id}/override", post(override_forecast))
        .route("/forecast", get(forecast))
        .route("/coaching", get(coaching))
        .route("/coaching/{rep_id}", get(rep_coaching))
        .route("/coaching/{rep_id}/decisions", post(decide))
        .route("/calls", get(calls))
        .route("/calls/{id}", get(call))
        .route("/reps", get(reps))
        .route("/leads", get(leads))
        .route("/leads/{id}", get(lead))
        .route("/leads/{id}/tasks", post(mark_task))
        .route("/territories", get(territories))
        .route("/actions", get(actions_page))
        .route("/pay", get(pay_page))
        .route("/actions/dismiss", post(dismiss_action))
        .route("/admin", get(|| async { Redirect::to("/admin/imports") }))
        .route("/admin/imports", get(imports).post(start_import))
        .route("/admin/imports/{id}", get(import_job))
        .route("/admin/models", get(models))
        .route("/admin/models/{kind}/{version}", get(model))
        .route(
            "/admin/monitor",
            get(|| async { Redirect::to("/admin/monitor/win") }),
        )
        .route("/admin/monitor/{kind}", get(monitor_page))
        .route(
            "/admin/fairness",
            get(|| async { Redirect::to("/admin/fairness/win") }),
        )
        .route("/admin/fairness/{kind}", get(fairness_page))
        .route("/me", get(my_data_page))
        .route("/admin/tokens", get(tokens).post(create_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
        .route("/admin/audit", get(audit))
        .route("/static/{file}", get(asset))
}

/// Query parameters as a map; empty values (a form's "any") are left out.
fn params(q: Option<String>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.into_owned(), v.trim().to_string()))
        .collect()
}

/// The offsets of the previous and next pages of a list, where there are.
fn pager(
    offset: usize,
    limit: usize,
    shown: usize,
    total: usize,
) -> (Option<usize>, Option<usize>) {
    let next = offset + shown;
    (
        (offset > 0).then(|| offset.saturating_sub(limit)),
        (next < total).then_some(next),
    )
}

fn number<T: std::str::FromStr>(p: &HashMap<String, String>, key: &str) -> Option<T> {
    p.get(key).and_then(|v| v.parse().ok())
}

/// A section of a page that may be unavailable on its own (an analysis
/// still computing) without failing the page.
#[derive(Serialize)]
struct Part<T> {
    ok: Option<T>,
    error: Option<String>,
    computing: bool,
}

fn part<T>(r: Result<T, AppError>) -> Part<T> {
    match r {
        Ok(v) => Part {
            ok: Some(v),
            error: None,
            computing: false,
        },
        Err(e) => Part {
            ok: None,
            computing: matches!(e, AppError::Computing(_)),
            error: Some(match e {
                AppError::Internal(err) => {
                    tracing::error!(error = %format!("{err:#}"), "a part of a page failed");
                    "this part cannot be shown: the reason is in the server's log".to_string()
                }
                other => other.to_string(),
            }),
        },
    }
}

fn csrf_ok(viewer: &Viewer, sent: &str) -> bool {
    pipewise_app::auth::same_secret(sent, &viewer.csrf)
}

/// A form whose CSRF token is not the session's (a form from before the
/// last sign-in, or from another site).
fn csrf_refused(state: &AppState, viewer: &Viewer, section: &str) -> Response {
    #[derive(Serialize)]
    struct Expired {
        status: u16,
        heading: &'static str,
        message: &'static str,
        refresh: bool,
    }
    render_status(
        state,
        viewer,
        StatusCode::FORBIDDEN,
        section,
        "error.html",
        "The form expired",
        Expired {
            status: 403,
            heading: "The form expired",
            message: "This form was opened before your last sign-in (or on another site): go back, reload the page and try again. Nothing was changed.",
            refresh: false,
        },
    )
}

/// Whether a sign-in form was posted from this site: a browser's `Origin`
/// (or `Sec-Fetch-Site`) must not name another one, so no other site can
/// sign a visitor into an account of its choosing.
fn same_site(headers: &axum::http::HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|x| x.1 == host),
        (Some(_), None) => false,
    }
}

// ---------------------------------------------------------------- sign-in

#[derive(Serialize)]
struct SignInPage {
    next: String,
    user_id: String,
    error: Option<String>,
}

fn sign_in_view(status: StatusCode, page: SignInPage) -> Response {
    let ctx = minijinja::context! {
        title => "Sign in",
        page => minijinja::Value::from_serialize(&page),
        frame => minijinja::Value::from(()),
    };
    super::html(status, "sign_in.html", ctx)
}

async fn sign_in_page(RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    sign_in_view(
        StatusCode::OK,
        SignInPage {
            next: safe_next(p.get("next").map(String::as_str)),
            user_id: String::new(),
            error: None,
        },
    )
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: axum::http::HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    if !same_site(&headers) {
        return sign_in_view(
            StatusCode::FORBIDDEN,
            SignInPage {
                next,
                user_id: String::new(),
                error: Some("Sign in from this site's own sign-in page.".into()),
            },
        );
    }
    let s = state.service.clone();
    let (user, password) = (f.user_id.trim().to_string(), f.password.clone());
    let result = tokio::task::spawn_blocking(move || s.sign_in(&user, &password, &client)).await;
    match result {
        Ok(Ok(started)) => {
            let mut r = Redirect::to(&next).into_response();
            crate::extract::set_session_cookie(&mut r, &started.session_id);
            r
        }
        Ok(Err(e)) => {
            let status = match e {
                AppError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let error = match e {
                AppError::TooMany(s) => format!("Too many failed sign-ins: try again in {s} s."),
                _ => "That user id and password do not match.".to_string(),
            };
            sign_in_view(
                status,
                SignInPage {
                    next,
                    user_id: f.user_id,
                    error: Some(error),
                },
            )
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed").into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let sid = crate::extract::cookie(&parts, SESSION_COOKIE);
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let form: CsrfForm = serde_urlencoded_csrf(&bytes);
    if let Some(sid) = sid {
        let s = state.service.clone();
        let ended = tokio::task::spawn_blocking(move || s.sign_out(&sid, &form.csrf)).await;
        // A wrong CSRF token (another site's form) signs no one out.
        if let Ok(Err(AppError::Auth(pipewise_app::auth::AuthError::Csrf))) = ended {
            return Redirect::to("/").into_response();
        }
    }
    let mut r = Redirect::to("/sign-in").into_response();
    crate::extract::clear_session_cookie(&mut r);
    r
}

fn serde_urlencoded_csrf(bytes: &[u8]) -> CsrfForm {
    CsrfForm {
        csrf: form_urlencoded::parse(bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default(),
    }
}

// ---------------------------------------------------------------- home

#[derive(Serialize)]
struct Home {
    deals: Part<pipewise_app::book::DealPage>,
    forecast: Part<pipewise_app::forecasting::ForecastView>,
    inspection: Part<pipewise_app::insight::InspectionPage>,
    coaching: Part<pipewise_app::insight::CoachingOverview>,
    own: Part<pipewise_app::insight::RepCoaching>,
    is_rep: bool,
}

async fn home(State(state): State<AppState>, viewer: Viewer) -> Response {
    let s = &state.service;
    let c = &viewer.caller;
    let deals = s
        .opportunities(
            c,
            &DealQuery {
                limit: Some(8),
                ..Default::default()
            },
            "GET /",
        )
        .await;
    let forecast = s
        .forecast_totals(
            c,
            ForecastQuery {
                by: Some("company".into()),
                top: Some(0),
                ..Default::default()
            },
            "GET /",
        )
        .await;
    let inspection = s
        .inspection(
            c,
            &InspectionQuery {
                limit: Some(5),
                ..Default::default()
            },
            "GET /",
        )
        .await;
    let is_rep = c.role == Role::Rep;
    let (coaching, own) = if is_rep {
        (
            Err(AppError::Absent("not for reps".into())),
            s.rep_coaching(c, &c.user_id, "GET /").await,
        )
    } else {
        (
            s.coaching(c, "GET /").await.map(|mut o| {
                o.reps.sort_by(|a, b| {
                    b.worth_per_quarter
                        .unwrap_or(0.0)
                        .total_cmp(&a.worth_per_quarter.unwrap_or(0.0))
                });
                o.reps.truncate(6);
                o
            }),
            Err(AppError::Absent("not a rep".into())),
        )
    };
    render(
        &state,
        &viewer,
        "home",
        "home.html",
        super::scope_title(c.role),
        Home {
            deals: part(deals),
            forecast: part(forecast),
            inspection: part(inspection),
            coaching: part(coaching),
            own: part(own),
            is_rep,
        },
    )
}

// ---------------------------------------------------------------- pipeline

/// A close period the risk board filters by, as shown in its menu.
#[derive(Serialize)]
struct PeriodChoice {
    value: String,
    label: String,
}

#[derive(Serialize)]
struct DealsPage {
    list: pipewise_app::book::DealPage,
    /// Deals managers took out of the forecast.
    excluded: Vec<String>,
    /// The filters as given, to keep the form and the links.
    filters: HashMap<String, String>,
    /// The query string without `sort` and `offset` (for the column links).
    base_query: String,
    sort: String,
    periods: Vec<PeriodChoice>,
    prev_offset: Option<usize>,
    next_offset: Option<usize>,
}

async fn deals(State(state): State<AppState>, viewer: Viewer, RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    let as_of = state.service.as_of().unwrap_or_default();
    let periods = pipewise_app::book::close_periods(&as_of);
    let (mut close_from, mut close_to) = (p.get("close_from").cloned(), p.get("close_to").cloned());
    if let Some(chosen) = p.get("period") {
        match periods.iter().find(|x| &x.0 == chosen) {
            Some(x) => {
                close_from = x.2.clone();
                close_to = x.3.clone();
            }
            None => {
                let choices: Vec<&str> = periods.iter().map(|x| x.0.as_str()).collect();
                let expected = format!("one of {}", choices.join(", "));
                let e = pipewise_app::InputError::new("period", &expected, chosen);
                return error_page(&state, &viewer, "deals", e.into());
            }
        }
    }
    for key in ["min_win_pct", "max_win_pct"] {
        if let Some(v) = p.get(key)
            && !v.parse::<f64>().is_ok_and(|x| (0.0..=100.0).contains(&x))
        {
            let e = pipewise_app::InputError::new(key, "a percentage from 0 to 100", v);
            return error_page(&state, &viewer, "deals", e.into());
        }
    }
    let query = DealQuery {
        owner: p.get("owner").cloned(),
        stage: p.get("stage").cloned(),
        close_from,
        close_to,
        evidence: p.get("evidence").cloned(),
        min_win: number::<f64>(&p, "min_win_pct").map(|x| x / 100.0),
        max_win: number::<f64>(&p, "max_win_pct").map(|x| x / 100.0),
        sort: p.get("sort").cloned(),
        limit: Some(50),
        offset: number(&p, "offset"),
    };
    let list = match state
        .service
        .opportunities(&viewer.caller, &query, "GET /deals")
        .await
    {
        Ok(l) => l,
        Err(e) => return error_page(&state, &viewer, "deals", e),
    };
    let base_query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            p.iter()
                .filter(|(k, _)| k.as_str() != "sort" && k.as_str() != "offset"),
        )
        .finish();
    let (prev_offset, next_offset) = pager(list.offset, list.limit, list.items.len(), list.total);
    render(
        &state,
        &viewer,
        "deals",
        "deals.html",
        "Pipeline risk",
        DealsPage {
            excluded: state
                .service
                .excluded_from_forecast(&viewer.caller)
                .map(|e| e.into_iter().collect())
                .unwrap_or_default(),
            prev_offset,
            next_offset,
            sort: query
                .sort
                .clone()
                .unwrap_or_else(|| "-amount_at_risk".into()),
            list,
            filters: p,
            base_query,
            periods: periods
                .into_iter()
                .map(|(value, label, _, _)| PeriodChoice { value, label })
                .collect(),
        },
    )
}

/// One event of a deal's timeline.
#[derive(Serialize)]
struct Event {
    at: String,
    kind: String,
    text: String,
    call_id: Option<String>,
}

#[derive(Serialize)]
struct DealPageView {
    /// The latest forecast override, and whether the viewer may make one.
    forecast_override: Option<pipewise_app::ForecastOverride>,
    can_override: bool,
    saved: bool,
    error: Option<String>,
    deal: pipewise_app::book::DealDetail,
    evidence: Option<pipewise_app::stage::InspectRow>,
    timeline: Vec<Event>,
    raising: Vec<pipewise_app::book::FactorView>,
    lowering: Vec<pipewise_app::book::FactorView>,
}

async fn deal(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let saved = params(q).contains_key("saved");
    deal_page(&state, &viewer, &id, saved, None).await
}

async fn deal_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    saved: bool,
    error: Option<String>,
) -> Response {
    let (state, id) = (state.clone(), id.to_string());
    let d = match state
        .service
        .opportunity(&viewer.caller, &id, "GET /deals/{id}")
        .await
    {
        Ok(d) => d,
        Err(e) => return error_page(&state, viewer, "deals", e),
    };
    let evidence = state.service.deal_evidence(&viewer.caller, &id);
    let directory = state.service.directory();
    // Names of people in the viewer's scope; others as a role.
    let name_of = |id: &str| match directory.caller(id) {
        Some(c) if viewer.caller.scope.allows(Some(id)) => c.name,
        Some(c) => format!("a {}", c.role.name()),
        None => id.to_string(),
    };
    let forecast_override = state
        .service
        .forecast_override_of(&viewer.caller, &id)
        .unwrap_or(None)
        .map(|mut o| {
            o.decided_by = o.decided_by.as_deref().map(name_of);
            o
        });
    let mut timeline: Vec<Event> = d
        .history
        .iter()
        .map(|c| Event {
            at: c.at.clone(),
            kind: c.field.replace('_', " "),
            text: match c.field.as_str() {
                "amount" => format!(
                    "amount set to {}",
                    c.value
                        .as_deref()
                        .and_then(|v| v.parse::<f64>().ok())
                        .map(super::format::thousands)
                        .unwrap_or_else(|| c.value.clone().unwrap_or_default())
                ),
                "owner" => format!(
                    "owner set to {}",
                    c.value.as_deref().map_or_else(|| "(empty)".into(), name_of)
                ),
                f => format!(
                    "{} set to {}",
                    f.replace('_', " "),
                    c.value.as_deref().unwrap_or("(empty)")
                ),
            },
            call_id: None,
        })
        .collect();
    for a in &d.activities {
        let mut text = a.kind.clone();
        if let Some(dir) = &a.direction {
            text = format!("{dir} {text}");
        }
        if let Some(o) = &a.outcome {
            text = format!("{text}: {}", o.replace('_', " "));
        }
        timeline.push(Event {
            at: a.at.clone(),
            kind: a.kind.clone(),
            text,
            call_id: a.call_id.clone(),
        });
    }
    if let Some(o) = &forecast_override {
        timeline.push(Event {
            at: o
                .decided_at
                .get(..16)
                .unwrap_or(&o.decided_at)
                .replace('T', " "),
            kind: "override".into(),
            text: format!(
                "{} the forecast by {}: {}",
                if o.excluded {
                    "taken out of"
                } else {
                    "put back into"
                },
                o.decided_by.as_deref().unwrap_or("someone"),
                o.reason
            ),
            call_id: None,
        });
    }
    // Newest first; on one day, changes after activities.
    timeline.sort_by(|a, b| b.at.cmp(&a.at));
    let raising = d
        .win_factors
        .iter()
        .filter(|f| f.contribution > 0.0)
        .take(5)
        .cloned()
        .collect();
    let lowering = d
        .win_factors
        .iter()
        .filter(|f| f.contribution < 0.0)
        .take(5)
        .cloned()
        .collect();
    let title = d.deal.name.clone().unwrap_or_else(|| d.deal.id.clone());
    render_status(
        &state,
        viewer,
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        "deals",
        "deal.html",
        &title,
        DealPageView {
            forecast_override,
            can_override: viewer.caller.role != Role::Rep || viewer.caller.is_admin(),
            saved,
            error,
            deal: d,
            evidence,
            timeline,
            raising,
            lowering,
        },
    )
}

#[derive(Deserialize)]
struct OverrideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
}

async fn override_forecast(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<OverrideForm>,
) -> Response {
    if !csrf_ok(&viewer, &f.csrf) {
        return csrf_refused(&state, &viewer, "deals");
    }
    if f.reason.trim().is_empty() {
        let why = "Say why the deal comes out of (or goes back into) the forecast.";
        return deal_page(&state, &viewer, &id, false, Some(why.into())).await;
    }
    match state
        .service
        .override_forecast(
            &viewer.caller,
            &id,
            f.action != "include",
            &f.reason,
            "POST /deals/{id}/override",
        )
        .await
    {
        Ok(_) => Redirect::to(&format!("/deals/{id}?saved=1#override")).into_response(),
        Err(AppError::Input(i)) => {
            let why = format!("{}: expected {}.", i.field, i.expected);
            deal_page(&state, &viewer, &id, false, Some(why)).await
        }
        Err(e) => error_page(&state, &viewer, "deals", e),
    }
}

// ---------------------------------------------------------------- forecast

#[derive(Serialize)]
struct FanPoint {
    period: String,
    p10: f64,
    p50: f64,
    p90: f64,
    commit: f64,
    stage_weighted: f64,
    run_rate: f64,
    won_to_date: f64,
}

#[derive(Serialize)]
struct ForecastPage {
    view: pipewise_app::forecasting::ForecastView,
    fan: Vec<FanPoint>,
    choices: Vec<String>,
    by: String,
}

async fn forecast(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(q): RawQuery,
) -> Response {
    let p = params(q);
    let s = &state.service;
    let by = p.get("by").cloned().unwrap_or_else(|| {
        if viewer.caller.role == Role::Rep {
            "rep"
        } else {
            "team"
        }
        .into()
    });
    let view = match s
        .forecast(
            &viewer.caller,
            ForecastQuery {
                period: p.get("period").cloned(),
                by: Some(by.clone()),
                top: Some(10),
            },
            "GET /forecast",
        )
        .await
    {
        Ok(v) => v,
        Err(e) => return error_page(&state, &viewer, "forecast", e),
    };
    let (quarters, months) = s.forecast_periods().unwrap_or_default();
    let mut fan = Vec::new();
    for m in &months {
        if let Ok(f) = s
            .forecast_totals(
                &viewer.caller,
                ForecastQuery {
                    period: Some(m.clone()),
                    by: Some("company".into()),
                    top: Some(0),
                },
                "GET /forecast",
            )
            .await
        {
            let t = &f.total;
            fan.push(FanPoint {
                period: m.clone(),
                p10: t.p10,
                p50: t.p50,
                p90: t.p90,
                commit: t.commit,
                stage_weighted: t.stage_weighted,
                run_rate: t.run_rate,
                won_to_date: t.won_to_date,
            });
        }
    }
    let mut choices = quarters;
    choices.extend(months.iter().cloned());
    let title = format!("Forecast {}", view.period);
    render(
        &state,
        &viewer,
        "forecast",
        "forecast.html",
        &title,
        ForecastPage {
            view,
            fan,
            choices,
            by,
        },
    )
}

// ---------------------------------------------------------------- coaching

async fn coaching(State(state): State<AppState>, viewer: Viewer) -> Response {
    if viewer.caller.role == Role::Rep {
        return Redirect::to(&format!("/coaching/{}", viewer.caller.user_id)).into_response();
    }
    match state
        .service
        .coaching(&viewer.caller, "GET /coaching")
        .await
    {
        Ok(v) => render(&state, &viewer, "coaching", "coaching.html", "Coaching", v),
        Err(e) => error_page(&state, &viewer, "coaching", e),
    }
}

#[derive(Serialize)]
struct RepCoachingPage {
    rep: pipewise_app::insight::RepCoaching,
    /// Whether the viewer may accept, edit or dismiss (a manager above the rep).
    can_decide: bool,
    saved: Option<String>,
    error: Option<String>,
    calls: Part<pipewise_app::calls::CallPage>,
}

async fn rep_coaching(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(rep_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    rep_coaching_page(&state, &viewer, &rep_id, params(q), None).await
}

async fn rep_coaching_page(
    state: &AppState,
    viewer: &Viewer,
    rep_id: &str,
    p: HashMap<String, String>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let rep = match state
        .service
        .rep_coaching(&viewer.caller, rep_id, "GET /coaching/{rep_id}")
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(state, viewer, "coaching", e),
    };
    let calls = state
        .service
        .calls(
            &viewer.caller,
            &CallQuery {
                rep: Some(rep_id.to_string()),
                limit: Some(5),
                ..Default::default()
            },
            "GET /coaching/{rep_id}",
        )
        .await;
    let title = format!("Coaching: {}", rep.name);
    let (status, error) = match error {
        Some((s, e)) => (s, Some(e)),
        None => (StatusCode::OK, None),
    };
    render_status(
        state,
        viewer,
        status,
        "coaching",
        "rep_coaching.html",
        &title,
        RepCoachingPage {
            can_decide: viewer.caller.role != Role::Rep && viewer.caller.user_id != rep.rep_id,
            rep,
            saved: p.get("saved").cloned(),
            error,
            calls: part(calls),
        },
    )
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    recommendation: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    text: String,
}

async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(rep_id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Response {
    if !csrf_ok(&viewer, &f.csrf) {
        return csrf_refused(&state, &viewer, "coaching");
    }
    let reason = f.reason.trim().to_string();
    let missing = |what: &str| {
        Some((
            StatusCode::BAD_REQUEST,
            format!("To {} a recommendation, say why.", what),
        ))
    };
    let decision = match f.action.as_str() {
        "accept" => Ok(Decision::Accept {
            recommendation: f.recommendation.clone(),
            reason: (!reason.is_empty()).then_some(reason),
        }),
        "edit" if reason.is_empty() => Err(missing("edit")),
        "edit" if f.text.trim().is_empty() => Err(Some((
            StatusCode::BAD_REQUEST,
            "To edit a recommendation, write the edited text.".to_string(),
        ))),
        "edit" => Ok(Decision::Edit {
            recommendation: f.recommendation.clone(),
            reason,
            text: f.text.trim().to_string(),
        }),
        "dismiss" if reason.is_empty() => Err(missing("dismiss")),
        "dismiss" => Ok(Decision::Dismiss {
            recommendation: f.recommendation.clone(),
            reason,
        }),
        _ => Err(Some((
            StatusCode::BAD_REQUEST,
            "Choose accept, edit or dismiss.".to_string(),
        ))),
    };
    let decision = match decision {
        Ok(d) => d,
        Err(e) => return rep_coaching_page(&state, &viewer, &rep_id, HashMap::new(), e).await,
    };
    match state
        .service
        .decide(
            &viewer.caller,
            &rep_id,
            &decision,
            "POST /coaching/{rep_id}/decisions",
        )
        .await
    {
        Ok(rec) => {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("saved", &rec.recommendation)
                .finish();
            Redirect::to(&format!("/coaching/{rep_id}?{q}#decided")).into_response()
        }
        Err(AppError::Input(i)) => {
            rep_coaching_page(
                &state,
                &viewer,
                &rep_id,
                HashMap::new(),
                Some((
                    StatusCode::BAD_REQUEST,
                    format!("{}: expected {}.", i.field, i.expected),
                )),
            )
            .await
        }
        Err(e) => error_page(&state, &viewer, "coaching", e),
    }
}

// ---------------------------------------------------------------- calls

#[derive(Serialize)]
struct CallsPage {
    list: pipewise_app::calls::CallPage,
    rep: Option<String>,
    rep_name: Option<String>,
    /// The filters as a query string (for the pager).
    base_query: String,
    prev_offset: Option<usize>,
    next_offset: Option<usize>,
}

async fn calls(State(state): State<AppState>, viewer: Viewer, RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    let query = CallQuery {
        rep: p.get("rep").cloned(),
        opportunity: p.get("opportunity").cloned(),
        limit: Some(50),
        offset: number(&p, "offset"),
    };
    match state
        .service
        .calls(&viewer.caller, &query, "GET /calls")
        .await
    {
        Ok(list) => {
            let (prev_offset, next_offset) =
                pager(list.offset, list.limit, list.items.len(), list.total);
            render(
                &state,
                &viewer,
                "calls",
                "calls.html",
                "Calls",
                CallsPage {
                    prev_offset,
                    next_offset,
                    rep_name: query.rep.as_ref().map(|r| {
                        list.items
                            .iter()
                            .find(|c| c.rep_id.as_deref() == Some(r))
                            .and_then(|c| c.rep.clone())
                            .unwrap_or_else(|| r.clone())
                    }),
                    base_query: form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(
                            [("rep", &query.rep), ("opportunity", &query.opportunity)]
                                .iter()
                                .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.as_str()))),
                        )
                        .finish(),
                    list,
                    rep: query.rep,
                },
            )
        }
        Err(e) => error_page(&state, &viewer, "calls", e),
    }
}

async fn call(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    match state
        .service
        .call(&viewer.caller, &id, "GET /calls/{id}")
        .await
    {
        Ok(c) => {
            let title = c.call.title.clone().unwrap_or_else(|| format!("Call {id}"));
            render(&state, &viewer, "calls", "call.html", &title, c)
        }
        Err(e) => error_page(&state, &viewer, "calls", e),
    }
}

// ---------------------------------------------------------------- reps, leads

async fn reps(State(state): State<AppState>, viewer: Viewer) -> Response {
    match state.service.rep_bias(&viewer.caller, "GET /reps").await {
        Ok(v) => render(&state, &viewer, "reps", "reps.html", "Stage bias", v),
        Err(e) => error_page(&state, &viewer, "reps", e),
    }
}

/// Epoch seconds as `YYYY-MM-DD HH:MM` (UTC).
fn at(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A follow-up task as the page shows it.
#[derive(Serialize)]
struct TaskView {
    lead_id: String,
    company: Option<String>,
    step: usize,
    steps: usize,
    channel: String,
    template: Option<String>,
    /// When due (or, for a marked task, when marked), `YYYY-MM-DD HH:MM`.
    due: String,
    status: String,
}

#[derive(Serialize)]
struct QueueView {
    rep_id: String,
    rep_name: String,
    date: String,
    cadence: String,
    tasks: Vec<TaskView>,
    open: usize,
}

#[derive(Serialize)]
struct WaitingView {
    lead_id: String,
    owner: Option<String>,
    arrived: String,
    waiting_minutes: f64,
    state: String,
}

#[derive(Serialize)]
struct SlaView {
    sla_minutes: f64,
    leads: usize,
    within_sla: f64,
    never_answered: f64,
    median_minutes: Option<f64>,
    breached: Vec<WaitingView>,
    bands: Vec<pipewise_app::leads::ResponseBand>,
}

#[derive(Serialize)]
struct LeadsPage {
    list: pipewise_app::leads::LeadPage,
    prev_offset: Option<usize>,
    next_offset: Option<usize>,
    queue: Part<QueueView>,
    sla: Part<SlaView>,
    /// The reps whose queue the viewer may open: (id, name).
    reps: Vec<(String, String)>,
    rep: Option<String>,
    marked: Option<String>,
}

async fn leads(State(state): State<AppState>, viewer: Viewer, RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    let query = LeadQuery {
        limit: Some(50),
        offset: number(&p, "offset"),
        ..Default::default()
    };
    let directory = state.service.directory();
    let reps: Vec<(String, String)> = directory
        .all()
        .into_iter()
        .filter(|u| directory.role(&u.id) == Some(Role::Rep))
        .filter(|u| viewer.caller.scope.allows(Some(&u.id)))
        .map(|u| (u.id.clone(), u.name.clone()))
        .collect();
    // A rep's own queue; a manager's first rep's unless they pick one.
    let rep = p
        .get("rep")
        .cloned()
        .or_else(|| (viewer.caller.role == Role::Rep).then(|| viewer.caller.user_id.clone()))
        .or_else(|| reps.first().map(|r| r.0.clone()));
    let names: HashMap<String, String> = directory
        .all()
        .into_iter()
        .map(|u| (u.id.clone(), u.name.clone()))
        .collect();
    let queue = match &rep {
        Some(r) => part(
            state
                .service
                .lead_queue(
                    &viewer.caller,
                    &pipewise_app::lead_desk::QueueQuery {
                        rep: Some(r.clone()),
                        ..Default::default()
                    },
                    "GET /leads",
                )
                .await
                .map(|q| QueueView {
                    open: q
                        .tasks
                        .iter()
                        .filter(|t| matches!(t.status.as_str(), "late" | "today"))
                        .count(),
                    rep_id: q.rep_id,
                    rep_name: q.rep_name,
                    date: q.date,
                    cadence: q.cadence,
                    tasks: q
                        .tasks
                        .into_iter()
                        .map(|t| TaskView {
                            lead_id: t.lead_id,
                            company: t.company,
                            step: t.step,
                            steps: t.steps,
                            channel: t.channel,
                            template: t.template,
                            due: at(t.due_at),
                            status: t.status,
                        })
                        .collect(),
                }),
        ),
        None => part(Err(AppError::Absent("no rep in your scope".into()))),
    };
    let sla = part(
        state
            .service
            .lead_sla(
                &viewer.caller,
                &pipewise_app::lead_desk::SlaQuery::default(),
                "GET /leads",
            )
            .await
            .map(|r| SlaView {
                sla_minutes: r.sla_minutes,
                leads: r.leads,
                within_sla: r.within_sla,
                never_answered: r.never_answered,
                median_minutes: r.median_minutes,
                breached: r
                    .waiting
                    .into_iter()
                    .filter(|w| w.state != "within")
                    .take(25)
                    .map(|w| WaitingView {
                        owner: w.owner_id.as_ref().and_then(|o| names.get(o).cloned()),
                        lead_id: w.lead_id,
                        arrived: at(w.created_at),
                        waiting_minutes: w.waiting_minutes,
                        state: w.state,
                    })
                    .collect(),
                bands: r.conversion_by_response,
            }),
    );
    match state
        .service
        .leads(&viewer.caller, &query, "GET /leads")
        .await
    {
        Ok(list) => {
            let (prev_offset, next_offset) =
                pager(list.offset, list.limit, list.items.len(), list.total);
            render(
                &state,
                &viewer,
                "leads",
                "leads.html",
                "Leads",
                LeadsPage {
                    prev_offset,
                    next_offset,
                    list,
                    queue,
                    sla,
                    reps,
                    rep,
                    marked: p.get("marked").cloned(),
                },
            )
        }
        Err(e) => error_page(&state, &viewer, "leads", e),
    }
}

#[derive(Serialize)]
struct LeadPageView {
    id: String,
    draft: Part<pipewise_app::leads::Draft>,
    routing: Option<Part<pipewise_app::leads::RoutedLead>>,
}

async fn lead(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let draft = state
        .service
        .lead_draft(&viewer.caller, &id, "GET /leads/{id}")
        .await;
    // Outside the scope (or not there): the 404 page, as the API answers.
    if let Err(e @ AppError::NotFound { .. }) = draft {
        return error_page(&state, &viewer, "leads", e);
    }
    let routing = if viewer.caller.role >= Role::Manager {
        Some(part(
            state
                .service
                .lead_routing(&viewer.caller, &id, "GET /leads/{id}")
                .await,
        ))
    } else {
        None
    };
    render(
        &state,
        &viewer,
        "leads",
        "lead.html",
        &format!("Lead {id}"),
        LeadPageView {
            id,
            draft: part(draft),
            routing,
        },
    )
}

#[derive(Deserialize)]
struct MarkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    step: u32,
    #[serde(default)]
    status: String,
    #[serde(default)]
    note: Option<String>,
    /// Whose queue to go back to.
    #[serde(default)]
    rep: Option<String>,
}

async fn mark_task(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<MarkForm>,
) -> Response {
    if !csrf_ok(&viewer, &f.csrf) {
        return csrf_refused(&state, &viewer, "leads");
    }
    let mark = pipewise_app::lead_desk::TaskMarkRequest {
        step: f.step,
        status: f.status,
        note: f.note.filter(|n| !n.trim().is_empty()),
    };
    match state
        .service
        .mark_lead_task(&viewer.caller, &id, &mark, "POST /leads/{id}/tasks")
        .await
    {
        Ok(_) => {
            let rep: String =
                form_urlencoded::byte_serialize(f.rep.unwrap_or_default().as_bytes()).collect();
            let lead: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
            Redirect::to(&format!("/leads?rep={rep}&marked={lead}#queue")).into_response()
        }
        Err(e) => error_page(&state, &viewer, "leads", e),
    }
}

#[derive(Serialize)]
struct ActionsPage {
    list: Part<pipewise_app::actions::RepActions>,
    /// Managers and above: adherence over their scope.
    adherence: Option<Part<pipewise_app::actions::AdherenceReport>>,
    /// Managers and above: what following was worth over their scope.
    effect: Option<Part<pipewise_app::actions::AdherenceEffectReport>>,
    /// Managers and above: the org's message tests.
    messages: Option<Part<pipewise_app::messages::MessagesReport>>,
    reps: Vec<(String, String)>,
    rep: Option<String>,
    hours: Option<f64>,
    dismissed: Option<String>,
}

#[derive(Serialize)]
struct PayPage {
    plans: pipewise_app::comp::PlanList,
    plan: Option<String>,
    vs: Option<String>,
    behaviour: String,
    from: Option<String>,
    to: Option<String>,
    /// The plans side by side, when asked.
    comp: Option<Part<pipewise_app::comp::CompReport>>,
    roi_form: pipewise_app::roi::RoiQuery,
    /// The ROI, when asked.
    roi: Option<Part<pipewise_app::roi::RoiReport>>,
}

/// Pay and ROI (directors and admins): the plans directory's plans side by
/// side on the org's performance, and the return on AI-assisted coaching.
async fn pay_page(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(q): RawQuery,
) -> Response {
    let p = params(q);
    let plans = match state.service.comp_plans(&viewer.caller, "GET /pay").await {
        Ok(x) => x,
        Err(e) => return error_page(&state, &viewer, "pay", e),
    };
    let first = plans
        .plans
        .iter()
        .find(|f| f.plan.is_some())
        .map(|f| f.name.clone());
    let plan = p.get("plan").cloned().or(first);
    let vs = p.get("vs").cloned();
    let behaviour = p.get("behaviour").cloned().unwrap_or_else(|| "none".into());
    let (from, to) = (p.get("from").cloned(), p.get("to").cloned());
    let comp = match &plan {
        Some(name) => Some(part(
            state
                .service
                .comp_simulate(
                    &viewer.caller,
                    &pipewise_app::comp::CompQuery {
                        plan: name.clone(),
                        vs: vs.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        behaviour: Some(behaviour.clone()),
                        elasticity: number(&p, "elasticity"),
                    },
                    "GET /pay",
                )
                .await,
        )),
        None => None,
    };
    // The ROI form: the org's reps and managers, seed 004's prices.
    let directory = state.service.directory();
    let count = |r: Role| {
        directory
            .all()
            .iter()
            .filter(|u| directory.role(&u.id) == Some(r))
            .count() as f64
    };
    let roi_form = pipewise_app::roi::RoiQuery {
        reps: number(&p, "reps").unwrap_or(count(Role::Rep).max(1.0)),
        managers: number(&p, "managers").unwrap_or(count(Role::Manager).max(1.0)),
        manager_salary: number(&p, "manager_salary").unwrap_or(150_000.0),
        coaching_hours_before: number(&p, "coaching_hours_before").unwrap_or(2.0),
        coaching_hours_after: number(&p, "coaching_hours_after").unwrap_or(1.0),
        software_per_rep: number(&p, "software_per_rep").unwrap_or(500.0),
        win_rate_change: number(&p, "win_rate_change"),
        deals_per_rep: number(&p, "deals_per_rep"),
        deal_size: number(&p, "deal_size"),
        gross_margin: number(&p, "gross_margin"),
    };
    let roi = if p.contains_key("roi") {
        Some(part(
            state
                .service
                .roi(&viewer.caller, &roi_form, "GET /pay")
                .await,
        ))
    } else {
        None
    };
    render(
        &state,
        &viewer,
        "pay",
        "pay.html",
        "Pay and ROI",
        PayPage {
            plans,
            plan,
            vs,
            behaviour,
            from,
            to,
            comp,
            roi_form,
            roi,
        },
    )
}

async fn actions_page(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(q): RawQuery,
) -> Response {
    let p = params(q);
    let directory = state.service.directory();
    let reps: Vec<(String, String)> = directory
        .all()
        .into_iter()
        .filter(|u| directory.role(&u.id) == Some(Role::Rep))
        .filter(|u| viewer.caller.scope.allows(Some(&u.id)))
        .map(|u| (u.id.clone(), u.name.clone()))
        .collect();
    // A rep's own day; a manager's first rep's unless they pick one.
    let rep = p
        .get("rep")
        .cloned()
        .or_else(|| (viewer.caller.role == Role::Rep).then(|| viewer.caller.user_id.clone()))
        .or_else(|| reps.first().map(|r| r.0.clone()));
    let hours: Option<f64> = number(&p, "hours");
    let list = part(
        state
            .service
            .actions(
                &viewer.caller,
                &pipewise_app::actions::ActionsQuery {
                    rep: rep.clone(),
                    date: p.get("date").cloned(),
                    hours,
                    ..Default::default()
                },
                "GET /actions",
            )
            .await,
    );
    let adherence = if viewer.caller.role >= Role::Manager {
        Some(part(
            state
                .service
                .adherence(&viewer.caller, &Default::default(), "GET /actions")
                .await,
        ))
    } else {
        None
    };
    let effect = if viewer.caller.role >= Role::Manager {
        Some(part(
            state
                .service
                .adherence_effect(&viewer.caller, &Default::default(), "GET /actions")
                .await,
        ))
    } else {
        None
    };
    let messages = if viewer.caller.role >= Role::Manager {
        Some(part(
            state
                .service
                .messages(&viewer.caller, &Default::default(), "GET /actions")
                .await,
        ))
    } else {
        None
    };
    render(
        &state,
        &viewer,
        "actions",
        "actions.html",
        "My day",
        ActionsPage {
            list,
            adherence,
            effect,
            messages,
            reps,
            rep,
            hours,
            dismissed: p.get("dismissed").cloned(),
        },
    )
}

#[derive(Deserialize)]
struct DismissForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rep: Option<String>,
    #[serde(default)]
    target_kind: String,
    #[serde(default)]
    target_id: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    date: Option<String>,
}

async fn dismiss_action(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(f): Form<DismissForm>,
) -> Response {
    if !csrf_ok(&viewer, &f.csrf) {
        return csrf_refused(&state, &viewer, "actions");
    }
    let req = pipewise_app::actions::DismissRequest {
        rep: f.rep.clone().filter(|r| !r.is_empty()),
        target_kind: f.target_kind,
        target_id: f.target_id.clone(),
        action: f.action.clone(),
        reason: f.reason,
        note: f.note.filter(|n| !n.trim().is_empty()),
        date: f.date.filter(|d| !d.is_empty()),
    };
    match state
        .service
        .dismiss_action(&viewer.caller, &req, "POST /actions/dismiss")
        .await
    {
        Ok(_) => {
            let enc =
                |s: &str| -> String { form_urlencoded::byte_serialize(s.as_bytes()).collect() };
            Redirect::to(&format!(
                "/actions?rep={}&dismissed={}",
                enc(&f.rep.unwrap_or_default()),
                enc(&format!(
                    "{} on {}",
                    f.action.replace('_', " "),
                    f.target_id
                ))
            ))
            .into_response()
        }
        Err(e) => error_page(&state, &viewer, "actions", e),
    }
}

// ---------------------------------------------------------------- admin

#[derive(Serialize)]
struct ImportsPage {
    jobs: Vec<pipewise_app::imports::ImportJob>,
    error: Option<String>,
}

async fn imports(State(state): State<AppState>, viewer: Viewer) -> Response {
    match state
        .service
        .import_jobs(&viewer.caller, "GET /admin/imports")
        .await
    {
        Ok(jobs) => render(
            &state,
            &viewer,
            "admin",
            "admin_imports.html",
            "Imports",
            ImportsPage { jobs, error: None },
        ),
        Err(e) => error_page(&state, &viewer, "admin", e),
    }
}

async fn start_import(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let refuse = |msg: String| async {
        let jobs = state
            .service
            .import_jobs(&viewer.caller, "POST /admin/imports")
            .await
            .unwrap_or_default();
        render_status(
            &state,
            &viewer,
            StatusCode::BAD_REQUEST,
            "admin",
            "admin_imports.html",
            "Imports",
            ImportsPage {
                jobs,
                error: Some(msg),
            },
        )
    };
    if !viewer.caller.is_admin() {
        return error_page(&state, &viewer, "admin", AppError::Forbidden("admin"));
    }
    let Ok(mut form) = form else {
        return refuse("The upload is not a form with files.".into()).await;
    };
    let mut req = ImportRequest {
        files: Vec::new(),
        mapping: None,
        entity: None,
        dry_run: false,
    };
    let mut csrf = String::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return refuse(format!("The upload cannot be read: {e}")).await,
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return refuse(format!("The upload cannot be read: {e}")).await,
        };
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        match name.as_str() {
            "csrf" => csrf = text(),
            "file" => {
                if let Some(n) = file_name.filter(|n| !n.is_empty()) {
                    req.files.push(Upload {
                        name: n,
                        bytes: bytes.to_vec(),
                    });
                }
            }
            "mapping" if !bytes.is_empty() => req.mapping = Some(text()),
            "entity" if !text().is_empty() => req.entity = Some(text()),
            "dry_run" => req.dry_run = text() == "true",
            _ => {}
        }
    }
    if !csrf_ok(&viewer, &csrf) {
        return csrf_refused(&state, &viewer, "admin");
    }
    if req.files.is_empty() {
        return refuse("Choose at least one file to import.".into()).await;
    }
    match state
        .service
        .import(&viewer.caller, req, "POST /admin/imports")
        .await
    {
        Ok(job) => Redirect::to(&format!("/admin/imports/{}", job.id)).into_response(),
        Err(AppError::Input(i)) => refuse(format!("{}: expected {}.", i.field, i.expected)).await,
        Err(e) => error_page(&state, &viewer, "admin", e),
    }
}

async fn import_job(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    match state
        .service
        .import_job(&viewer.caller, &id, "GET /admin/imports/{id}")
        .await
    {
        Ok(job) => render(&state, &viewer, "admin", "admin_import.html", "Import", job),
        Err(e) => error_page(&state, &viewer, "admin", e),
    }
}

fn admin_gate(viewer: &Viewer) -> Result<(), AppError> {
    if viewer.caller.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden("admin"))
    }
}

async fn models(State(state): State<AppState>, viewer: Viewer) -> Response {
    match admin_gate(&viewer).and_then(|()| state.service.models()) {
        Ok(m) => render(&state, &viewer, "admin", "admin_models.html", "Models", m),
        Err(e) => error_page(&state, &viewer, "admin", e),
    }
}

async fn model(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((kind, version)): Path<(String, String)>,
) -> Response {
    match admin_gate(&viewer).and_then(|()| state.service.model_card(&kind, &version)) {
        Ok(m) => {
            let title = format!("{} model v{}", m.model.kind, m.model.version);
            render(&state, &viewer, "admin", "admin_model.html", &title, m)
        }
        Err(e) => error_page(&state, &viewer, "admin", e),
    }
}

async fn monitor_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let weeks = number::<i64>(&params(q), "weeks").unwrap_or(8);
    let via = format!("GET /admin/monitor/{kind}");
    match state
        .service
        .monitor(&viewer.caller, &kind, weeks, &via)
        .await
    {
        Ok(m) => {
            let title = format!("Monitor: {} model", m.model);
            render(&state, &viewer, "admin", "admin_monitor.html", &title, m)
        }
        Err(e) => error_page(&state, &viewer, "admin", e),
    }
}

/// "My data" (`?user=ID`: an admin answering a subject access request).
async fn my_data_page(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(q): RawQuery,
) -> Response {
    let p = params(q);
    let user = p.get("user").map(String::as_str);
    let via = match user {
        Some(u) => format!("GET /me?user={u}"),
        None => "GET /me".to_string(),
    };
    match state.service.my_data(&viewer.caller, user, &via).await {
        Ok(d) => {
            let title = if d.stored.profile.id == viewer.caller.user_id {
                "My data".to_string()
            } else {
                format!("Data held about {}", d.stored.profile.name)
            };
            render(&state, &viewer, "me", "my_data.html", &title, d)
        }
        Err(e) => error_page(&state, &viewer, "me", e),
    }
}

async fn fairness_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = params(q);
    let groups = crate::routes::split_groups(p.get("groups").map(String::as_str));
    let via = format!("GET /admin/fairness/{kind}");
    match state
        .service
        .fairness(&viewer.caller, &kind, &groups, &via)
        .await
    {
        Ok(r) => {
            let title = format!("Fairness: {}", r.model);
            render(&state, &viewer, "admin", "admin_fairness.html", &title, r)
        }
        Err(e) => error_page(&state, &viewer, "admin", e),
    }
}

#[derive(Serialize)]
struct TokensPage {
    tokens: Vec<pipewise_app::auth::TokenRecord>,
    /// A token just created: shown once.
    created: Option<pipewise_app::auth::NewToken>,
    error: Option<String>,
}

/// A token just created, kept for the one page view that shows it (by the
/// session's CSRF token), so the form's answer can be a redirect: reloading
/// the page then shows the list, not a second token.
fn created_tokens() -> &'static std::sync::Mutex<HashMap<String, pipewise_app::auth::NewToken>> {
    static CREATED: std::sync::OnceLock<
        std::sync::Mutex<HashMap<String, pipewise_app::auth::NewToken>>,
    > = std::sync::OnceLock::new();
    CREATED.get_or_init(Default::default)
}

async fn tokens(State(state): State<AppState>, viewer: Viewer) -> Response {
    let created = created_tokens()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&viewer.csrf);
    tokens_page(&state, &viewer, created, None).await
}

async fn tokens_page(
    state: &AppState,
    viewer: &Viewer,
    created: Option<pipewise_app::auth::NewToken>,
    error: Option<String>,
) -> Response {
    match state
        .service
        .tokens(&viewer.caller, "GET /admin/tokens")
        .await
    {
        Ok(tokens) => render_status(
            state,
            viewer,
            if error.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            },
            "admin",
            "admin_tokens.html",
            "API tokens",
            TokensPage {
                tokens,
                created,
                error,
            },
        ),
        Err(e) => error_page(state, viewer, "admin", e),
    }
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    expires_days: String,
}

async fn create_token(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(f): Form<TokenForm>,
) -> Response {
    if !csrf_ok(&viewer, &f.csrf) {
        return csrf_refused(&state, &viewer, "admin");
    }
    let days = match f.expires_days.trim() {
        "" => None,
        d => match d.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                return tokens_page(
                    &state,
                    &viewer,
                    None,
                    Some("Expires after: a number of days from 1 to 365, or empty.".into()),
                )
                .await;
            }
        },
    };
    let label = Some(f.label.trim()).filter(|l| !l.is_empty());
    match state
        .service
        .create_token(
            &viewer.caller,
            f.user_id.trim(),
            label,
            days,
            "POST /admin/tokens",
        )
        .await
    {
        Ok(t) => {
            created_tokens()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(viewer.csrf.clone(), t);
            Redirect::to("/admin/tokens").into_response()
        }
        Err(AppError::Input(i)) => {
            tokens_page(
                &state,
                &viewer,
                None,
                Some(format!(
                    "{}: expected {}, got {:?}.",
                    i.field, i.expected, i.got
                )),
            )
            .await
        }
        Err(e) => error_page(&state, &viewer, "admin", e),
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&viewer, &f.csrf) {
        return csrf_refused(&state, &viewer, "admin");
    }
    match state
        .service
        .revoke_token(&viewer.caller, id, "POST /admin/tokens/{id}/revoke")
        .await
    {
        Ok(_) => Redirect::to("/admin/tokens").into_response(),
        Err(e) => error_page(&state, &viewer, "admin", e),
    }
}

#[derive(Serialize)]
struct AuditPage {
    rows: Vec<pipewise_app::AuditEntry>,
    user: Option<String>,
    id: Option<String>,
    /// The query string of the next (older) page, when there may be one.
    older: Option<String>,
}

/// Rows per page of the audit log.
const AUDIT_PAGE: usize = 200;

async fn audit(State(state): State<AppState>, viewer: Viewer, RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    let (user, id) = (p.get("user").cloned(), p.get("id").cloned());
    let before = number::<i64>(&p, "before");
    match state
        .service
        .audit_log(
            &viewer.caller,
            user.as_deref(),
            id.as_deref(),
            before,
            AUDIT_PAGE,
            "GET /admin/audit",
        )
        .await
    {
        Ok(rows) => {
            let older = (rows.len() == AUDIT_PAGE).then(|| {
                let last = rows.last().map_or(0, |r| r.seq);
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(
                        [("user", &user), ("id", &id)]
                            .iter()
                            .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.as_str()))),
                    )
                    .append_pair("before", &last.to_string())
                    .finish()
            });
            render(
                &state,
                &viewer,
                "admin",
                "admin_audit.html",
                "Audit log",
                AuditPage {
                    rows,
                    user,
                    id,
                    older,
                },
            )
        }
        Err(e) => error_page(&state, &viewer, "admin", e),
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    match super::asset(&file) {
        Some((media, bytes)) => {
            let mut r = bytes.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            r.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// The territories and accounts page: segments, the proposed plan against
/// today's (managers and above), churn risk of the open renewals, next
/// products and whitespace.
#[derive(Serialize)]
struct TerritoriesPage {
    segments: Part<pipewise_app::territories::SegmentsView>,
    plan: Option<Part<PlanView>>,
    churn: Part<pipewise_app::territories::ChurnReport>,
    next: Part<pipewise_app::territories::NextProductsView>,
    whitespace: Option<Part<pipewise_app::territories::WhitespaceReport>>,
    names: HashMap<String, String>,
}

/// The plan as the page shows it: the report with the moves sorted by gain
/// and cut to 30.
#[derive(Serialize)]
struct PlanView {
    report: pipewise_app::territories::PlanReport,
    moves: Vec<PlanMove>,
    moves_total: usize,
}

/// A move of the plan, as the page lists it.
#[derive(Serialize)]
struct PlanMove {
    account_id: String,
    account_name: String,
    from: Option<String>,
    to: String,
    /// Expected bookings under the new owner less the current one's.
    gain: f64,
    reason: String,
}

async fn territories(State(state): State<AppState>, viewer: Viewer, _q: RawQuery) -> Response {
    let s = &state.service;
    let c = &viewer.caller;
    let segments = part(s.territory_segments(c, "GET /territories").await);
    let manager = c.role >= Role::Manager;
    let plan = if manager {
        Some(part(s.territory_plan(c, "GET /territories").await.map(
            |mut report| {
                let mut moves: Vec<PlanMove> = report
                    .assignments
                    .iter()
                    .filter(|a| !a.reason.is_empty())
                    .map(|a| PlanMove {
                        account_id: a.account_id.clone(),
                        account_name: a.account_name.clone(),
                        from: a.current_rep_id.clone(),
                        to: a.rep_id.clone(),
                        gain: a.expected - a.current_expected.unwrap_or(0.0),
                        reason: a.reason.clone(),
                    })
                    .collect();
                moves.sort_by(|x, y| y.gain.total_cmp(&x.gain));
                let moves_total = moves.len();
                moves.truncate(30);
                // The page lists moves and balances, not every assignment.
                report.assignments.clear();
                report.rates.cells.clear();
                PlanView {
                    report,
                    moves,
                    moves_total,
                }
            },
        )))
    } else {
        None
    };
    let churn = part(s.churn_risk(c, "GET /territories").await.map(|mut r| {
        r.open.truncate(30);
        r
    }));
    let next = part(s.next_products(c, "GET /territories").await.map(|mut v| {
        v.accounts.sort_by(|x, y| {
            let p = |n: &pipewise_app::territories::NextProduct| {
                n.candidates.first().map_or(0.0, |c| c.probability)
            };
            p(y).total_cmp(&p(x))
        });
        v.accounts.truncate(30);
        v
    }));
    let whitespace = if manager {
        Some(part(
            s.territory_whitespace(c, "GET /territories")
                .await
                .map(|mut w| {
                    w.accounts.truncate(30);
                    w
                }),
        ))
    } else {
        None
    };
    let directory = s.directory();
    let names: HashMap<String, String> = directory
        .all()
        .into_iter()
        .map(|u| (u.id.clone(), u.name.clone()))
        .collect();
    render(
        &state,
        &viewer,
        "territories",
        "territories.html",
        "Accounts",
        TerritoriesPage {
            segments,
            plan,
            churn,
            next,
            whitespace,
            names,
        },
    )
}
