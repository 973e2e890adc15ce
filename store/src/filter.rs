//! Server-side filters of `$all` reads and subscriptions.
//!
//! Expressions are EventStoreDB's: .NET regular expressions, matched
//! anywhere in the stream name or event type. `fancy-regex` takes the
//! syntax clients send, look-ahead and look-behind included (the Python
//! client excludes system events with `^(?!(\$.+|...)$)`-style patterns).

use tonic::Status;

use crate::proto::streams::read_req::options::{FilterOptions, filter_options};
use crate::record::StoredEvent;

/// What a filter matches on, and how.
pub struct Filter {
    on_type: bool,
    regex: Option<fancy_regex::Regex>,
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
                fancy_regex::Regex::new(&expr.regex)
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
            // A match that exhausts the backtracking limit counts as none.
            Some(r) => std::str::from_utf8(subject).is_ok_and(|s| r.is_match(s).unwrap_or(false)),
            None => {
                self.prefixes.is_empty() || self.prefixes.iter().any(|p| subject.starts_with(p))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::proto::streams::read_req::options::filter_options::Expression;

    fn on_type(regex: &str) -> Filter {
        Filter::from_options(&FilterOptions {
            filter: Some(filter_options::Filter::EventType(Expression {
                regex: regex.into(),
                prefix: vec![],
            })),
            window: None,
            checkpoint_interval_multiplier: 1,
        })
        .unwrap()
    }

    fn typed(event_type: &'static str) -> StoredEvent {
        StoredEvent {
            position: 0,
            stream: Bytes::from_static(b"s"),
            revision: 0,
            id: 0,
            event_type: Bytes::from_static(event_type.as_bytes()),
            is_json: true,
            created: 0,
            custom_metadata: Bytes::new(),
            data: Bytes::new(),
        }
    }

    #[test]
    fn look_ahead_and_look_behind_filters_work_as_on_eventstoredb() {
        // How clients leave system and snapshot events out.
        let exclude = on_type(r"^(?!(\$.+|PersistentConfig\d+|.*Snapshot)$).*");
        assert!(exclude.matches(&typed("TradeExecuted")));
        assert!(!exclude.matches(&typed("$metadata")));
        assert!(!exclude.matches(&typed("PersistentConfig1")));
        assert!(!exclude.matches(&typed("BookSnapshot")));
        let behind = on_type(r"(?<=Trade)Executed$");
        assert!(behind.matches(&typed("TradeExecuted")));
        assert!(!behind.matches(&typed("OrderExecuted")));
        // Matched anywhere, like .NET's Regex.IsMatch.
        assert!(on_type("Exec").matches(&typed("TradeExecuted")));
    }
}
