//! Each operator's current watermark is part of checkpoints: a restored operator starts at the
//! watermark it had at the barrier, so records replayed after a restore are late exactly when
//! they were late before the crash, and a window that fired and was purged is not reopened.

use crate::context::TaskState;
use crate::Watermark;

/// The operator-state key the watermark of operator `uid` is stored under.
fn key(uid: &str) -> String {
    format!("{uid}/{SUFFIX}")
}

const SUFFIX: &str = "__watermark";

/// Whether an operator-state key holds an operator's watermark: no state of its own, so an
/// operator that saved nothing else may be renamed or removed freely.
pub(crate) fn is_watermark(key: &str) -> bool {
    key.split_once('/').is_some_and(|(_, rest)| rest == SUFFIX)
}

/// Stores `watermark` (if any) as operator `uid`'s watermark in the checkpoint being taken.
pub(crate) fn save(st: &mut TaskState, uid: &str, watermark: Option<Watermark>) {
    if let Some(w) = watermark {
        st.snapshot.put(&key(uid), vec![w.timestamp_ms.to_le_bytes().to_vec()]);
    }
}

/// Operator `uid`'s watermark in the restored checkpoint: the minimum over the old subtasks (they
/// agree at an aligned barrier, but the minimum is safe whatever the redistribution).
pub(crate) fn restored(st: &TaskState, uid: &str) -> Option<Watermark> {
    st.restored
        .get(&key(uid))
        .iter()
        .filter_map(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
        .map(|b| Watermark::at(i64::from_le_bytes(b)))
        .min()
}
