//! The web dashboard: server-rendered pages over the same use cases as the
//! API, for a signed-in browser session.
//!
//! Each page reads through [`pipewise_app::Service`] with the signed-in
//! user's scope (a deal outside it answers the 404 page, exactly as the API
//! does) and renders a template compiled into the binary (minijinja). Forms
//! post back with the session's CSRF token in a hidden field and answer with
//! a redirect (post/redirect/get), so every page works without JavaScript;
//! `app.js` only draws the charts, each of which has a table behind it.
//! New pages (leads, territories, recommendations) add a template, a handler
//! and a [`NAV`] entry.

mod format;
mod pages;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::Environment;
use pipewise_app::AppError;
use pipewise_app::scope::{Caller, Role};
use serde::Serialize;

use crate::AppState;
use crate::extract::{SESSION_COOKIE, cookie};

/// The pages of the navigation bar: (section, path, label, least role).
pub const NAV: &[(&str, &str, &str, Role)] = &[
    ("home", "/", "Home", Role::Rep),
    ("actions", "/actions", "My day", Role::Rep),
    ("deals", "/deals", "Pipeline", Role::Rep),
    ("forecast", "/forecast", "Forecast", Role::Rep),
    ("coaching", "/coaching", "Coaching", Role::Rep),
    ("calls", "/calls", "Calls", Role::Rep),
    ("reps", "/reps", "Stage bias", Role::Rep),
    ("leads", "/leads", "Leads", Role::Rep),
    ("territories", "/territories", "Accounts", Role::Rep),
    ("pay", "/pay", "Pay & ROI", Role::Director),
    ("admin", "/admin", "Admin", Role::Admin),
];

/// The dashboard's routes (mounted beside `/api/v1`).
pub fn router() -> Router<AppState> {
    pages::routes()
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        format::register(&mut env);
        env.add_global("version", env!("CARGO_PKG_VERSION"));
        env
    })
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates!(
    "layout.html",
    "macros.html",
    "sign_in.html",
    "error.html",
    "home.html",
    "deals.html",
    "deal.html",
    "forecast.html",
    "coaching.html",
    "rep_coaching.html",
    "calls.html",
    "call.html",
    "reps.html",
    "leads.html",
    "lead.html",
    "territories.html",
    "actions.html",
    "pay.html",
    "admin_imports.html",
    "admin_import.html",
    "admin_models.html",
    "admin_model.html",
    "admin_monitor.html",
    "admin_fairness.html",
    "my_data.html",
    "admin_tokens.html",
    "admin_audit.html",
);

/// Checks every template parses (a test calls it; the server would panic
/// on its first page otherwise).
pub fn check_templates() -> Result<(), String> {
    let env = templates();
    for (name, _) in TEMPLATES {
        env.get_template(name).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// The signed-in user of a page: their caller (identity, role, scope) and
/// the session's CSRF token for the page's forms. Without a valid session
/// cookie a page redirects to the sign-in page, which brings the user back.
pub struct Viewer {
    pub caller: Caller,
    pub csrf: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        // After signing in, back to the page; for a form posted with an
        // expired session, to the page the form was on.
        let back = if parts.method == axum::http::Method::GET {
            parts
                .uri
                .path_and_query()
                .map_or("/".to_string(), |p| p.as_str().to_string())
        } else {
            parts
                .headers
                .get(header::REFERER)
                .and_then(|r| r.to_str().ok())
                .and_then(|r| r.split_once("://").map(|x| x.1))
                .and_then(|r| r.find('/').map(|i| r[i..].to_string()))
                .unwrap_or_else(|| "/".into())
        };
        let to_sign_in = || {
            let next: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
            Redirect::to(&format!("/sign-in?next={next}")).into_response()
        };
        let Some(sid) = cookie(parts, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let service = state.service.clone();
        match tokio::task::spawn_blocking(move || service.session(&sid)).await {
            Ok(Ok((caller, csrf))) => Ok(Viewer { caller, csrf }),
            _ => Err(to_sign_in()),
        }
    }
}

/// A section's navigation entry as templates read it.
#[derive(Serialize)]
struct NavItem {
    path: &'static str,
    label: &'static str,
    active: bool,
}

/// What every page's layout reads: the user, the navigation, the CSRF token.
#[derive(Serialize)]
struct Frame<'a> {
    user_id: &'a str,
    name: &'a str,
    role: &'static str,
    /// "Your book", "Your team", "The organisation".
    scope_title: &'static str,
    csrf: &'a str,
    nav: Vec<NavItem>,
    currency: Option<String>,
    version: &'static str,
}

fn scope_title(role: Role) -> &'static str {
    match role {
        Role::Rep => "Your book",
        Role::Manager => "Your team",
        Role::Director | Role::Admin => "The organisation",
    }
}

/// Renders `template` inside the layout for `viewer`, with `page` as the
/// page's own data and `title` as the document title.
pub fn render(
    state: &AppState,
    viewer: &Viewer,
    section: &str,
    template: &str,
    title: &str,
    page: impl Serialize,
) -> Response {
    render_status(
        state,
        viewer,
        StatusCode::OK,
        section,
        template,
        title,
        page,
    )
}

