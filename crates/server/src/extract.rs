//! Extractors that fail with a problem+json naming the field.

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use pipewise_app::auth::AuthError;
use pipewise_app::scope::Caller;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::problem::Problem;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "pipewise_session";

/// Sets the session cookie of a sign-in (HttpOnly, SameSite=Strict, for
/// the session's lifetime) on a response.
pub fn set_session_cookie(r: &mut axum::response::Response, session_id: &str) {
    let cookie = format!(
        "{SESSION_COOKIE}={session_id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        pipewise_app::service_consts::SESSION_HOURS * 3600
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(axum::http::header::SET_COOKIE, v);
    }
}

/// Clears the session cookie on a response (sign-out).
pub fn clear_session_cookie(r: &mut axum::response::Response) {
    r.headers_mut().insert(
        axum::http::header::SET_COOKIE,
        axum::http::HeaderValue::from_static(
            "pipewise_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
}

/// A cookie's value from the request.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The authenticated caller: `Authorization: Bearer TOKEN`, or else the
/// session cookie of a browser sign-in (then a request that changes
/// something must carry the session's `X-CSRF-Token`).
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if parts.headers.get(AUTHORIZATION).is_none()
            && let Some(sid) = cookie(parts, SESSION_COOKIE)
        {
            let service = state.service.clone();
            let (caller, csrf) = tokio::task::spawn_blocking(move || service.session(&sid))
                .await
                .map_err(|_| Problem::from(AuthError::NoSession))?
                .map_err(Problem::from)?;
            if !parts.method.is_safe() {
                let sent = parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !pipewise_app::auth::same_secret(sent, &csrf) {
                    return Err(Problem::from(AuthError::Csrf));
                }
            }
            return Ok(Authed(caller));
        }
        let token = match parts.headers.get(AUTHORIZATION) {
            None => None,
            Some(v) => {
                let v = v.to_str().unwrap_or("");
                match v.split_once(' ') {
                    Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => Some(t.trim()),
                    _ => {
                        return Err(Problem::new(
                            axum::http::StatusCode::UNAUTHORIZED,
                            "unauthenticated",
                            "the Authorization header must be `Bearer TOKEN`",
                        ));
                    }
                }
            }
        };
        if let Some(known) = state.service.authenticate_cached(token) {
            return known.map(Authed).map_err(Problem::from);
        }
        let service = state.service.clone();
        let token = token.map(str::to_string);
        // The token lookup reads the database.
        tokio::task::spawn_blocking(move || service.authenticate(token.as_deref()))
            .await
            .map_err(|_| Problem::from(AuthError::Unknown))?
            .map(Authed)
            .map_err(Problem::from)
    }
}

