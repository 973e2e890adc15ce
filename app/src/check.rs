//! `exchange check`: what an operator runs to prove the log is sound. It
//! folds the whole log of a data folder (the embedded store, opened by
//! itself: no server may be running on it) or of a store at a connection
//! string (which may be live), prints every broken ledger rule with its
//! account, asset and the event that broke it, and says whether any broke.
//! The fold and the rules are `server::audit`'s; this is their command.

use std::io::Write;

use crate::server::audit::{Audit, audit};
use crate::server::{Settings, SettingsError, StartError, streams::StreamError};
use crate::store_flags::StoreFlags;

/// Why the check could not be made (which is not a finding: nothing was
/// proved either way).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Open(#[from] StartError),
    #[error("cannot read the log: {0}")]
    Read(#[from] StreamError),
    #[error("cannot write the report: {0}")]
    Report(#[from] std::io::Error),
}

/// Checks the log and writes the report to `out`: one line per broken
/// rule, then a summary. Returns what was found.
pub async fn check(store: StoreFlags, out: &mut impl Write) -> Result<Audit, CheckError> {
    let settings = Settings::load(&store.config)?;
    let (client, embedded) = store.connection().open().await?;
    let audited = audit(&client, &settings.markets).await;
    if let Some(store) = embedded
        && let Err(e) = store.stop().await
    {
        tracing::warn!("stopping the embedded store: {e}");
    }
    let audited = audited?;
    for finding in &audited.findings {
        writeln!(out, "violation: {finding}")?;
    }
    let reached = audited
        .reached
        .map(|p| format!("$all {}/{}", p.commit, p.prepare))
        .unwrap_or_else(|| "an empty store".into());
    writeln!(
        out,
        "{} events folded up to {reached}: {}",
        audited.events,
        match audited.findings.len() {
            0 => "every ledger rule holds".to_string(),
            n => format!("{n} broken"),
        }
    )?;
    Ok(audited)
}
