//! A value the server sends to many browsers at once (one market's depth,
//! its ticker, a trade), with its JSON made once for all of them.
//!
//! At 10,000 viewers each depth publication was encoded 10,000 times, one
//! copy per socket, and that encoding was most of what the server spent per
//! message. A [`SharedJson`] keeps the value behind an `Arc` as before and,
//! on the server, remembers the JSON the first socket made: the others
//! copy those bytes into their message instead of encoding the value again.
//! What goes over the wire is exactly the value's own JSON, so the browser
//! reads it as the plain value.
//!
//! The remembered form is JSON: a `SharedJson` is only ever sent as JSON
//! (the feed's messages are). The browser keeps no such copy.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// See the module docs. Cheap to clone; equal when the values are.
pub struct SharedJson<T>(Arc<Inner<T>>);

struct Inner<T> {
    value: T,
    /// The value's JSON, made the first time it is sent.
    #[cfg(feature = "ssr")]
    json: std::sync::OnceLock<Option<Box<serde_json::value::RawValue>>>,
}

impl<T> SharedJson<T> {
    pub fn new(value: T) -> SharedJson<T> {
        SharedJson(Arc::new(Inner {
            value,
            #[cfg(feature = "ssr")]
            json: std::sync::OnceLock::new(),
        }))
    }

    /// The value: moved out when this is its last holder (as in the
    /// browser, which keeps no other), cloned otherwise.
    pub fn into_value(self) -> T
    where
        T: Clone,
    {
        Arc::try_unwrap(self.0).map_or_else(|shared| shared.value.clone(), |inner| inner.value)
    }

    /// Whether both are the same shared value (not merely equal ones).
    pub fn ptr_eq(a: &SharedJson<T>, b: &SharedJson<T>) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T> Deref for SharedJson<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T> Clone for SharedJson<T> {
    fn clone(&self) -> Self {
        SharedJson(self.0.clone())
    }
}

impl<T: PartialEq> PartialEq for SharedJson<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.value == other.0.value
    }
}

impl<T: Eq> Eq for SharedJson<T> {}

impl<T: fmt::Debug> fmt::Debug for SharedJson<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.value.fmt(f)
    }
}

impl<T: Default> Default for SharedJson<T> {
    fn default() -> Self {
        SharedJson::new(T::default())
    }
}

impl<T: Serialize> Serialize for SharedJson<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[cfg(feature = "ssr")]
        {
            let json = self
                .0
                .json
                .get_or_init(|| serde_json::value::to_raw_value(&self.0.value).ok());
            if let Some(json) = json {
                return json.serialize(serializer);
            }
        }
        self.0.value.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SharedJson<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(SharedJson::new)
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Sent as JSON, a shared value reads back as the plain value, the
    /// second time (from the remembered bytes) as the first; inside a
    /// message, exactly as the plain value would have been written.
    #[test]
    fn a_shared_value_is_written_as_the_value_itself() {
        let value: BTreeMap<String, Vec<String>> = [(
            "asks".to_string(),
            vec!["30000.5".to_string(), "0.25".to_string()],
        )]
        .into();
        let shared = SharedJson::new(value.clone());
        let plain = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::to_string(&shared).unwrap(), plain);
        assert_eq!(serde_json::to_string(&shared.clone()).unwrap(), plain);
        let nested = serde_json::to_string(&(1, &shared, "x")).unwrap();
        assert_eq!(nested, serde_json::to_string(&(1, &value, "x")).unwrap());
        let read: SharedJson<BTreeMap<String, Vec<String>>> =
            serde_json::from_str(&nested[3..nested.len() - 5]).unwrap();
        assert_eq!(*read, value);
        // Into a `serde_json::Value` too (as a test reads a message).
        assert_eq!(
            serde_json::to_value(&shared).unwrap(),
            serde_json::to_value(&value).unwrap()
        );
    }
}
