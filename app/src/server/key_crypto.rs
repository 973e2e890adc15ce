//! The cryptography of API keys: new key ids and HMAC secrets, the sealing
//! of those secrets with the server's key (so the log holds them only
//! sealed), an Ed25519 public key read from what a trader pastes, and the
//! check of a request's signature. All of it is `ring`'s, which rustls
//! already builds into the server.

use std::net::IpAddr;
use std::path::Path;

use accounts::api_key::KeyCredential;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::aead::{self, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hmac, signature};

/// The length of a key id and of an HMAC secret, as Binance's are.
const TOKEN_LEN: usize = 64;
/// The DER prefix of an Ed25519 public key in SubjectPublicKeyInfo form
/// (what `-----BEGIN PUBLIC KEY-----` holds): the 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why a key or the server's sealing key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyCryptoError {
    #[error(
        "not an Ed25519 public key: paste the PEM (-----BEGIN PUBLIC KEY-----), \
         or base64 of its 32 bytes"
    )]
    BadPublicKey,
    #[error("cannot read the API key sealing key {path}: {error}")]
    ReadSealingKey { path: String, error: std::io::Error },
    #[error("cannot write a new API key sealing key to {path}: {error}")]
    WriteSealingKey { path: String, error: std::io::Error },
    #[error("{path} is not an API key sealing key: it must hold exactly 32 bytes")]
    BadSealingKey { path: String },
    #[error("the system's random source failed")]
    Random,
}

/// `TOKEN_LEN` random letters and digits.
pub fn random_token() -> Result<String, KeyCryptoError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; TOKEN_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyCryptoError::Random)?;
    // 248 is the largest multiple of 62 below 256: rejecting above it
    // keeps every character equally likely.
    let mut out = String::with_capacity(TOKEN_LEN);
    let rng = SystemRandom::new();
    for mut b in bytes {
        while b >= 248 {
            let mut one = [0u8; 1];
            rng.fill(&mut one).map_err(|_| KeyCryptoError::Random)?;
            b = one[0];
        }
        out.push(ALPHABET[(b % 62) as usize] as char);
    }
    Ok(out)
}

/// The server's key that seals HMAC secrets before they are written.
/// Every server on one store needs the same one.
pub struct SealingKey(LessSafeKey);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

