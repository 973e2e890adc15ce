//! Signing up, logging in and out, and the demo-funds faucet: the server
//! functions and the forms that call them.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::api::AccountView;
use crate::boundary::boundary;
use crate::error::UserError;

/// Opens an account and logs the browser in.
#[server(endpoint = "sign_up")]
pub async fn sign_up(username: String, password: String) -> Result<(), UserError> {
    use crate::site::context::{client_address, exchange, set_session_cookie};
    let address = client_address().await;
    let token = exchange()?
        .sign_up_from(username.trim(), &password, address)
        .await?;
    set_session_cookie(Some(&token));
    Ok(())
}

#[server(endpoint = "log_in")]
pub async fn log_in(username: String, password: String) -> Result<(), UserError> {
    use crate::site::context::{client_address, current_trader, exchange, set_session_cookie};
    let address = client_address().await;
    let session = current_trader().map(|t| t.account);
    let token = exchange()?
        .log_in_from(username.trim(), &password, address, session)
        .await?;
    set_session_cookie(Some(&token));
    Ok(())
}

/// Ends every session of the caller's account, this one included.
#[server(endpoint = "log_out_everywhere")]
pub async fn log_out_everywhere() -> Result<(), UserError> {
    use crate::site::context::{current_trader, exchange, set_session_cookie};
    if let Some(trader) = current_trader() {
        exchange()?.log_out_everywhere(&trader.session).await?;
    }
    set_session_cookie(None);
    Ok(())
}

#[server(endpoint = "log_out")]
pub async fn log_out() -> Result<(), UserError> {
    use crate::site::context::{current_trader, exchange, set_session_cookie};
    if let Some(trader) = current_trader() {
        exchange()?.log_out(&trader.session).await?;
    }
    set_session_cookie(None);
    Ok(())
}

/// Credits one faucet claim of demo funds.
#[server(endpoint = "claim_faucet")]
pub async fn claim_faucet() -> Result<(), UserError> {
    use crate::site::context::current_account;
    let (exchange, account) = current_account()?;
    exchange.claim_faucet(account).await?;
    Ok(())
}

/// The caller's account, or `None` when the browser is not logged in.
#[server(endpoint = "my_account")]
pub async fn my_account() -> Result<Option<AccountView>, UserError> {
    use crate::site::context::{current_trader, exchange};
    let exchange = exchange()?;
    let trader = current_trader();
    Ok(trader.and_then(|t| exchange.view(t.account)))
}

/// The message of a failed action, if it failed about this field (or about
/// no field, for `None`).
pub fn error_for<T, S>(
    value: S,
    field: Option<&'static str>,
) -> impl Fn() -> Option<String> + Copy + Send + Sync + 'static
where
    T: Clone + Send + Sync + 'static,
    S: Get<Value = Option<Result<T, UserError>>> + Copy + Send + Sync + 'static,
{
    move || {
        value
            .get()
            .and_then(|r| r.err())
            .filter(|e| e.field.as_deref() == field)
            .map(|e| e.message)
    }
}

/// Sends a submitted form's fields to its server function (a form posting
/// to the function's URL, so it works before the script loads too). This
/// is what Leptos's `ActionForm` does, without taking the form's fields as
/// type-erased children: erased, each form's fields carried a second,
/// asynchronous copy of their hydration code in the bundle.
pub fn submit_to<S>(action: ServerAction<S>, ev: &leptos::ev::SubmitEvent)
where
    S: leptos::server_fn::ServerFn + leptos::form::FromFormData + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
    S::Error: Clone + Send + Sync + 'static,
{
    ev.prevent_default();
    match S::from_event(ev) {
        Ok(input) => {
            action.dispatch(input);
        }
        Err(e) => leptos::logging::error!("a form did not fit its server function: {e}"),
    }
}

/// Sign-up and log-in forms, side by side.
#[component]
pub fn AuthForms(sign_up: ServerAction<SignUp>, log_in: ServerAction<LogIn>) -> impl IntoView {
    let up = sign_up.value();
    let inn = log_in.value();
    boundary(view! {
        <div class="auth">
            <form action=SignUp::url() method="post" on:submit=move |ev| submit_to(sign_up, &ev)>
                <h3>"Create an account"</h3>
                <label for="signup-username">"Username"</label>
                <input id="signup-username" name="username" autocomplete="username" required
                    aria-describedby="signup-username-error" />
                <p id="signup-username-error" class="field-error" role="alert">{error_for(up, Some("username"))}</p>
                <label for="signup-password">"Password"</label>
                <input id="signup-password" name="password" type="password" autocomplete="new-password" required
                    aria-describedby="signup-password-error" />
                <p id="signup-password-error" class="field-error" role="alert">{error_for(up, Some("password"))}</p>
                <button type="submit">"Sign up"</button>
                <p class="form-error" role="alert">{error_for(up, None)}</p>
            </form>
            <form action=LogIn::url() method="post" on:submit=move |ev| submit_to(log_in, &ev)>
                <h3>"Log in"</h3>
                <label for="login-username">"Username"</label>
                <input id="login-username" name="username" autocomplete="username" required />
                <label for="login-password">"Password"</label>
                <input id="login-password" name="password" type="password" autocomplete="current-password" required />
                <button type="submit">"Log in"</button>
                <p class="form-error" role="alert">{error_for(inn, None)}</p>
            </form>
        </div>
    })
}
