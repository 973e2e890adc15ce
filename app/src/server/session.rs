//! Passwords and session tokens.
//!
//! Passwords are hashed with argon2id (the crate's default parameters) and
//! stored only as PHC strings. A session token is 32 random bytes shown to
//! the browser once, in an HttpOnly cookie; the store keeps only its BLAKE2
//! hash, so the event log never holds a credential.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use blake2::{Blake2s256, Digest};

/// The session cookie's name.
pub const COOKIE: &str = "session";

/// How long a session cookie lives in the browser, in seconds (30 days).
pub const COOKIE_MAX_AGE: u64 = 30 * 24 * 3600;

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random session token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex(&Blake2s256::digest(token.as_bytes()))
}

/// The session token in a `Cookie` header, if there is one.
pub fn token_from_cookies(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value that logs a browser in (or out, with `None`).
pub fn set_cookie(token: Option<&str>) -> String {
    match token {
        Some(t) => {
            format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Lax; Max-Age={COOKIE_MAX_AGE}")
        }
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        assert_eq!(token_from_cookies("a=1; session=abc; b=2"), Some("abc"));
        assert_eq!(token_from_cookies("a=1"), None);
        assert_eq!(token_from_cookies("session="), None);
        assert_ne!(new_token(), new_token());
        assert_eq!(token_hash("t").len(), 64);
    }
}
