//! Errors as `application/problem+json` (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pipewise_app::AppError;
use pipewise_app::auth::AuthError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error: what went wrong, and for a bad parameter which one and what
/// was expected.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The parameter or field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What that parameter should be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Seconds to wait (also the Retry-After header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("https://pipewise.dev/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            expected: None,
            retry_after: None,
        }
    }

    pub fn bad_request(field: &str, expected: &str, detail: impl Into<String>) -> Problem {
        Problem {
            field: Some(field.into()),
            expected: Some(expected.into()),
            ..Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", detail)
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        let retry_after = self.retry_after;
        let mut r = (status, axum::Json(self)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if unauthorized {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        let kind = match e {
            AuthError::Missing => "unauthenticated",
            AuthError::Expired => "token-expired",
            AuthError::Revoked => "token-revoked",
            AuthError::Unknown | AuthError::NoUser => "invalid-token",
            AuthError::BadPassword => "bad-credentials",
            AuthError::NoSession => "no-session",
            AuthError::Csrf => {
                return Problem::new(StatusCode::FORBIDDEN, "csrf", e.to_string());
            }
        };
        Problem::new(StatusCode::UNAUTHORIZED, kind, e.to_string())
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Input(i) if i.refused => Problem {
                field: Some(i.field.clone()),
                expected: Some(i.expected.clone()),
                ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", i.to_string())
            },
            AppError::Input(i) => Problem::bad_request(&i.field, &i.expected, i.to_string()),
            AppError::Auth(a) => a.into(),
            AppError::NotFound { .. } | AppError::Absent(_) => Problem::not_found(e.to_string()),
            AppError::Forbidden(_) => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            AppError::TooMany(secs) => {
                let mut p = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-sign-ins",
                    e.to_string(),
                );
                p.retry_after = Some(secs);
                p
            }
            AppError::Conflict(why) => Problem::new(StatusCode::CONFLICT, "conflict", why),
            AppError::Computing(why) => {
                let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "computing", why);
                p.retry_after = Some(5);
                p
            }
            AppError::Unavailable(why) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", why)
            }
            AppError::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server could not answer; the error is in its log",
                )
            }
        }
    }
}
