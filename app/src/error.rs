//! The one error type server functions return: a message for the trader,
//! and the form field it is about, so the page can show it beside that
//! field. Never a raw error dump.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserError {
    /// The form field at fault (its `name`), if the error is about one.
    pub field: Option<String>,
    pub message: String,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> UserError {
        UserError {
            field: None,
            message: message.into(),
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> UserError {
        UserError {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

impl FromServerFnError for UserError {
    type Encoder = JsonEncoding;

    /// Transport and framework failures, in words.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let message = match value {
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => {
                "could not reach the exchange; check your connection and try again"
            }
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::MissingArg(_)
            | ServerFnErrorErr::Deserialization(_) => "the form was incomplete or malformed",
            _ => "something went wrong on the exchange; please try again",
        };
        UserError::new(message)
    }
}
