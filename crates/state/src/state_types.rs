//! What keys and values of keyed state must be.

use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a key of keyed state must be: hashable (for key groups and the cache) and serializable.
pub trait StateKey: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static {}
impl<T: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static> StateKey for T {}

/// What a value of keyed state must be.
pub trait StateValue: Clone + Serialize + DeserializeOwned + Send + 'static {}
impl<T: Clone + Serialize + DeserializeOwned + Send + 'static> StateValue for T {}
