//! Credentials: passwords, session tokens and the session cookie.
//!
//! Passwords are hashed with argon2id (the crate's default parameters) and
//! stored only as PHC strings. A session token is 32 random bytes shown to
//! the browser once, in an HttpOnly cookie; the store keeps only its BLAKE2
//! hash, so the event log never holds a credential. The server ends a
//! session that was not used for [`SessionPolicy::idle`] or began more than
//! [`SessionPolicy::absolute`] ago, whatever the browser's cookie says.
//!
//! Behind HTTPS (`--secure-cookies`) the cookie is `Secure` and named
//! with the `__Host-` prefix, so a browser takes it only over TLS, from
//! this very host, for the whole site: neither a plain-HTTP answer on the
//! way nor a sibling subdomain can plant a session cookie of its choosing.
//! Such a server reads only the prefixed cookie.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use blake2::{Blake2s256, Digest};

use super::settings::SessionPolicy;

/// The session cookie's name.
pub const COOKIE: &str = "session";
/// Its name behind HTTPS.
pub const SECURE_COOKIE: &str = "__Host-session";

/// The name the session cookie has under `policy`.
pub fn cookie_name(policy: &SessionPolicy) -> &'static str {
    if policy.secure_cookie {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}

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

/// The session token in a `Cookie` header (the cookie called `name`), if
/// there is one.
pub fn token_from_cookies<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value that logs a browser in (or out, with `None`):
/// kept by the browser as long as the server keeps the session at most.
pub fn set_cookie(token: Option<&str>, policy: &SessionPolicy) -> String {
    let secure = if policy.secure_cookie { "; Secure" } else { "" };
    let (value, age) = match token {
        Some(t) => (t, policy.absolute.as_secs()),
        None => ("", 0),
    };
    let name = cookie_name(policy);
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{secure}")
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
        assert_eq!(
            token_from_cookies("a=1; session=abc; b=2", COOKIE),
            Some("abc")
        );
        assert_eq!(token_from_cookies("a=1", COOKIE), None);
        assert_eq!(token_from_cookies("session=", COOKIE), None);
        // Behind HTTPS only the prefixed cookie is a session.
        let both = "session=planted; __Host-session=mine";
        assert_eq!(token_from_cookies(both, SECURE_COOKIE), Some("mine"));
        assert_eq!(token_from_cookies("session=planted", SECURE_COOKIE), None);
        assert_ne!(new_token(), new_token());
        assert_eq!(token_hash("t").len(), 64);
    }

    #[test]
    fn the_cookie_lives_as_long_as_the_session_and_is_secure_behind_tls() {
        let mut policy = SessionPolicy::default();
        assert_eq!(
            set_cookie(Some("abc"), &policy),
            "session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000"
        );
        policy.secure_cookie = true;
        assert_eq!(
            set_cookie(Some("abc"), &policy),
            "__Host-session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000; Secure"
        );
        assert_eq!(
            set_cookie(None, &policy),
            "__Host-session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"
        );
    }
}
