//! Who may use the store: users with passwords, checked on every Streams
//! call the way EventStoreDB checks them (the official clients send
//! `authorization: Basic base64(user:password)` when the connection string
//! has `user:password@`). Missing or wrong credentials get UNAUTHENTICATED,
//! which the clients report as access denied, and never any data.
//!
//! Gossip and ServerFeatures stay open, as on EventStoreDB: a client asks
//! them before it authenticates anything, and they tell nothing of the
//! data. A store with no users at all runs insecure, which is allowed only
//! on a loopback address.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use tonic::{Request, Status};

/// Who may call, or nobody checked.
#[derive(Clone, Debug)]
pub enum Access {
    /// Every Streams call must carry one of these users' credentials.
    Users(Users),
    /// No credentials asked: anyone who can reach the port may read and
    /// write. Only on a loopback address.
    Insecure,
}

/// Why the users or the access asked for cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "{0} is not a loopback address, and a store without users would let anyone who can \
         reach it read and write: give it users (--users or --users-file)"
    )]
    InsecureAddress(SocketAddr),
    #[error("user entry {0:?} is not name:password (both non-empty, no spaces)")]
    BadEntry(String),
    #[error("no users given")]
    NoUsers,
    #[error("cannot read the users file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot draw a random password: {0}")]
    Random(#[source] std::io::Error),
}

/// Users and their passwords; cheap to clone.
#[derive(Clone)]
pub struct Users(Arc<Vec<(String, String)>>);

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passwords.
        let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_tuple("Users").field(&names).finish()
    }
}

impl Users {
    /// Parses `name:password` entries separated by commas or new lines
    /// (blank lines and lines starting with `#` are skipped). Names and
    /// passwords are used in connection strings, so they may not hold
    /// spaces, `@`, `/` or `:` (a password may hold `:`).
    pub fn parse(text: &str) -> Result<Users, AccessError> {
        let mut users = Vec::new();
        for entry in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'))
        {
            let bad = || AccessError::BadEntry(entry.to_string());
            let (name, password) = entry.split_once(':').ok_or_else(bad)?;
            let plain = |s: &str| !s.is_empty() && !s.contains([' ', '\t', '@', '/']);
            if !plain(name) || !plain(password) {
                return Err(bad());
            }
            users.push((name.to_string(), password.to_string()));
        }
        if users.is_empty() {
            return Err(AccessError::NoUsers);
        }
        Ok(Users(Arc::new(users)))
    }

    /// Reads users from a file, in [`Users::parse`]'s form.
    pub fn from_file(path: &Path) -> Result<Users, AccessError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::File {
            path: path.display().to_string(),
            source,
        })?;
        Users::parse(&text)
    }

    /// One user, `admin`, with a password of 128 random bits drawn from
    /// the kernel, for a store only its own process talks to.
    pub fn random_admin() -> Result<Users, AccessError> {
        use std::io::Read;
        let mut bytes = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(AccessError::Random)?;
        let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Users(Arc::new(vec![("admin".into(), password)])))
    }

    /// The first user, for the connection string the store hands out.
    pub fn first(&self) -> (&str, &str) {
        let (name, password) = &self.0[0];
        (name, password)
    }

    /// Whether an `authorization` header value names one of the users.
    fn admits(&self, header: &[u8]) -> bool {
        let Some(encoded) = header.strip_prefix(b"Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return false;
        };
        let (name, password) = (&decoded[..colon], &decoded[colon + 1..]);
        // Every user is compared, each in time independent of where the
        // bytes differ, so timing tells nothing of a password.
        self.0.iter().fold(false, |found, (n, p)| {
            found | (same(n.as_bytes(), name) & same(p.as_bytes(), password))
        })
    }
}

/// Compares two byte strings in time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl Access {
    /// Checks that this access may be used on `addr`.
    pub fn check(&self, addr: SocketAddr) -> Result<(), AccessError> {
        match self {
            Access::Insecure if !addr.ip().is_loopback() => Err(AccessError::InsecureAddress(addr)),
            _ => Ok(()),
        }
    }

    /// The gRPC interceptor enforcing it.
    pub fn interceptor(
        &self,
    ) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
        let users = match self {
            Access::Users(u) => Some(u.clone()),
            Access::Insecure => None,
        };
        move |request: Request<()>| {
            let Some(users) = &users else {
                return Ok(request);
            };
            match request.metadata().get("authorization") {
                Some(v) if users.admits(v.as_bytes()) => Ok(request),
                Some(_) => Err(Status::unauthenticated("wrong user name or password")),
                None => Err(Status::unauthenticated(
                    "this store needs credentials (user:password@ in the connection string)",
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
        .into_bytes()
    }

    #[test]
    fn only_a_listed_user_with_its_password_is_admitted() {
        let users = Users::parse("admin:s3cret, ops:pa:ss\n# a comment\n").unwrap();
        assert!(users.admits(&basic("admin:s3cret")));
        assert!(users.admits(&basic("ops:pa:ss")));
        assert!(!users.admits(&basic("admin:s3cre")));
        assert!(!users.admits(&basic("admin:s3cret!")));
        assert!(!users.admits(&basic("ops:s3cret")));
        assert!(!users.admits(&basic("admin")));
        assert!(!users.admits(b"Bearer abc"));
        assert!(!users.admits(b"Basic !!!"));
        assert!(matches!(Users::parse(""), Err(AccessError::NoUsers)));
        assert!(matches!(
            Users::parse("nopassword"),
            Err(AccessError::BadEntry(_))
        ));
        assert!(matches!(
            Users::parse("a b:c"),
            Err(AccessError::BadEntry(_))
        ));
    }

    #[test]
    fn random_passwords_differ_and_stay_out_of_debug_output() {
        let (a, b) = (
            Users::random_admin().unwrap(),
            Users::random_admin().unwrap(),
        );
        assert_ne!(a.first().1, b.first().1);
        assert_eq!(a.first().1.len(), 32);
        assert!(!format!("{a:?}").contains(a.first().1));
    }

    #[test]
    fn insecure_is_for_loopback_only() {
        assert!(
            Access::Insecure
                .check("127.0.0.1:2113".parse().unwrap())
                .is_ok()
        );
        assert!(
            Access::Insecure
                .check("[::1]:2113".parse().unwrap())
                .is_ok()
        );
        assert!(matches!(
            Access::Insecure.check("0.0.0.0:2113".parse().unwrap()),
            Err(AccessError::InsecureAddress(_))
        ));
    }
}
