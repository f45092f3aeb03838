//! Turning a restored manifest into what each vertex's subtasks start from.

use std::collections::HashMap;
use std::path::Path;

use rill_state::{KeyedRestoreSource, Manifest, OperatorStateSnapshot, StateError};

use crate::{operator_watermark, JobConfig, Result, RuntimeError};

/// The restored state of one vertex, shared by its subtasks (each takes its part).
#[derive(Debug, Default, Clone)]
pub(crate) struct VertexRestore {
    /// The checkpoint restored (`None`: a fresh start).
    pub(crate) checkpoint: Option<u64>,
    /// Every old subtask's keyed snapshot; a new subtask imports the key groups it owns.
    pub(crate) keyed: Vec<KeyedRestoreSource>,
    /// The union of all old subtasks' operator state.
    pub(crate) union: OperatorStateSnapshot,
}

/// Reads what `manifest` holds for each of `vertex_ids`, from the checkpoint directory `dir`.
///
/// Keyed state belongs to a vertex (its RocksDB snapshots); operator (union) state belongs to an
/// operator uid, wherever the operator runs now, so every vertex gets the union of all of it.
/// State that no vertex or operator of this job claims fails the restore, naming it, unless the
/// job allows non-restored state.
pub(crate) fn load_vertex_restores(
    manifest: &Manifest,
    dir: &Path,
    vertex_ids: &[String],
    operator_uids: &[String],
    config: &JobConfig,
) -> Result<HashMap<String, VertexRestore>> {
    let incompatible = |reason: String| -> RuntimeError {
        StateError::Incompatible { checkpoint: manifest.checkpoint, reason }.into()
    };
    if manifest.max_parallelism != config.max_parallelism {
        return Err(incompatible(format!(
            "it was taken with max parallelism {} but the job has {}",
            manifest.max_parallelism, config.max_parallelism
        )));
    }
    let mut unclaimed = Vec::new();
    let mut keyed: HashMap<String, Vec<KeyedRestoreSource>> = HashMap::new();
    let mut parts = Vec::new();
    for vertex in &manifest.vertices {
        let claimed = vertex_ids.contains(&vertex.vertex);
        for subtask in &vertex.subtasks {
            if let Some(rel) = &subtask.keyed_state_dir {
                if !claimed {
                    unclaimed.push(format!("keyed state of operator chain '{}'", vertex.vertex));
                    break;
                }
                let source = KeyedRestoreSource { dir: dir.join(rel), key_groups: subtask.key_groups };
                keyed.entry(vertex.vertex.clone()).or_default().push(source);
            }
        }
        for subtask in &vertex.subtasks {
            if let Some(rel) = &subtask.operator_state_file {
                let path = dir.join(rel);
                let bytes = std::fs::read(&path).map_err(RuntimeError::io("read operator state", &path))?;
                parts.push(OperatorStateSnapshot::decode(&bytes)?);
            }
        }
    }
    let union = OperatorStateSnapshot::union(parts.iter());
    // An operator's watermark is not state to claim: a stateless operator may go (Flink's rule).
    for key in union.entries.keys().filter(|key| !operator_watermark::is_watermark(key)) {
        let operator = key.split('/').next().unwrap_or(key);
        if !operator_uids.iter().any(|uid| uid == operator) {
            unclaimed.push(format!("state of operator '{operator}'"));
        }
    }
    unclaimed.dedup();
    if !unclaimed.is_empty() {
        if !config.allow_non_restored_state {
            return Err(incompatible(format!(
                "it holds {} which no operator of this job claims (a changed uid, or a removed operator?); \
                 set uids to match, or allow non-restored state to drop it",
                unclaimed.join(", ")
            )));
        }
        for what in &unclaimed {
            tracing::warn!(checkpoint = manifest.checkpoint, "dropping {what}: no operator claims it");
        }
    }
    let mut out = HashMap::new();
    for id in vertex_ids {
        let restore = VertexRestore {
            checkpoint: Some(manifest.checkpoint),
            keyed: keyed.remove(id).unwrap_or_default(),
            union: union.clone(),
        };
        out.insert(id.clone(), restore);
    }
    Ok(out)
}
