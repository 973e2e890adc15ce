//! `store`: the embedded event store as a standalone server, and the tools
//! that check and repair its log without opening it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use store::recovery::{self, LogError, Tail};
use store::{Access, Options, Users};

/// Serves an EventStoreDB-compatible event store over cleartext gRPC.
#[derive(Parser)]
#[command(name = "store", args_conflicts_with_subcommands = true)]
struct StoreCli {
    #[command(subcommand)]
    command: Option<StoreCommand>,
    #[command(flatten)]
    serve: Serve,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Serve the store (what `store` does with no command).
    Serve(Serve),
    /// Check the log without opening the store or changing anything: exit
    /// status 0 if it would open (saying what torn tail it would cut), 1 if
    /// acknowledged data is damaged.
    Verify {
        /// Directory holding the event log.
        #[arg(long, env = "STORE_DATA", default_value = "data/events")]
        data: PathBuf,
    },
    /// Cut the log at POSITION, removing every event from there on, even
    /// acknowledged ones. The one way to get past damage `verify` reports:
    /// give the position it names.
    Repair {
        /// Directory holding the event log.
        #[arg(long, env = "STORE_DATA", default_value = "data/events")]
        data: PathBuf,
        /// Where to cut: the position of a record (or the end of the
        /// readable log), with every record before it readable.
        #[arg(long)]
        truncate_at: u64,
    },
}

#[derive(Args)]
struct Serve {
    /// Address to listen on.
    #[arg(long, env = "STORE_LISTEN", default_value = "127.0.0.1:2113")]
    listen: SocketAddr,
    /// Directory holding the event log.
    #[arg(long, env = "STORE_DATA", default_value = "data/events")]
    data: PathBuf,
    /// Users who may read and write, as `name:password[,name:password]`.
    /// Prefer --users-file: a flag is visible to every process on the
    /// machine.
    #[arg(long, env = "STORE_USERS", hide_env_values = true)]
    users: Option<String>,
    /// A file of users, one `name:password` a line.
    #[arg(long, env = "STORE_USERS_FILE", conflicts_with = "users")]
    users_file: Option<PathBuf>,
    /// Run without users: any process that can reach the address may read
    /// and write every stream. Only on a loopback address, and only when
    /// asked for by this flag (as EventStoreDB's `--insecure`).
    #[arg(long, env = "STORE_INSECURE", conflicts_with_all = ["users", "users_file"])]
    insecure: bool,
}

impl Serve {
    /// The access the flags ask for: their users, or none (insecure) when
    /// `--insecure` says so.
    fn access(&self) -> anyhow::Result<Access> {
        Ok(match (&self.users, &self.users_file) {
            (Some(text), _) => Access::Users(Users::parse(text)?),
            (None, Some(path)) => Access::Users(Users::from_file(path)?),
            (None, None) if self.insecure => Access::Insecure,
            (None, None) => anyhow::bail!(
                "no users given: give --users-file (or --users) naming who may read and write, \
                 or --insecure to let any process that can reach {} do so (loopback only)",
                self.listen
            ),
        })
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = StoreCli::parse();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(StoreCommand::Serve(args)) => serve(args),
        Some(StoreCommand::Verify { data }) => verify(&data),
        Some(StoreCommand::Repair { data, truncate_at }) => repair(&data, truncate_at),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("store: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How long a shutdown waits for clients to close their connections.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[tokio::main]
async fn serve(args: Serve) -> anyhow::Result<ExitCode> {
    let access = args.access()?;
    if matches!(access, Access::Insecure) {
        tracing::warn!(
            "no users given: running insecure, so any process that can reach {} may read and \
             write every stream (give --users or --users-file)",
            args.listen
        );
    }
    let server =
        store::EmbeddedStore::start_with(&args.data, args.listen, Options::default(), access)
            .await?;
    // The line tests and scripts wait for: the store is accepting clients.
    println!(
        "listening on {} ({})",
        server.addr(),
        server.public_connection_string()
    );
    stopped().await?;
    tracing::info!("shutting down: ending subscriptions");
    // Every acknowledged write is already on disk; a client that does not
    // close its connection must not keep the process alive.
    let store = server.store().clone();
    let served = match tokio::time::timeout(SHUTDOWN_GRACE, server.stop()).await {
        Ok(stopped) => stopped,
        Err(_) => {
            tracing::warn!(
                "clients kept their connections open for {SHUTDOWN_GRACE:?}; stopping anyway"
            );
            Ok(())
        }
    };
    // Whichever way serving ended, the log is closed before the process
    // exits, so the next start finds a clean checkpoint.
    store.close().await;
    tracing::info!("stopped: the event log is closed");
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, which service managers and
/// container runtimes send to stop a server.
async fn stopped() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

fn verify(data: &std::path::Path) -> anyhow::Result<ExitCode> {
    match recovery::examine(data, |_| {}) {
        Ok(found) => {
            println!(
                "ok: {} records in {} segments; acknowledged up to position {}, readable up to {}",
                found.records,
                found.segments.len(),
                found.checkpoint,
                found.end
            );
            match found.tail {
                Some(Tail::Torn {
                    file,
                    offset,
                    position,
                    bytes,
                }) => println!(
                    "torn tail: {bytes} bytes after the checkpoint at {} byte offset {offset} \
                     (log position {position}) were never acknowledged; opening the store cuts them",
                    file.display()
                ),
                Some(Tail::Unfinished { file, .. }) => println!(
                    "unfinished segment: {} was being created when the store stopped and holds \
                     no record; opening the store removes it",
                    file.display()
                ),
                None => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ LogError::Corrupt(_)) => {
            println!("damaged: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

fn repair(data: &std::path::Path, position: u64) -> anyhow::Result<ExitCode> {
    let repaired = recovery::repair(data, position)?;
    println!(
        "cut the log at position {position}: {} records kept, {} bytes cut from the segment \
         holding that position, {} later segment files removed",
        repaired.records,
        repaired.cut_bytes,
        repaired.removed.len()
    );
    for file in &repaired.removed {
        println!("removed {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