/// Query parameters; a bad one is a 400 naming it.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(q) => Ok(ApiQuery(q.0)),
            Err(e) => {
                let query = parts.uri.query().unwrap_or("");
                // A parameter the error names: missing, unknown or repeated.
                let whole = e.body_text();
                let named = |what: &str| {
                    whole
                        .split_once(what)
                        .and_then(|(_, rest)| rest.strip_prefix('`'))
                        .and_then(|rest| rest.split_once('`'))
                        .map(|(name, _)| name.to_string())
                };
                if let Some(name) = named("missing field ") {
                    return Err(Problem::bad_request(
                        &name,
                        "the parameter: it is required",
                        format!("{name} is required and was not given"),
                    ));
                }
                if let Some(name) = named("unknown field ") {
                    let expected = whole
                        .split_once("expected one of ")
                        .map(|(_, v)| format!("one of {}", v.replace('`', "")))
                        .unwrap_or_else(|| "no parameters".into());
                    return Err(Problem::bad_request(
                        &name,
                        &expected,
                        format!("{name} is not a parameter of this route: expected {expected}"),
                    ));
                }
                // Find the parameter at fault: the first that fails alone
                // for a reason other than the parameters it leaves out.
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let alone: Result<Query<T>, _> =
                        Query::try_from_uri(&format!("/?{pair}").parse().unwrap_or_default());
                    if let Err(one) = alone
                        && !one.body_text().contains("missing field")
                    {
                        let name = pair.split('=').next().unwrap_or(pair);
                        let name = percent_decode(name);
                        let text = one.body_text();
                        let variants = text
                            .split_once("expected one of ")
                            .map(|(_, v)| format!("one of {}", v.replace('`', "")))
                            .or_else(|| {
                                text.contains("unknown variant")
                                    .then(|| text.split_once("expected "))
                                    .flatten()
                                    .map(|(_, v)| v.replace('`', ""))
                            });
                        let expected = if let Some(v) = &variants {
                            v.as_str()
                        } else if text.contains("`true` or `false`") {
                            "true or false"
                        } else if text.contains("unknown field") {
                            "one of the parameters the OpenAPI document lists for this route"
                        } else if text.contains("invalid digit")
                            || text.contains("number too large")
                        {
                            "a whole number, 0 or more (see the OpenAPI document for its range)"
                        } else if text.contains("float") {
                            "a number (see the OpenAPI document for its range)"
                        } else if text.contains("duplicate field") {
                            "the parameter once"
                        } else {
                            "a value of the type the OpenAPI document gives"
                        };
                        let got = pair.split_once('=').map_or("", |x| x.1);
                        return Err(Problem::bad_request(
                            &name,
                            expected,
                            format!("{name}: expected {expected}, got {:?}", percent_decode(got)),
                        ));
                    }
                }
                let mut seen = std::collections::HashSet::new();
                if let Some(dup) = query
                    .split('&')
                    .filter_map(|p| p.split('=').next())
                    .find(|n| !n.is_empty() && !seen.insert(*n))
                {
                    let name = percent_decode(dup);
                    return Err(Problem::bad_request(
                        &name,
                        "the parameter once",
                        format!("{name} is given more than once"),
                    ));
                }
                Err(Problem::bad_request(
                    "query",
                    "parameters as the OpenAPI document describes",
                    e.body_text(),
                ))
            }
        }
    }
}

/// A query-string component, `%XX` and `+` decoded.
fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The client's address (for sign-in rate limits); `unknown` when the
/// server was not started with connection info.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map_or_else(|| "unknown".into(), |c| c.0.ip().to_string()),
        ))
    }
}

/// A JSON body; a bad one is a problem+json naming what was wrong.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(j) => Ok(ApiJson(j.0)),
            Err(e) => {
                let text = e.body_text();
                // Name the field at fault where serde says it.
                let quoted = |after: &str| {
                    text.split_once(after)
                        .and_then(|(_, rest)| rest.split('`').next())
                        .map(str::to_string)
                };
                let (field, expected) = if let Some(f) = quoted("missing field `") {
                    (f, "this field, which is required".to_string())
                } else if let Some(f) = quoted("unknown field `") {
                    (f, "only the fields the OpenAPI document lists".to_string())
                } else if let Some((_, v)) = text.split_once("expected one of ") {
                    let v = v.split(" at line").next().unwrap_or(v).replace('`', "");
                    // serde does not say which field (an enum's tag or value).
                    ("body".to_string(), format!("one of {v}"))
                } else {
                    (
                        "body".to_string(),
                        "a JSON object as the OpenAPI document describes (Content-Type: application/json)"
                            .to_string(),
                    )
                };
                let mut p = Problem::bad_request(&field, &expected, text);
                p.status = e.status().as_u16();
                p.title = e
                    .status()
                    .canonical_reason()
                    .unwrap_or("Bad Request")
                    .into();
                Err(p)
            }
        }
    }
}

/// For routes that take no query parameters: any given is a 400 naming it
/// (a misspelt filter must not pass silently).
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(q) = parts.uri.query().filter(|q| !q.is_empty()) else {
            return Ok(NoQuery);
        };
        let name = form_urlencoded::parse(q.as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default();
        Err(Problem::bad_request(
            &name,
            "no query parameters: this route takes none",
            format!("unknown parameter {name:?}: this route takes no query parameters"),
        ))
    }
}
