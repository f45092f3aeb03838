//! Checkpoint manifests: the one file whose durable presence makes a checkpoint complete.
//!
//! The manifest lists, per operator vertex and subtask, the files of its snapshot with their size
//! and CRC-32, so a torn or corrupted checkpoint is detected before it is restored. On disk it is a
//! header line carrying the CRC-32 of the JSON body, then the body.

use serde::{Deserialize, Serialize};

use crate::{KeyGroupRange, Result, StateError};

const HEADER_PREFIX: &str = "rill-manifest v1 crc32=";

/// The header line (with the body's CRC-32), then the body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{HEADER_PREFIX}{:08x}\n", crc32fast::hash(body)).into_bytes();
    out.extend_from_slice(body);
    out
}

/// One file referenced by a checkpoint, relative to the checkpoint's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Path relative to the checkpoint directory, with `/` separators.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32 (IEEE) of the content.
    pub crc32: u32,
    /// Where the file is kept in object storage, relative to the checkpoint location, when
    /// checkpoints go to an object store (an SST file shared by several checkpoints is stored
    /// once, under `shared/`). `None` for checkpoints kept only on the local disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// What one subtask contributed to a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskSnapshot {
    /// Subtask index.
    pub subtask: usize,
    /// Key groups whose keyed state this snapshot holds.
    pub key_groups: KeyGroupRange,
    /// Directory (relative to the checkpoint) of the RocksDB snapshot, if the subtask has keyed state.
    pub keyed_state_dir: Option<String>,
    /// Path (relative) of the operator-state file, if any.
    pub operator_state_file: Option<String>,
    /// Every file of this subtask's snapshot.
    pub files: Vec<FileDigest>,
    /// The keyed states in the RocksDB snapshot, each with the uid of the operator owning it, so
    /// that a restore gives each operator its own state wherever it runs now. Empty in manifests
    /// written before owners were recorded (their keyed state goes to the chain of the same id).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub keyed_states: std::collections::BTreeMap<String, String>,
}

/// The snapshots of all subtasks of one vertex (a chain of operators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexSnapshot {
    /// Stable vertex id (its position in the job graph plus its name).
    pub vertex: String,
    /// The parallelism the vertex ran at.
    pub parallelism: usize,
    /// One entry per subtask, ordered by subtask index.
    pub subtasks: Vec<SubtaskSnapshot>,
}

/// A complete checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Checkpoint id (the barrier epoch).
    pub checkpoint: u64,
    /// Job name.
    pub job: String,
    /// Number of key groups; fixed for the life of a job.
    pub max_parallelism: u16,
    /// Wall-clock time of completion, milliseconds since the Unix epoch.
    pub completed_at_ms: u64,
    /// Whether this is the last checkpoint of a run: taken after all sources finished, or when
    /// the job was stopped (signal, `POST /api/stop`).
    pub final_checkpoint: bool,
    /// Whether this is a savepoint: taken on request, never deleted by retention (manifests
    /// written before savepoints existed read as `false`).
    #[serde(default)]
    pub savepoint: bool,
    /// Per-vertex snapshots.
    pub vertices: Vec<VertexSnapshot>,
}

