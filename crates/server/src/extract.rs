//! Extractors that fail with a problem+json naming the field.

use axum::extract::{FromRequestParts, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use pipewise_app::auth::AuthError;
use pipewise_app::scope::Caller;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::problem::Problem;

/// The authenticated caller (`Authorization: Bearer TOKEN`).
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
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
                // Find the parameter at fault: the first that fails alone.
                let query = parts.uri.query().unwrap_or("");
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let alone: Result<Query<T>, _> =
                        Query::try_from_uri(&format!("/?{pair}").parse().unwrap_or_default());
                    if let Err(one) = alone {
                        let name = pair.split('=').next().unwrap_or(pair);
                        let name = percent_decode(name);
                        return Err(Problem::bad_request(
                            &name,
                            "a value of the type the OpenAPI document gives",
                            format!("query parameter {name}: {}", one.body_text()),
                        ));
                    }
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

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
