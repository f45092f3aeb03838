//! Turning a restored manifest into what each vertex's subtasks start from.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rill_state::{FileDigest, KeyGroupRange, KeyedRestoreSource, Manifest, OperatorStateSnapshot, StateError};

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
    /// The files (with their objects) of each old subtask snapshot taken whole, by key groups: a
    /// new subtask owning the same key groups starts from a copy of it and names its unchanged
    /// files' objects again instead of uploading them.
    pub(crate) reusable: Vec<(KeyGroupRange, Vec<FileDigest>)>,
}

/// Reads what `manifest` holds for each of `vertex_ids`, from the checkpoint directory `dir`.
///
/// State belongs to operator uids, wherever the operator runs now: each keyed state goes to the
/// chain (vertex) that holds its owner now (`chain_of`: operator uid to vertex id), taking from
/// an old subtask's snapshot only the states of its own operators; operator (union) state goes
/// to every vertex. Keyed state from a manifest that recorded no owners goes to the vertex of
/// the same id. State that no vertex or operator of this job (`operator_uids`, sources and
/// sinks included) claims fails the restore, naming it, unless the job allows non-restored state.
pub(crate) fn load_vertex_restores(
    manifest: &Manifest,
    dir: &Path,
    vertex_ids: &[String],
    operator_uids: &[String],
    chain_of: &HashMap<String, String>,
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
    let mut reusable: HashMap<String, Vec<(KeyGroupRange, Vec<FileDigest>)>> = HashMap::new();
    let mut whole = |chain: &String, key_groups: KeyGroupRange, files: &[FileDigest]| {
        reusable.entry(chain.clone()).or_default().push((key_groups, files.to_vec()));
    };
    let mut parts = Vec::new();
    for vertex in &manifest.vertices {
        let same_vertex = vertex_ids.contains(&vertex.vertex).then_some(&vertex.vertex);
        for subtask in &vertex.subtasks {
            let Some(rel) = &subtask.keyed_state_dir else { continue };
            let source = KeyedRestoreSource::new(dir.join(rel), subtask.key_groups);
            if subtask.keyed_states.is_empty() {
                match same_vertex {
                    Some(id) => {
                        whole(id, subtask.key_groups, &subtask.files);
                        keyed.entry(id.clone()).or_default().push(source)
                    }
                    None => unclaimed.push(format!("keyed state of operator chain '{}'", vertex.vertex)),
                }
                continue;
            }
            let mut by_chain: BTreeMap<&String, BTreeMap<String, String>> = BTreeMap::new();
            for (state, owner) in &subtask.keyed_states {
                // A state registered without an owner stays with the chain of the same id.
                let chain = if owner.is_empty() { same_vertex } else { chain_of.get(owner) };
                match chain {
                    Some(chain) => {
                        by_chain.entry(chain).or_default().insert(state.clone(), owner.clone());
                    }
                    None if owner.is_empty() => {
                        unclaimed.push(format!("keyed state '{state}' of operator chain '{}'", vertex.vertex))
                    }
                    None => unclaimed.push(format!("keyed state of operator '{owner}'")),
                }
            }
            let partial =
                by_chain.len() > 1 || by_chain.values().map(BTreeMap::len).sum::<usize>() < subtask.keyed_states.len();
            for (chain, states) in by_chain {
                if !partial {
                    whole(chain, subtask.key_groups, &subtask.files);
                }
                let taken = KeyedRestoreSource { states, partial, ..source.clone() };
                keyed.entry(chain.clone()).or_default().push(taken);
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
    unclaimed.sort_unstable();
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
            reusable: reusable.remove(id).unwrap_or_default(),
        };
        out.insert(id.clone(), restore);
    }
    Ok(out)
}
