//! The `orderbook` command-line tool, run as a user would.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orderbook"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const COMMANDS: &str = r#"{"command":"place","symbol":"BTC-USD","order_id":1,"account":7,"side":"sell","type":"limit","price":"100","quantity":"0.3","at":10}
{"command":"place","symbol":"BTC-USD","order_id":2,"account":8,"side":"buy","type":"limit","price":"100.5","quantity":"1","at":20}
{"command":"place","symbol":"ETH-USD","order_id":1,"account":8,"side":"buy","type":"limit","price":"10","quantity":"1","at":30}
"#;

#[test]
fn match_turns_commands_into_the_same_events_every_time() {
    let first = run(&["match"], COMMANDS);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let events = text(&first.stdout);
    let types: Vec<&str> = events
        .lines()
        .map(|l| {
            l.split("\"type\":\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        types,
        [
            "OrderAccepted",
            "OrderAccepted",
            "TradeExecuted",
            "OrderFilled",
            "OrderAccepted"
        ]
    );
    assert_eq!(run(&["match"], COMMANDS).stdout, first.stdout);
}

#[test]
fn match_reports_bad_lines_by_number_and_still_runs_the_good_ones() {
    let input = format!(
        "{COMMANDS}not json\n{{\"command\":\"cancel\",\"symbol\":\"DOGE-USD\",\"order_id\":1,\"account\":1,\"at\":1}}\n"
    );
    let out = run(&["match"], &input);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("line 4: not a valid command"), "{err}");
    assert!(err.contains("line 5: unknown market DOGE-USD"), "{err}");
    assert_eq!(
        text(&out.stdout).lines().count(),
        5,
        "the good lines' events are all there"
    );
}

#[test]
fn replay_shows_the_book_at_the_end_or_at_an_event() {
    let events = text(&run(&["match"], COMMANDS).stdout);
    let end = text(&run(&["replay"], &events).stdout);
    assert!(end.contains("\"remaining_quantity\": \"0.7\""), "{end}");
    assert!(end.contains("\"symbol\": \"ETH-USD\""), "{end}");
    // After two events the sell rests untraded. The buy that crosses it is
    // accepted but not on the book yet (its trade is the next event): the
    // book is never shown crossed. ETH-USD has nothing.
    let early = text(&run(&["replay", "--at", "2"], &events).stdout);
    assert!(
        early.contains("\"remaining_quantity\": \"0.3\"")
            && !early.contains("\"remaining_quantity\": \"1\"")
            && !early.contains("\"bids\": [\n      {"),
        "{early}"
    );
    assert!(!early.contains("ETH-USD"), "{early}");
    // Once the sell is filled, what is left of the buy rests.
    let traded = text(&run(&["replay", "--at", "4"], &events).stdout);
    assert!(
        traded.contains("\"remaining_quantity\": \"0.7\"")
            && !traded.contains("\"remaining_quantity\": \"0.3\""),
        "{traded}"
    );
    let bad = run(&["replay"], "{\"schema_version\":1}\n");
    assert!(
        !bad.status.success() && text(&bad.stderr).contains("line 1"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn simulate_checks_every_invariant_and_reports() {
    let out = run(&["simulate", "--seed", "3", "--orders", "20000"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: 20000 commands"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_failing_check_dumps_its_log_and_says_how_to_replay_it() {
    let dir = std::env::temp_dir().join(format!("orderbook-cli-{}", std::process::id()));
    let input = format!(
        "{COMMANDS}{{\"command\":\"cancel\",\"symbol\":\"DOGE-USD\",\"order_id\":1,\"account\":1,\"at\":1}}\n"
    );
    let out = run(&["check", "--out", dir.to_str().unwrap()], &input);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no market DOGE-USD") && err.contains("orderbook check <"),
        "{err}"
    );
    let dumped = std::fs::read_to_string(dir.join("check.commands.jsonl")).unwrap();
    assert_eq!(dumped.lines().count(), 4);
    assert_eq!(
        std::fs::read_to_string(dir.join("check.events.jsonl"))
            .unwrap()
            .lines()
            .count(),
        5
    );
    std::fs::remove_dir_all(dir).unwrap();
}
