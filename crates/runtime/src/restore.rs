//! Turning a restored manifest into what each vertex's subtasks start from.

use std::collections::HashMap;
use std::path::Path;

use rill_state::{KeyedRestoreSource, Manifest, OperatorStateSnapshot, StateError};

use crate::{Result, RuntimeError};

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
pub(crate) fn load_vertex_restores(
    manifest: &Manifest,
    dir: &Path,
    vertex_ids: &[String],
    max_parallelism: u16,
) -> Result<HashMap<String, VertexRestore>> {
    if manifest.max_parallelism != max_parallelism {
        return Err(StateError::Incompatible {
            checkpoint: manifest.checkpoint,
            reason: format!(
                "it was taken with max parallelism {} but the job has {max_parallelism}",
                manifest.max_parallelism
            ),
        }
        .into());
    }
    let mut out = HashMap::new();
    for vertex in &manifest.vertices {
        if !vertex_ids.contains(&vertex.vertex) {
            return Err(StateError::Incompatible {
                checkpoint: manifest.checkpoint,
                reason: format!(
                    "it holds state for operator chain '{}' which this job does not have (job graph changed?)",
                    vertex.vertex
                ),
            }
            .into());
        }
        let mut restore = VertexRestore { checkpoint: Some(manifest.checkpoint), ..VertexRestore::default() };
        let mut parts = Vec::new();
        for subtask in &vertex.subtasks {
            if let Some(rel) = &subtask.keyed_state_dir {
                restore.keyed.push(KeyedRestoreSource { dir: dir.join(rel), key_groups: subtask.key_groups });
            }
            if let Some(rel) = &subtask.operator_state_file {
                let path = dir.join(rel);
                let bytes = std::fs::read(&path).map_err(RuntimeError::io("read operator state", &path))?;
                parts.push(OperatorStateSnapshot::decode(&bytes)?);
            }
        }
        restore.union = OperatorStateSnapshot::union(parts.iter());
        out.insert(vertex.vertex.clone(), restore);
    }
    Ok(out)
}