fn frame<'a>(state: &AppState, viewer: &'a Viewer, section: &str) -> Frame<'a> {
    let c = &viewer.caller;
    let role = c.role;
    Frame {
        user_id: &c.user_id,
        name: &c.name,
        role: c.role.name(),
        scope_title: scope_title(c.role),
        csrf: &viewer.csrf,
        nav: NAV
            .iter()
            .filter(|(_, _, _, least)| role >= *least)
            .map(|(key, path, label, _)| NavItem {
                path,
                label,
                active: *key == section,
            })
            .collect(),
        currency: state.service.currency(),
        version: env!("CARGO_PKG_VERSION"),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn render_status(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    section: &str,
    template: &str,
    title: &str,
    page: impl Serialize,
) -> Response {
    let f = frame(state, viewer, section);
    let ctx = minijinja::context! {
        frame => minijinja::Value::from_serialize(&f),
        currency => f.currency.clone(),
        title => title,
        page => minijinja::Value::from_serialize(&page),
    };
    html(status, template, ctx)
}

fn html(status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
    match templates()
        .get_template(template)
        .and_then(|t| t.render(ctx))
    {
        Ok(body) => {
            let mut r = (status, Html(body)).into_response();
            secure_headers(r.headers_mut());
            r
        }
        Err(e) => {
            tracing::error!(template, error = %format!("{e:#}"), "a page cannot be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>This page cannot be shown: the error is in the server's log.".to_string()),
            )
                .into_response()
        }
    }
}

/// The pages' security headers: scripts and styles from this server only,
/// no framing, no MIME sniffing, no referrer outside the site.
fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// What went wrong, as a page in the layout: 404 for records absent or
/// outside the scope (not told apart), 403, 400 with what was expected,
/// 503 while an analysis is computed (the page refreshes itself).
#[derive(Serialize)]
struct ErrorPage {
    status: u16,
    heading: &'static str,
    message: String,
    refresh: bool,
}

pub fn error_page(state: &AppState, viewer: &Viewer, section: &str, e: AppError) -> Response {
    let (status, heading, message, refresh) = match &e {
        AppError::NotFound { .. } => (
            StatusCode::NOT_FOUND,
            "Not found",
            format!("{e}: it does not exist, or it is not in what you can see."),
            false,
        ),
        AppError::Absent(m) => (StatusCode::NOT_FOUND, "Not found", format!("{m}."), false),
        AppError::Forbidden(role) => (
            StatusCode::FORBIDDEN,
            "Not allowed",
            format!("This needs the {role} role."),
            false,
        ),
        AppError::Input(i) => (
            StatusCode::BAD_REQUEST,
            "Cannot read that",
            format!("{}: expected {}, got {:?}.", i.field, i.expected, i.got),
            false,
        ),
        AppError::Conflict(m) => (StatusCode::CONFLICT, "Already done", m.clone(), false),
        AppError::Computing(m) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Still computing",
            format!("{m}. This page refreshes by itself."),
            true,
        ),
        AppError::Unavailable(m) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not available yet",
            m.clone(),
            false,
        ),
        AppError::TooMany(s) => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            format!("Try again in {s} s."),
            false,
        ),
        AppError::Auth(a) => (StatusCode::UNAUTHORIZED, "Signed out", a.to_string(), false),
        AppError::Internal(err) => {
            tracing::error!(error = %format!("{err:#}"), "a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not build this page; the reason is in its log.".to_string(),
                false,
            )
        }
    };
    render_status(
        state,
        viewer,
        status,
        section,
        "error.html",
        heading,
        ErrorPage {
            status: status.as_u16(),
            heading,
            message,
            refresh,
        },
    )
}

/// The 404 page for an address that is no page (a browser asking for HTML;
/// API clients get problem+json).
pub fn no_such_page() -> Response {
    let ctx = minijinja::context! {
        title => "Not found",
        frame => minijinja::Value::from(()),
        page => minijinja::context! {
            status => 404,
            heading => "Not found",
            message => "There is no page at this address.",
            refresh => false,
        },
    };
    html(StatusCode::NOT_FOUND, "error.html", ctx)
}

/// A `next` path to return to after signing in: a path on this site only.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        // Browsers drop tabs and newlines from a URL ("/\t/evil" → "//evil"):
        // a path with any control or space character is not trusted.
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n.into()
        }
        _ => "/".into(),
    }
}

/// The static assets: the stylesheet, the page script and Chart.js
/// (vendored: the pages work without internet access).
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    Some(match name {
        "app.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../assets/app.css"),
        ),
        "app.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/app.js"),
        ),
        "chart.umd.min.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/chart.umd.min.js"),
        ),
        "favicon.svg" => ("image/svg+xml", include_bytes!("../../assets/favicon.svg")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        super::check_templates().unwrap();
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(super::safe_next(Some("/deals?owner=u1")), "/deals?owner=u1");
        assert_eq!(super::safe_next(Some("//evil.example/x")), "/");
        assert_eq!(super::safe_next(Some("https://evil.example/")), "/");
        assert_eq!(super::safe_next(Some("/\\evil")), "/");
        assert_eq!(super::safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(super::safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(super::safe_next(Some("/ /evil.example")), "/");
        assert_eq!(super::safe_next(None), "/");
    }
}