impl SealingKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> SealingKey {
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("a 32-byte key");
        SealingKey(LessSafeKey::new(key))
    }

    /// A new random key (held in memory only: secrets it sealed cannot be
    /// opened after a restart).
    pub fn random() -> Result<SealingKey, KeyCryptoError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyCryptoError::Random)?;
        Ok(SealingKey::from_bytes(&bytes))
    }

    /// The key in `path`, made (32 random bytes, readable by this user
    /// only) when there is no such file yet.
    pub fn load_or_create(path: &Path) -> Result<SealingKey, KeyCryptoError> {
        let shown = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| KeyCryptoError::BadSealingKey { path: shown })?;
                Ok(SealingKey::from_bytes(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| KeyCryptoError::Random)?;
                write_private(path, &bytes).map_err(|error| KeyCryptoError::WriteSealingKey {
                    path: shown.clone(),
                    error,
                })?;
                tracing::info!(path = %shown, "made a new API key sealing key");
                Ok(SealingKey::from_bytes(&bytes))
            }
            Err(error) => Err(KeyCryptoError::ReadSealingKey { path: shown, error }),
        }
    }

    /// `secret` sealed: base64 of a random nonce, the ciphertext and its tag.
    pub fn seal(&self, secret: &str) -> Result<String, KeyCryptoError> {
        let mut nonce = [0u8; aead::NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyCryptoError::Random)?;
        let mut data = secret.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                aead::Aad::empty(),
                &mut data,
            )
            .map_err(|_| KeyCryptoError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(BASE64.encode(out))
    }

    /// A sealed secret opened; none when it was sealed with another key
    /// (or is damaged).
    pub fn open(&self, sealed: &str) -> Option<String> {
        let bytes = BASE64.decode(sealed).ok()?;
        if bytes.len() < aead::NONCE_LEN {
            return None;
        }
        let (nonce, data) = bytes.split_at(aead::NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, aead::Aad::empty(), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// An Ed25519 public key as a trader pastes it (PEM, or base64 of the DER
/// or of the bare 32 bytes), as base64 of its 32 bytes.
pub fn ed25519_public_key(text: &str) -> Result<String, KeyCryptoError> {
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let bytes = BASE64
        .decode(body.trim())
        .map_err(|_| KeyCryptoError::BadPublicKey)?;
    let key = match bytes.len() {
        32 => bytes,
        44 if bytes[..12] == ED25519_SPKI_PREFIX => bytes[12..].to_vec(),
        _ => return Err(KeyCryptoError::BadPublicKey),
    };
    Ok(BASE64.encode(key))
}

/// Whether `signature` signs `payload` with the key's credential: for an
/// HMAC key the hex of HMAC-SHA256 (either case), for an Ed25519 key the
/// base64 of the signature.
pub fn signature_holds(
    credential: &KeyCredential,
    sealing: &SealingKey,
    payload: &[u8],
    signature: &str,
) -> bool {
    match credential {
        KeyCredential::Hmac { sealed_secret } => {
            let Some(secret) = sealing.open(sealed_secret) else {
                tracing::warn!("an HMAC API key's secret does not open with this server's key");
                return false;
            };
            let Some(tag) = from_hex(signature) else {
                return false;
            };
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
            hmac::verify(&key, payload, &tag).is_ok()
        }
        KeyCredential::Ed25519 { public_key } => {
            let (Ok(key), Ok(sig)) = (BASE64.decode(public_key), BASE64.decode(signature)) else {
                return false;
            };
            signature::UnparsedPublicKey::new(&signature::ED25519, key)
                .verify(payload, &sig)
                .is_ok()
        }
    }
}

/// HMAC-SHA256 of `payload` under `secret`, in lower-case hex: how a
/// client signs (the tests and the example bot's own check).
pub fn hmac_hex(secret: &str, payload: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::sign(&key, payload)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `ip` is in one of `networks`: addresses or `address/prefix`
/// networks (a key's allow-list, the trusted proxies), checked when they
/// were given. None is in an empty list.
pub fn in_networks(networks: &[String], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    networks.iter().any(|entry| in_network(entry, ip))
}

fn in_network(entry: &str, ip: IpAddr) -> bool {
    let (address, prefix) = entry.split_once('/').unwrap_or((entry, ""));
    let Ok(network) = address.parse::<IpAddr>().map(canonical) else {
        return false;
    };
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = prefix.parse().unwrap_or(32u32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = prefix.parse().unwrap_or(128u32).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// An IPv4 address seen through an IPv6 socket as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key() {
        let key = SealingKey::random().unwrap();
        let sealed = key.seal("s3cret").unwrap();
        assert!(!sealed.contains("s3cret"));
        assert_eq!(key.open(&sealed).as_deref(), Some("s3cret"));
        assert_eq!(SealingKey::random().unwrap().open(&sealed), None);
        assert_eq!(key.open("bm90IHNlYWxlZA=="), None);
    }

    #[test]
    fn hmac_signatures_are_checked_in_either_case_and_refused_when_wrong() {
        let key = SealingKey::random().unwrap();
        let credential = KeyCredential::Hmac {
            sealed_secret: key.seal("secret").unwrap(),
        };
        let sig = hmac_hex("secret", b"symbol=BTCUSD&timestamp=1");
        assert!(signature_holds(
            &credential,
            &key,
            b"symbol=BTCUSD&timestamp=1",
            &sig
        ));
        let upper = sig.to_uppercase();
        assert!(signature_holds(
            &credential,
            &key,
            b"symbol=BTCUSD&timestamp=1",
            &upper
        ));
        assert!(!signature_holds(
            &credential,
            &key,
            b"symbol=BTCUSD&timestamp=2",
            &sig
        ));
        assert!(!signature_holds(&credential, &key, b"x", "zz"));
    }

    #[test]
    fn an_ed25519_key_is_read_from_pem_and_checks_signatures() {
        let rng = SystemRandom::new();
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        use signature::KeyPair;
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(pair.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            BASE64.encode(&der)
        );
        let public_key = ed25519_public_key(&pem).unwrap();
        assert_eq!(public_key, BASE64.encode(pair.public_key().as_ref()));
        assert_eq!(ed25519_public_key(&public_key).unwrap(), public_key);
        assert!(ed25519_public_key("not a key").is_err());
        let credential = KeyCredential::Ed25519 { public_key };
        let sig = BASE64.encode(pair.sign(b"payload").as_ref());
        let sealing = SealingKey::random().unwrap();
        assert!(signature_holds(&credential, &sealing, b"payload", &sig));
        assert!(!signature_holds(&credential, &sealing, b"payloaD", &sig));
    }

    #[test]
    fn allow_lists_match_addresses_and_networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let list = vec!["10.1.0.0/16".to_string(), "2001:db8::/32".to_string()];
        assert!(in_networks(&list, ip("10.1.200.3")));
        assert!(in_networks(&list, ip("::ffff:10.1.0.9")));
        assert!(!in_networks(&list, ip("10.2.0.1")));
        assert!(in_networks(&list, ip("2001:db8:5::1")));
        assert!(!in_networks(&list, ip("2001:db9::1")));
        assert!(!in_networks(&[], ip("192.0.2.1")));
        assert!(in_networks(&["192.0.2.1".to_string()], ip("192.0.2.1")));
        assert!(!in_networks(&["192.0.2.1".to_string()], ip("192.0.2.2")));
        assert!(in_networks(&["0.0.0.0/0".to_string()], ip("192.0.2.2")));
    }
}
