//! The one error type server functions return: a message for the trader,
//! and the form field it is about, so the page can show it beside that
//! field. Never a raw error dump.
//!
//! Made while a server function runs, an error also sets the HTTP status
//! of its answer: 4xx for what the caller can change (bad input 400, not
//! logged in 401, no such market 404), 5xx only for the exchange's own
//! faults, so clients, proxies and logs can tell the two apart.

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
    /// A mistake in the request (bad input, a refused action): 400.
    pub fn new(message: impl Into<String>) -> UserError {
        UserError::answering(400, None, message)
    }

    /// A mistake in one field of a form: 400.
    pub fn field(field: &str, message: impl Into<String>) -> UserError {
        UserError::answering(400, Some(field), message)
    }

    /// An error whose answer carries `status` (while a server function or
    /// a page is being answered on the server; elsewhere there is none).
    pub fn answering(status: u16, field: Option<&str>, message: impl Into<String>) -> UserError {
        #[cfg(feature = "ssr")]
        if let (Some(answer), Ok(status)) = (
            leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
            axum::http::StatusCode::from_u16(status),
        ) {
            answer.set_status(status);
        }
        #[cfg(not(feature = "ssr"))]
        let _ = status;
        UserError {
            field: field.map(str::to_string),
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
        let (status, message) = match value {
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => (
                503,
                "could not reach the exchange; check your connection and try again",
            ),
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::MissingArg(_)
            | ServerFnErrorErr::Deserialization(_) => (400, "the form was incomplete or malformed"),
            _ => (
                500,
                "something went wrong on the exchange; please try again",
            ),
        };
        UserError::answering(status, None, message)
    }
}
