//! The exchange server binary: `exchange` serves the site, `exchange
//! check` proves the log's ledger rules.

use clap::Parser;

#[derive(clap::Parser)]
#[command(
    name = "exchange",
    about = "Serves the exchange's web site, or checks its log.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: app::site::Config,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Folds the whole log and checks every ledger rule: prints each broken
    /// one with its account, asset and the event that broke it, and exits
    /// 1 if any broke (2 if the log could not be read).
    Check(app::store_flags::StoreFlags),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => app::site::serve(cli.serve).await?,
        Some(Command::Check(config)) => {
            let code = match app::check::check(config, &mut std::io::stdout()).await {
                Ok(checked) if checked.passed() => 0,
                Ok(_) => 1,
                Err(e) => {
                    eprintln!("exchange check: {e}");
                    2
                }
            };
            std::process::exit(code);
        }
    }
    Ok(())
}
