//! Locks whose holder panicked stay usable.
//!
//! Every lock in the server guards state that one task writes and others
//! read (a published book, the ledger, a projection). Writers change it in
//! one step from one consistent value to the next, so a panic elsewhere
//! while holding the lock cannot leave it half-changed; a supervised task
//! that panicked is restarted from its events and publishes afresh. So a
//! poisoned lock is taken as it is instead of spreading the panic to every
//! reader.

use std::sync::{LockResult, PoisonError};

/// The guard of a lock, poisoned or not: `unpoisoned(lock.read())`.
pub fn unpoisoned<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(PoisonError::into_inner)
}
