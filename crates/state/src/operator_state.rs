//! Operator (non-keyed) state with union redistribution, as sources use for their positions.
//!
//! Each subtask snapshots a list of opaque entries per operator; on restore every subtask
//! receives the union of all subtasks' entries and keeps what belongs to it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Result, StateError};

/// The operator state of one subtask: per operator id, a list of entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorStateSnapshot {
    /// Entries by operator id.
    pub entries: BTreeMap<String, Vec<Vec<u8>>>,
}

impl OperatorStateSnapshot {
    /// Adds entries for an operator.
    pub fn put(&mut self, operator: &str, entries: Vec<Vec<u8>>) {
        self.entries.entry(operator.to_string()).or_default().extend(entries);
    }

    /// Encodes for storage.
    pub fn encode(&self) -> Result<Vec<u8>> {
        bincode::serialize(self).map_err(StateError::codec("operator state"))
    }

    /// Decodes what [`OperatorStateSnapshot::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        bincode::deserialize(bytes).map_err(StateError::codec("operator state"))
    }

    /// The union of several subtasks' snapshots.
    pub fn union<'a>(parts: impl IntoIterator<Item = &'a OperatorStateSnapshot>) -> OperatorStateSnapshot {
        let mut out = OperatorStateSnapshot::default();
        for part in parts {
            for (op, entries) in &part.entries {
                out.put(op, entries.clone());
            }
        }
        out
    }

    /// The entries of one operator (empty if none).
    pub fn get(&self, operator: &str) -> &[Vec<u8>] {
        self.entries.get(operator).map_or(&[], |v| v.as_slice())
    }
}
