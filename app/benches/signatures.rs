//! What checking a signed request costs the server, beside what the order
//! it carries costs: the signature check (`Exchange::authenticate` and the
//! timestamp check, here with the key's record already in hand: the
//! sealed HMAC secret opened, HMAC-SHA256 or Ed25519 verified over a
//! Binance-shaped order's parameters) timed alone, per request.
//! Compare with the server CPU per order of the `orders` bench, run in the
//! same session.
//!
//! ```sh
//! cargo bench -p app --features ssr --bench signatures
//! ```

use std::time::Instant;

use accounts::api_key::KeyCredential;
use app::server::key_crypto::{SealingKey, hmac_hex, signature_holds};
use app::site::signed::fresh;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};

const ROUNDS: u32 = 200_000;

fn main() {
    let payload = "symbol=BTCUSD&side=BUY&type=LIMIT&timeInForce=GTC&price=100.5&\
                   quantity=0.001&newOrderRespType=ACK&timestamp=1796499271758";
    let sealing = SealingKey::random().unwrap();
    let secret = "x".repeat(64);
    let hmac = KeyCredential::Hmac {
        sealed_secret: sealing.seal(&secret).unwrap(),
    };
    let hmac_sig = hmac_hex(&secret, payload.as_bytes());
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let ed = KeyCredential::Ed25519 {
        public_key: b64.encode(pair.public_key().as_ref()),
    };
    let ed_sig = b64.encode(pair.sign(payload.as_bytes()).as_ref());
    println!("| check | per request |");
    println!("| --- | --- |");
    for (name, credential, sig) in [("HMAC-SHA256", &hmac, &hmac_sig), ("Ed25519", &ed, &ed_sig)] {
        let started = Instant::now();
        for _ in 0..ROUNDS {
            fresh("1796499271758", Some("5000"), 1_796_499_271_800).unwrap();
            assert!(signature_holds(
                credential,
                &sealing,
                payload.as_bytes(),
                sig
            ));
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
        println!("| {name} (timestamp, open, verify) | {per:.2} µs |");
    }
}
