//! Server-side filters of `$all` reads and subscriptions.

use tonic::Status;

use crate::proto::streams::read_req::options::{FilterOptions, filter_options};
use crate::record::StoredEvent;

/// What a filter matches on, and how.
pub struct Filter {
    on_type: bool,
    regex: Option<regex_lite::Regex>,
    prefixes: Vec<Vec<u8>>,
    /// Events considered between checkpoints.
    pub checkpoint_interval: u64,
}

impl Filter {
    pub fn from_options(f: &FilterOptions) -> Result<Filter, Status> {
        let (on_type, expr) = match &f.filter {
            Some(filter_options::Filter::StreamIdentifier(e)) => (false, e),
            Some(filter_options::Filter::EventType(e)) => (true, e),
            None => return Err(Status::invalid_argument("filter has no expression")),
        };
        let regex = if expr.regex.is_empty() {
            None
        } else {
            Some(
                regex_lite::Regex::new(&expr.regex)
                    .map_err(|e| Status::invalid_argument(format!("filter regex: {e}")))?,
            )
        };
        let window = match f.window {
            Some(filter_options::Window::Max(n)) if n > 0 => u64::from(n),
            _ => 32,
        };
        Ok(Filter {
            on_type,
            regex,
            prefixes: expr.prefix.iter().map(|p| p.as_bytes().to_vec()).collect(),
            checkpoint_interval: window * u64::from(f.checkpoint_interval_multiplier.max(1)),
        })
    }

    pub fn matches(&self, e: &StoredEvent) -> bool {
        let subject: &[u8] = if self.on_type {
            &e.event_type
        } else {
            &e.stream
        };
        match &self.regex {
            Some(r) => std::str::from_utf8(subject).is_ok_and(|s| r.is_match(s)),
            None => {
                self.prefixes.is_empty() || self.prefixes.iter().any(|p| subject.starts_with(p))
            }
        }
    }
}
