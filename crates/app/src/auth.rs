//! API tokens and passwords.
//!
//! A token is `pw_` followed by 64 hex digits: 256 random bits from the
//! operating system. Only its SHA-256 is stored, so a copy of the database
//! does not yield working tokens; the token is shown once, at creation.
//! Passwords are hashed with argon2id (the `argon2` crate's defaults: 19 MiB,
//! 2 passes, the OWASP minimum) into PHC strings.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use pipewise_store::SqliteStore;
pub use pipewise_store::access::TokenRecord;
use pipewise_store::access::sha256_hex;
use serde::Serialize;

use crate::scope::{Caller, Directory};

/// Why a request could not be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthError {
    #[error("no credentials: send `Authorization: Bearer TOKEN`")]
    Missing,
    #[error("the token is not one this server issued")]
    Unknown,
    #[error("the token has expired")]
    Expired,
    #[error("the token was revoked")]
    Revoked,
    #[error("the token's user no longer exists")]
    NoUser,
    #[error("the user id or the password is wrong")]
    BadPassword,
    #[error("not signed in, or the session has ended: sign in again")]
    NoSession,
    #[error(
        "a request made with the session cookie that changes something needs the X-CSRF-Token header of the session"
    )]
    Csrf,
}

/// `n` random bytes from the operating system, as lower-case hex.
pub fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness from the system: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Equal secrets, compared in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The stored form of a token or session id.
pub fn secret_hash(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// Now, as the store writes instants (`2026-01-31T09:30:00Z`).
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn days_from_now(days: u32) -> String {
    (chrono::Utc::now() + chrono::Duration::days(i64::from(days)))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A token just created: the secret (shown once) and its record.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    pub token: String,
    #[serde(flatten)]
    pub record: TokenRecord,
}

/// Creates a token for a user, expiring after `expires_days` when given.
/// Errors when the user does not exist.
pub fn create_token(
    store: &mut SqliteStore,
    user_id: &str,
    label: Option<&str>,
    expires_days: Option<u32>,
) -> anyhow::Result<NewToken> {
    let token = format!("pw_{}", random_hex(32)?);
    let expires = expires_days.map(days_from_now);
    let record = store.insert_token(
        user_id,
        &secret_hash(&token),
        label,
        &now(),
        expires.as_deref(),
    )?;
    Ok(NewToken { token, record })
}

/// Whether a stored token is still good as of `now`, and whose it is.
pub fn check_token(
    rec: &TokenRecord,
    directory: &Directory,
    now: &str,
) -> Result<Caller, AuthError> {
    if rec.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if rec.expires_at.as_deref().is_some_and(|e| e <= now) {
        return Err(AuthError::Expired);
    }
    directory.caller(&rec.user_id).ok_or(AuthError::NoUser)
}

/// Hashes a password (argon2id, random salt) into a PHC string. Errors on
/// a password shorter than 12 characters.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        password.chars().count() >= 12,
        "the password has {} characters: use at least 12",
        password.chars().count()
    );
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| anyhow::anyhow!("no randomness from the system: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?
        .to_string())
}

/// Whether `password` matches a stored PHC string (false on a malformed one).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip_and_short_ones_are_refused() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(hash_password("short").is_err());
    }
}
