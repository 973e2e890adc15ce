//! `exchange check`: what an operator runs to prove the log is sound. It
//! folds the whole log of a data folder (the embedded store, opened by
//! itself: no server may be running on it) or of a store at a connection
//! string (which may be live), prints every broken ledger rule with its
//! account, asset and the event that broke it, and says whether any broke.
//! The fold and the rules are `server::audit`'s; this is their command.
//! It then compares each market's stored book snapshots (of
//! `--snapshot-every`) with the fold of its stream, with the rule and the
//! reader the server uses (`server::book_snapshots`): a snapshot that
//! differs breaks a rule (a replay from it would show a wrong book), one
//! that replays pass over is reported. Last, the start snapshot a start
//! would take is compared with the fold of the log up to its position
//! (`server::start_snapshots`): one that differs breaks a rule too.

use std::io::Write;

use crate::server::audit::{Audit, audit};
use crate::server::book_snapshots::{self, SnapshotsChecked};
use crate::server::start_snapshots::{self, StartSnapshotChecked};
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

/// What the check found.
#[derive(Debug)]
pub struct Checked {
    /// The ledger's rules over the whole log.
    pub audit: Audit,
    /// Each market's stored snapshots, by symbol.
    pub snapshots: Vec<(String, SnapshotsChecked)>,
    /// The start snapshot a start would take.
    pub start_snapshot: StartSnapshotChecked,
}

impl Checked {
    /// Whether every rule holds: no ledger rule broke and no snapshot
    /// differs from its fold.
    pub fn passed(&self) -> bool {
        self.audit.findings.is_empty()
            && self.snapshots.iter().all(|(_, s)| s.differ.is_empty())
            && !matches!(self.start_snapshot, StartSnapshotChecked::Differs(_))
    }
}

/// Checks the log and writes the report to `out`: one line per broken
/// rule, each market's snapshots, then the ledger's summary as the last
/// line. Returns what was found.
pub async fn check(store: StoreFlags, out: &mut impl Write) -> Result<Checked, CheckError> {
    let settings = Settings::load(&store.config)?;
    let every = store.snapshot_every;
    let (client, embedded) = store.connection().open().await?;
    let audited = audit(&client, &settings.markets).await;
    let snapshots = async {
        let mut all = Vec::new();
        for market in &settings.markets {
            let checked = book_snapshots::check(&client, market, every).await?;
            all.push((market.symbol.to_string(), checked));
        }
        Ok::<_, StreamError>(all)
    }
    .await;
    let start_snapshot = start_snapshots::check(&client, &settings.markets).await;
    if let Some(store) = embedded
        && let Err(e) = store.stop().await
    {
        tracing::warn!("stopping the embedded store: {e}");
    }
    let (audited, snapshots, start_snapshot) = (audited?, snapshots?, start_snapshot?);
    for finding in &audited.findings {
        writeln!(out, "violation: {finding}")?;
    }
    for (symbol, s) in &snapshots {
        for line in &s.differ {
            writeln!(out, "violation: snapshot {line}")?;
        }
        for line in &s.passed_over {
            writeln!(out, "snapshot passed over by replays: {line}")?;
        }
        writeln!(
            out,
            "snapshots of {symbol} (every {every} events): {} equal to the fold, {} not written, {} passed over, {} differ",
            s.equal,
            s.missing,
            s.passed_over.len(),
            s.differ.len()
        )?;
    }
    match &start_snapshot {
        StartSnapshotChecked::None => writeln!(out, "no start snapshot")?,
        StartSnapshotChecked::Equal(t) => writeln!(
            out,
            "start snapshot at $all {}/{}: equal to the fold",
            t.taken.covers.commit, t.taken.covers.prepare
        )?,
        StartSnapshotChecked::Differs(t) => writeln!(
            out,
            "violation: start snapshot at $all {}/{} differs from the fold of the log up to there",
            t.taken.covers.commit, t.taken.covers.prepare
        )?,
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
    Ok(Checked {
        audit: audited,
        snapshots,
        start_snapshot,
    })
}
