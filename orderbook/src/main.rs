//! `orderbook`: the matching engine on the command line, reading and writing
//! JSON lines. See the crate README for the formats.

use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use orderbook::sim::{SimulationFailure, Stats, check_commands, simulate};
use orderbook::{Book, Command, Event, Market, MarketSpec, Symbol};

#[derive(Parser)]
#[command(
    name = "orderbook",
    about = "The exchange's matching engine on the command line."
)]
struct BookCli {
    /// A JSON file with an array of market definitions (default: BTC-USD and ETH-USD).
    #[arg(long, global = true, env = "ORDERBOOK_MARKETS")]
    markets: Option<PathBuf>,
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Commands on stdin, events on stdout. Deterministic.
    Match,
    /// Events on stdin; prints each market's book at the end (or after event N).
    Replay {
        /// Stop after this many events (counted over all markets, from 1).
        #[arg(long)]
        at: Option<u64>,
        /// How many price levels of depth to print per side.
        #[arg(long, default_value_t = 10)]
        depth: usize,
    },
    /// Random order flow with every invariant checked after each command.
    Simulate {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 100_000)]
        orders: u64,
        /// Where a failing run's commands and events are written.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Commands on stdin, run with every invariant checked (replays a dump).
    Check {
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = BookCli::parse();
    let markets = load_markets(cli.markets.as_deref())?;
    match cli.command {
        Mode::Match => run_match(&markets),
        Mode::Replay { at, depth } => run_replay(&markets, at, depth),
        Mode::Simulate { seed, orders, out } => report(
            simulate(seed, orders, markets),
            &out,
            &format!("sim-seed-{seed}"),
        ),
        Mode::Check { out } => {
            let commands =
                read_lines(|line| serde_json::from_str::<Command>(line).map_err(Into::into))?;
            report(check_commands(&markets, commands), &out, "check")
        }
    }
}

fn load_markets(path: Option<&Path>) -> anyhow::Result<Vec<Market>> {
    let Some(path) = path else {
        return Ok(Market::defaults());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let specs: Vec<MarketSpec> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON array of markets", path.display()))?;
    specs
        .into_iter()
        .map(|s| {
            let name = s.symbol.clone();
            Market::new(s).with_context(|| format!("market {name}"))
        })
        .collect()
}

/// Reads stdin line by line, skipping blank lines. A line that does not
/// parse is reported with its number and the run stops: nothing is guessed.
fn read_lines<T>(parse: impl Fn(&str) -> anyhow::Result<T>) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse(&line).with_context(|| format!("line {}", n + 1))?);
    }
    Ok(out)
}

fn books(markets: &[Market]) -> HashMap<Symbol, Book> {
    markets
        .iter()
        .map(|m| (m.symbol, Book::new(m.clone())))
        .collect()
}

fn run_match(markets: &[Market]) -> anyhow::Result<()> {
    let mut books = books(markets);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut bad = 0;
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        // A bad line is reported and skipped; the lines after it still run.
        let command: Command = match serde_json::from_str(&line) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("line {}: not a valid command: {e}", n + 1);
                bad += 1;
                continue;
            }
        };
        let Some(book) = books.get_mut(command.symbol()) else {
            eprintln!("line {}: unknown market {}", n + 1, command.symbol());
            bad += 1;
            continue;
        };
        for event in book.execute(&command) {
            writeln!(out, "{}", event.to_json())?;
        }
    }
    out.flush()?;
    if bad > 0 {
        bail!("{bad} line(s) could not be run");
    }
    Ok(())
}

fn run_replay(markets: &[Market], at: Option<u64>, depth: usize) -> anyhow::Result<()> {
    let mut books = books(markets);
    let events = read_lines(|line| Event::from_json(line).map_err(Into::into))?;
    let limit = at.unwrap_or(u64::MAX);
    for (i, event) in events.iter().enumerate() {
        if i as u64 >= limit {
            break;
        }
        let Some(book) = books.get_mut(event.symbol()) else {
            bail!("event {}: unknown market {}", i + 1, event.symbol());
        };
        book.apply(event);
    }
    let mut symbols: Vec<_> = books.keys().cloned().collect();
    symbols.sort();
    for s in symbols {
        let b = &books[&s];
        if b.events_applied() == 0 {
            continue;
        }
        let view = serde_json::json!({
            "symbol": s,
            "events_applied": b.events_applied(),
            "last_trade_id": b.last_trade_id(),
            "last_price": b.last_price(),
            "depth": b.depth(depth),
            "resting_orders": b.resting_orders(),
            "stop_orders": b.stop_orders(),
        });
        println!("{}", serde_json::to_string_pretty(&view)?);
    }
    Ok(())
}

fn report(result: Result<Stats, SimulationFailure>, out: &Path, name: &str) -> anyhow::Result<()> {
    match result {
        Ok(s) => {
            println!(
                "ok: {} commands, {} events, {} trades, {} rejections, {} stops fired; every invariant held",
                s.commands, s.events, s.trades, s.rejections, s.stops_fired
            );
            Ok(())
        }
        Err(f) => {
            std::fs::create_dir_all(out)?;
            let commands = out.join(format!("{name}.commands.jsonl"));
            let events = out.join(format!("{name}.events.jsonl"));
            write_lines(
                &commands,
                f.commands
                    .iter()
                    .map(|c| serde_json::to_string(c).expect("serialisable")),
            )?;
            write_lines(&events, f.events.iter().map(Event::to_json))?;
            eprintln!("{} (after {} commands)", f.violation, f.commands.len());
            eprintln!(
                "commands: {}\nevents:   {}",
                commands.display(),
                events.display()
            );
            eprintln!(
                "replay the failure:  orderbook check < {}",
                commands.display()
            );
            eprintln!(
                "inspect the book:    orderbook replay < {}",
                events.display()
            );
            eprintln!(
                "keep it as a test:   cp {} orderbook/tests/regressions/",
                commands.display()
            );
            bail!("invariant broken")
        }
    }
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    for l in lines {
        writeln!(w, "{l}")?;
    }
    w.flush()?;
    Ok(())
}
