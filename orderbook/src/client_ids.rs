//! Client order ids: the name a trader's program gives an order, so it can
//! find or cancel it without waiting for the exchange's id. A client id is
//! unique among one account's open orders in a market: the book refuses a
//! second open order with the same one, and frees it when the order fills
//! or is cancelled (then it may be used again, as on Binance).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::order::{AccountId, OrderId};

/// At most this many characters.
pub const MAX_CLIENT_ORDER_ID_LEN: usize = 36;

/// A trader's own id for an order: 1 to 36 characters of letters, digits
/// and `.:/_-` (Binance's alphabet, so its bots' ids fit).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[expect(
    clippy::box_collection,
    reason = "one word where a String or Box<str> takes two or three"
)]
pub struct ClientOrderId(
    /// A thin pointer (one word where `Box<str>` takes two): every
    /// `OrderAccepted` has room for one, and that word keeps an event within
    /// the size the compiler copies inline (see `Event`).
    Box<String>,
);

/// A client order id that breaks the rules above.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a client order id is 1 to {MAX_CLIENT_ORDER_ID_LEN} characters of letters, digits and . : / _ -"
)]
pub struct BadClientOrderId;

impl ClientOrderId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClientOrderId {
    type Err = BadClientOrderId;

    fn from_str(s: &str) -> Result<ClientOrderId, BadClientOrderId> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".:/_-".contains(c);
        if s.is_empty() || s.len() > MAX_CLIENT_ORDER_ID_LEN || !s.chars().all(allowed) {
            return Err(BadClientOrderId);
        }
        Ok(ClientOrderId(Box::new(s.to_string())))
    }
}

impl TryFrom<String> for ClientOrderId {
    type Error = BadClientOrderId;

    fn try_from(s: String) -> Result<ClientOrderId, BadClientOrderId> {
        s.parse()
    }
}

impl From<ClientOrderId> for String {
    fn from(id: ClientOrderId) -> String {
        *id.0
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client ids of a book's open orders (resting or held for their
/// trigger), both ways round. Only orders placed with one are here, so a
/// book whose traders use none pays one emptiness check per closed order.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientIds {
    by_name: HashMap<(AccountId, ClientOrderId), OrderId>,
    by_order: HashMap<OrderId, (AccountId, ClientOrderId)>,
}

impl ClientIds {
    pub(crate) fn insert(&mut self, account: AccountId, id: ClientOrderId, order: OrderId) {
        self.by_name.insert((account, id.clone()), order);
        self.by_order.insert(order, (account, id));
    }

    /// Forgets a closed order's client id, if it had one.
    pub(crate) fn remove(&mut self, order: OrderId) {
        if self.by_order.is_empty() {
            return;
        }
        if let Some(key) = self.by_order.remove(&order) {
            self.by_name.remove(&key);
        }
    }

    pub(crate) fn order(&self, account: AccountId, id: &ClientOrderId) -> Option<OrderId> {
        // The key is built only to look up; a client id is short.
        self.by_name.get(&(account, id.clone())).copied()
    }

    pub(crate) fn of_order(&self, order: OrderId) -> Option<&ClientOrderId> {
        self.by_order.get(&order).map(|(_, id)| id)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_binances_alphabet_and_length() {
        for good in ["a", "x-TKT5PX2F1b2c3d4e5f6g7h8i9j0k1l", "my.bot:1/leg_2-a"] {
            assert_eq!(good.parse::<ClientOrderId>().unwrap().as_str(), good);
        }
        let too_long = "a".repeat(MAX_CLIENT_ORDER_ID_LEN + 1);
        for bad in ["", "has space", "ünï", "semi;colon", too_long.as_str()] {
            assert_eq!(
                bad.parse::<ClientOrderId>(),
                Err(BadClientOrderId),
                "{bad:?}"
            );
        }
        let json: Result<ClientOrderId, _> = serde_json::from_str("\"a b\"");
        assert!(json.is_err());
    }
}
