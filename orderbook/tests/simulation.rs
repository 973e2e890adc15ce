//! The simulation test: a million random commands across three markets with
//! every invariant checked after each one. On a broken rule it writes the
//! commands that led there to a file and names the command that replays
//! them; a file copied into `tests/regressions/` replays as a test forever.

use std::path::{Path, PathBuf};

use orderbook::sim::{SimulationFailure, check_commands, simulate};
use orderbook::{Command, Market, MarketSpec};

fn markets() -> Vec<Market> {
    let mut m = Market::defaults();
    m.push(
        Market::new(MarketSpec {
            symbol: "SOL-USD".into(),
            base: "SOL".into(),
            quote: "USD".into(),
            tick_size: "0.5".parse().unwrap(),
            lot_size: "0.1".parse().unwrap(),
            min_quantity: "0.3".parse().unwrap(),
        })
        .unwrap(),
    );
    m
}

fn dump(name: &str, failure: &SimulationFailure) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sim-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.commands.jsonl"));
    let lines: Vec<String> = failure
        .commands
        .iter()
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn a_million_random_commands_keep_every_invariant() {
    let seed = 20_261_123;
    match simulate(seed, 1_000_000, markets()) {
        Ok(stats) => {
            assert_eq!(stats.commands, 1_000_000);
            // The flow must really trade and really reject, or it tests little.
            assert!(stats.trades > 100_000, "{stats:?}");
            assert!(stats.rejections > 10_000, "{stats:?}");
            assert!(stats.stops_fired > 10_000, "{stats:?}");
        }
        Err(f) => {
            let path = dump(&format!("seed-{seed}"), &f);
            panic!(
                "{} at command {}; replay with: cargo run -p orderbook -- check < {}",
                f.violation,
                f.commands.len(),
                path.display()
            );
        }
    }
}

#[test]
fn recorded_command_logs_replay_with_every_invariant() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no recorded logs in {}", dir.display());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let commands: Vec<Command> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display()))
            })
            .collect();
        let stats = check_commands(&markets(), commands)
            .unwrap_or_else(|f| panic!("{}: {}", path.display(), f.violation));
        assert!(stats.trades > 0, "{} trades nothing", path.display());
    }
}
