//! Whether the time of a failed log-in tells which names have accounts: a
//! wrong password for a name that exists, against any password for a name
//! that does not, timed from the call to the answer, interleaved so both
//! see the same machine. The exchange checks an unknown name against a
//! hash of the same cost (`Exchange::log_in`); this measures that it does.
//! The limits per name and address are not in the way: `log_in` is the
//! check itself (`log_in_from` adds the limits in front of it).
//!
//! ```sh
//! cargo bench -p app --features ssr --bench login
//! ```

use std::time::{Duration, Instant};

use app::server::{Connection, Exchange, Settings};

mod figures;
use figures::{env_list, percentile};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(samples: &mut [f64]) -> (f64, String) {
    samples.sort_by(f64::total_cmp);
    let p50 = percentile(samples, 0.5);
    let text = format!(
        "p10 {:.1} ms, p50 {p50:.1} ms, p90 {:.1} ms (n {})",
        percentile(samples, 0.1),
        percentile(samples, 0.9),
        samples.len()
    );
    (p50, text)
}

#[tokio::main]
async fn main() {
    let tries = env_list::<usize>("TRIES", "40")[0];
    let dir = tempfile::tempdir().expect("a temporary folder");
    let settings = Settings::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/exchange.json"
    )))
    .expect("the exchange configuration");
    let connection = Connection::Embedded {
        data: dir.path().join("events"),
    };
    let exchange = Exchange::start(settings, connection)
        .await
        .expect("the exchange starts");
    exchange
        .sign_up("alice", "correct horse battery")
        .await
        .expect("alice signs up");
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..tries {
        let start = Instant::now();
        let answer = exchange.log_in("alice", "wrong horse battery").await;
        known.push(ms(start.elapsed()));
        assert!(answer.is_err(), "a wrong password must fail");
        let start = Instant::now();
        let answer = exchange
            .log_in(&format!("nobody{i}"), "wrong horse battery")
            .await;
        unknown.push(ms(start.elapsed()));
        assert!(answer.is_err(), "an unknown name must fail");
    }
    let (known_p50, known_text) = summary(&mut known);
    let (unknown_p50, unknown_text) = summary(&mut unknown);
    println!("failed log-in, known name (baseline): {known_text}");
    println!("failed log-in, unknown name:          {unknown_text}");
    println!("unknown / known at p50: {:.3}x", unknown_p50 / known_p50);
    exchange.stop().await;
}
