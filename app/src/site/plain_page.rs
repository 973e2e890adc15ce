//! The shell of the site's plain pages (`/history`, `/keys`): HTML the
//! server renders with no script at all, one trader's own, never cached.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;

/// A whole page: `heading` over `body`, with a way back to trading,
/// answered with `status`.
pub fn page(status: StatusCode, title: &str, heading: &str, body: AnyView) -> Response {
    let (title, heading) = (format!("{title} · Satoshi Exchange"), heading.to_string());
    let document = view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="dark" />
                <title>{title}</title>
                <link rel="stylesheet" href="/pkg/exchange.css" />
            </head>
            <body>
                <main class="history">
                    <div class="history-head">
                        <h1>{heading}</h1>
                        <a href="/">"Back to trading"</a>
                    </div>
                    {body}
                </main>
            </body>
        </html>
    };
    let html = Owner::new().with(|| document.to_html());
    let mut response = (status, axum::response::Html(html)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // No script of any kind runs on these pages.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    response
}
