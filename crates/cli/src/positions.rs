//! What `show` says about operator state: entries and bytes per operator, and for a Kinesis
//! source each shard's position (the union-state entries of `rill-kinesis-source`, recognized
//! when every entry decodes to a `StateEntry` and encodes back to the same bytes).

use std::fmt::Write as _;

use rill_kinesis_source::{ShardPosition, StartingPoint, StateEntry};
use rill_state::OperatorStateSnapshot;

/// The entries as Kinesis source state, if that is what they are.
fn kinesis_entries(entries: &[Vec<u8>]) -> Option<Vec<StateEntry>> {
    let decoded: Vec<StateEntry> = entries
        .iter()
        .map(|bytes| {
            let entry: StateEntry = bincode::deserialize(bytes).ok()?;
            (bincode::serialize(&entry).ok()? == *bytes).then_some(entry)
        })
        .collect::<Option<_>>()?;
    decoded.iter().any(|e| matches!(e, StateEntry::Marker { .. })).then_some(decoded)
}

fn position(p: &ShardPosition) -> String {
    match p {
        ShardPosition::NotStarted(StartingPoint::TrimHorizon) => "not started (TRIM_HORIZON)".into(),
        ShardPosition::NotStarted(StartingPoint::AtTimestamp { millis }) => {
            format!("not started (AT_TIMESTAMP {millis} ms)")
        }
        ShardPosition::After { sequence_number, sub_sequence: None } => format!("after {sequence_number}"),
        ShardPosition::After { sequence_number, sub_sequence: Some(sub) } => {
            format!("after {sequence_number} sub-record {sub}")
        }
        ShardPosition::Finished => "finished".into(),
    }
}

/// Lines describing one subtask's operator state, indented by four spaces.
pub(crate) fn describe(state: &OperatorStateSnapshot) -> String {
    let mut text = String::new();
    for (operator, entries) in &state.entries {
        let bytes: usize = entries.iter().map(Vec::len).sum();
        let _ = writeln!(text, "    operator {operator}: {} entries, {bytes} bytes", entries.len());
        for entry in kinesis_entries(entries).unwrap_or_default() {
            if let StateEntry::Shard { stream, shard_id, position: p, .. } = entry {
                let _ = writeln!(text, "      kinesis shard {stream}/{shard_id}: {}", position(&p));
            }
        }
    }
    text
}