impl Manifest {
    /// Serializes with a checksummed header line.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let unencodable = |reason: String| StateError::CorruptCheckpoint {
            checkpoint: self.checkpoint,
            reason: format!("manifest could not be encoded: {reason}"),
        };
        self.check_paths().map_err(unencodable)?;
        let body = serde_json::to_vec_pretty(self).map_err(|e| unencodable(e.to_string()))?;
        Ok(frame(&body))
    }

    /// Checks that every path the manifest names stays inside the checkpoint directory (or the
    /// object store's prefix): relative, made of plain names only, so no `..`, no `.`, no root.
    /// A manifest naming `../../x` or `/etc/x` would make a restore read or download outside it.
    fn check_paths(&self) -> std::result::Result<(), String> {
        let inside = |what: &str, path: &str| -> std::result::Result<(), String> {
            let mut parts = std::path::Path::new(path).components();
            let plain = !path.is_empty()
                && !path.starts_with("./")
                && parts.all(|c| matches!(c, std::path::Component::Normal(_)));
            match plain {
                true => Ok(()),
                false => Err(format!("{what} '{path}' is not a relative path inside the checkpoint")),
            }
        };
        for subtask in self.vertices.iter().flat_map(|v| v.subtasks.iter()) {
            if let Some(dir) = &subtask.keyed_state_dir {
                inside("keyed state directory", dir)?;
            }
            if let Some(file) = &subtask.operator_state_file {
                inside("operator state file", file)?;
            }
            for file in &subtask.files {
                inside("file", &file.path)?;
                if let Some(object) = &file.object {
                    inside("object", object)?;
                }
            }
        }
        Ok(())
    }

    /// Parses and checks a manifest written by [`Manifest::encode`].
    pub fn decode(checkpoint: u64, bytes: &[u8]) -> Result<Manifest> {
        let corrupt = |reason: String| StateError::CorruptCheckpoint { checkpoint, reason };
        let newline = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| corrupt("manifest has no header line (torn write?)".into()))?;
        let header =
            std::str::from_utf8(&bytes[..newline]).map_err(|_| corrupt("manifest header is not UTF-8".into()))?;
        let expected = header
            .strip_prefix(HEADER_PREFIX)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .ok_or_else(|| corrupt(format!("manifest header '{header}' is not recognised")))?;
        let body = &bytes[newline + 1..];
        let actual = crc32fast::hash(body);
        if actual != expected {
            return Err(corrupt(format!("manifest checksum mismatch (header {expected:08x}, body {actual:08x})")));
        }
        let manifest: Manifest =
            serde_json::from_slice(body).map_err(|e| corrupt(format!("manifest body is not valid: {e}")))?;
        if manifest.checkpoint != checkpoint {
            return Err(corrupt(format!(
                "manifest names checkpoint {} but sits in checkpoint {checkpoint}",
                manifest.checkpoint
            )));
        }
        manifest.check_paths().map_err(corrupt)?;
        Ok(manifest)
    }

    /// Every file the checkpoint references.
    pub fn files(&self) -> impl Iterator<Item = &FileDigest> {
        self.vertices.iter().flat_map(|v| v.subtasks.iter()).flat_map(|s| s.files.iter())
    }

    /// Every directory on the path of a file this manifest names, relative to the checkpoint
    /// directory, deepest first, ending with `""` (the checkpoint directory itself): what must be
    /// durable before the manifest is.
    pub fn directories(&self) -> Vec<String> {
        let mut dirs = std::collections::BTreeSet::new();
        for file in self.files() {
            let mut path = std::path::Path::new(&file.path);
            while let Some(parent) = path.parent() {
                dirs.insert(parent.to_string_lossy().into_owned());
                path = parent;
            }
        }
        dirs.insert(String::new());
        let mut dirs: Vec<String> = dirs.into_iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(if d.is_empty() { 0 } else { d.matches('/').count() + 1 }));
        dirs
    }

    /// The snapshot of a vertex, by id.
    pub fn vertex(&self, id: &str) -> Option<&VertexSnapshot> {
        self.vertices.iter().find(|v| v.vertex == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            checkpoint: 7,
            job: "j".into(),
            max_parallelism: 128,
            completed_at_ms: 1,
            final_checkpoint: false,
            savepoint: false,
            vertices: vec![VertexSnapshot {
                vertex: "v0-source".into(),
                parallelism: 1,
                subtasks: vec![SubtaskSnapshot {
                    subtask: 0,
                    key_groups: KeyGroupRange { start: 0, end: 127 },
                    keyed_state_dir: None,
                    operator_state_file: Some("v0-0/operator.bin".into()),
                    files: vec![FileDigest { path: "v0-0/operator.bin".into(), size: 3, crc32: 9, object: None }],
                    keyed_states: Default::default(),
                }],
            }],
        }
    }

    #[test]
    fn manifest_round_trips_through_its_encoding() {
        let m = sample();
        assert_eq!(Manifest::decode(7, &m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn flipped_byte_in_manifest_is_detected() {
        let mut bytes = sample().encode().unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        let err = Manifest::decode(7, &bytes).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn truncated_manifest_is_detected() {
        let bytes = sample().encode().unwrap();
        assert!(Manifest::decode(7, &bytes[..bytes.len() / 2]).is_err());
        assert!(Manifest::decode(7, &bytes[..10]).is_err());
    }

    #[test]
    fn a_manifest_naming_a_path_outside_the_checkpoint_is_corrupt_and_is_never_written() {
        for bad in ["../../etc/passwd", "/etc/passwd", "v0-0/../../x", "./v0-0/x", ""] {
            let mut m = sample();
            m.vertices[0].subtasks[0].files[0].path = bad.into();
            let err = m.encode().unwrap_err().to_string();
            assert!(err.contains("not a relative path inside the checkpoint"), "{bad}: {err}");
            // Written by someone else (a bucket writer), it is read as corrupt, naming the path.
            let bytes = frame(&serde_json::to_vec(&m).unwrap());
            let err = Manifest::decode(7, &bytes).unwrap_err();
            assert!(matches!(err, StateError::CorruptCheckpoint { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(&format!("'{bad}'")), "{bad}: {err}");
        }
        let mut m = sample();
        m.vertices[0].subtasks[0].files[0].object = Some("../other-job/chk-1/x".into());
        assert!(Manifest::decode(7, &frame(&serde_json::to_vec(&m).unwrap())).is_err(), "objects too");
        m.vertices[0].subtasks[0].files[0].object = Some("shared/run1/000007.sst".into());
        assert_eq!(Manifest::decode(7, &m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn manifest_in_the_wrong_checkpoint_is_rejected() {
        let bytes = sample().encode().unwrap();
        assert!(Manifest::decode(8, &bytes).is_err());
    }
}
