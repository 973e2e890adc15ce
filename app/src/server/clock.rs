//! The server's one clock. The pure crates take time as input; this is where
//! the shell reads it, so every command and view is stamped the same way.

/// Microseconds since the Unix epoch: the clock commands are stamped with.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Milliseconds since the Unix epoch: the clock the views are stamped with.
pub fn now_ms() -> u64 {
    now_micros() / 1000
}
