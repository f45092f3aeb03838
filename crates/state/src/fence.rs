//! Fencing of a checkpoint location by generations, so that of two runs writing one location
//! (a rolling update starts the new pod before it stops the old one) only the newest commits.
//!
//! A small head object, `_generation` at the location's root, names the generation that owns the
//! location and the last checkpoint it completed (or is completing). Every write to it is
//! conditional on the version read (S3's `If-Match`, `If-None-Match: *` for the first):
//!
//! 1. A run **claims** the location before it touches anything: it replaces the head with the
//!    next generation. Of two runs claiming at once, one conflicts and claims again, above the
//!    other: the newest run wins.
//! 2. Before writing a checkpoint's manifest, the owner **advances** the head to name that
//!    checkpoint, conditionally: a run whose head was replaced fails here, fenced, before its
//!    manifest exists.
//! 3. A checkpoint the previous owner had advanced to may still get its manifest after the claim
//!    (its put was in flight). The claimant settles it at once: it puts an abort marker into the
//!    manifest's slot unless a manifest is there. Either the manifest landed first (the checkpoint
//!    is complete, and the claimant may restore it) or the marker did (the old owner's manifest
//!    put fails, fenced).
//! 4. After a manifest, the owner **verifies** the head before it tells sinks to commit or
//!    deletes anything.

use std::sync::{Arc, Mutex};

use rill_storage::{ObjectVersion, RemoteLocation, UpdateOutcome};

use crate::{Result, StateError};

/// The head object, at the root of the checkpoint location.
pub const HEAD_OBJECT: &str = "_generation";

/// What an abort marker in a manifest's slot starts with: no manifest, the checkpoint never
/// completed.
pub(crate) const ABORTED_MANIFEST: &[u8] = b"rill: aborted: ";

/// How often a claim is tried again when the head changed between its read and its write.
const CLAIM_ATTEMPTS: usize = 20;

/// The head's content: which generation owns the location, and the last checkpoint it advanced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The owning generation (from 1).
    pub generation: u64,
    /// The last checkpoint this generation completed or is completing, if any.
    pub checkpoint: Option<u64>,
}

impl Head {
    /// The head as stored: a few `key=value` lines, readable with any object browser.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!("rill checkpoint location head\ngeneration={}\n", self.generation);
        if let Some(id) = self.checkpoint {
            text.push_str(&format!("checkpoint={id}\n"));
        }
        text.into_bytes()
    }

    /// Reads a stored head; `None` if it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Head> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != "rill checkpoint location head" {
            return None;
        }
        let mut head = Head { generation: 0, checkpoint: None };
        for line in lines {
            match line.split_once('=')? {
                ("generation", n) => head.generation = n.parse().ok()?,
                ("checkpoint", n) => head.checkpoint = Some(n.parse().ok()?),
                _ => return None,
            }
        }
        (head.generation > 0).then_some(head)
    }
}

/// The abort marker a claim of `generation` puts into an unwritten manifest's slot.
pub(crate) fn aborted_manifest(generation: u64) -> Vec<u8> {
    let mut marker = ABORTED_MANIFEST.to_vec();
    marker.extend_from_slice(
        format!("generation {generation} claimed the location before this manifest was written\n").as_bytes(),
    );
    marker
}

#[derive(Debug, Clone)]
struct Claim {
    generation: u64,
    /// The version of the head as this run last wrote (or verified) it.
    version: ObjectVersion,
}

/// One run's hold on a checkpoint location.
#[derive(Debug)]
pub(crate) struct Fence {
    location: Arc<RemoteLocation>,
    claim: Mutex<Option<Claim>>,
}

/// A claim just made: this run's generation, and the checkpoint the previous owner had last
/// advanced to (its manifest may still be on its way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claimed {
    pub generation: u64,
    pub previous_checkpoint: Option<u64>,
}

impl Fence {
    pub(crate) fn new(location: Arc<RemoteLocation>) -> Self {
        Fence { location, claim: Mutex::new(None) }
    }

    fn held(&self) -> Option<Claim> {
        self.claim.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn hold(&self, claim: Claim) {
        *self.claim.lock().unwrap_or_else(|p| p.into_inner()) = Some(claim);
    }

    fn read_head(&self) -> Result<Option<(Head, ObjectVersion)>> {
        let Some((bytes, version)) = self.location.get_versioned(HEAD_OBJECT)? else { return Ok(None) };
        let head = Head::decode(&bytes).ok_or_else(|| StateError::BadHead {
            location: self.location.url_of(HEAD_OBJECT),
            reason: "not a rill checkpoint location head".into(),
        })?;
        Ok(Some((head, version)))
    }

    fn fenced(&self, ours: u64, newer: Option<u64>) -> StateError {
        StateError::Fenced { location: self.location.url().to_string(), generation: ours, newer }
    }

    /// Claims the location for a new generation, above every earlier one. `None` if this fence
    /// holds a claim already (then it is verified instead).
    pub(crate) fn claim(&self) -> Result<Option<Claimed>> {
        if self.held().is_some() {
            self.verify()?;
            return Ok(None);
        }
        for _ in 0..CLAIM_ATTEMPTS {
            let (head, version) = match self.read_head()? {
                None => {
                    let head = Head { generation: 1, checkpoint: None };
                    match self.location.create_versioned(HEAD_OBJECT, head.encode())? {
                        Some(version) => (head, version),
                        None => continue,
                    }
                }
                Some((previous, version)) => {
                    let head = Head { generation: previous.generation + 1, checkpoint: None };
                    match self.location.put_if_version(HEAD_OBJECT, head.encode(), &version)? {
                        UpdateOutcome::Updated(version) => {
                            self.hold(Claim { generation: head.generation, version });
                            return Ok(Some(Claimed {
                                generation: head.generation,
                                previous_checkpoint: previous.checkpoint,
                            }));
                        }
                        UpdateOutcome::Conflict => continue,
                    }
                }
            };
            self.hold(Claim { generation: head.generation, version });
            return Ok(Some(Claimed { generation: head.generation, previous_checkpoint: None }));
        }
        Err(StateError::BadHead {
            location: self.location.url_of(HEAD_OBJECT),
            reason: format!("it changed under each of {CLAIM_ATTEMPTS} claims"),
        })
    }

    /// Advances the head to name `checkpoint`, if this run still owns the location (claiming it
    /// first if it never did); fails with [`StateError::Fenced`] if a newer run claimed it.
    pub(crate) fn advance(&self, checkpoint: u64) -> Result<()> {
        if self.held().is_none() {
            self.claim()?;
        }
        let Some(claim) = self.held() else { return Err(self.fenced(0, None)) };
        let head = Head { generation: claim.generation, checkpoint: Some(checkpoint) };
        let mut version = claim.version.clone();
        // Twice at most: a conflict with a head of this run's own generation means an earlier
        // put of its own landed and its answer was lost (only this run writes its generation).
        for _ in 0..2 {
            match self.location.put_if_version(HEAD_OBJECT, head.encode(), &version)? {
                UpdateOutcome::Updated(version) => {
                    self.hold(Claim { version, ..claim });
                    return Ok(());
                }
                UpdateOutcome::Conflict => match self.read_head()? {
                    Some((found, found_version)) if found.generation == claim.generation => {
                        if found == head {
                            self.hold(Claim { version: found_version, ..claim });
                            return Ok(());
                        }
                        version = found_version;
                    }
                    Some((found, _)) => return Err(self.fenced(claim.generation, Some(found.generation))),
                    None => return Err(self.fenced(claim.generation, None)),
                },
            }
        }
        Err(StateError::BadHead {
            location: self.location.url_of(HEAD_OBJECT),
            reason: format!("it changed under two writes of this run's own generation {}", claim.generation),
        })
    }

    /// Checks that this run still owns the location (one read of the head).
    pub(crate) fn verify(&self) -> Result<()> {
        let Some(claim) = self.held() else { return Ok(()) };
        match self.read_head()? {
            Some((found, version)) if found.generation == claim.generation => {
                // Only this run writes heads of its generation: what is there is its own.
                self.hold(Claim { version, ..claim });
                Ok(())
            }
            Some((found, _)) => Err(self.fenced(claim.generation, Some(found.generation))),
            None => Err(self.fenced(claim.generation, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn location(store: &Arc<InMemory>) -> Arc<RemoteLocation> {
        Arc::new(RemoteLocation::from_store("memory://fence", store.clone(), "job").unwrap())
    }

    #[test]
    fn a_head_reads_back_as_written_and_anything_else_is_not_a_head() {
        for head in [Head { generation: 1, checkpoint: None }, Head { generation: 7, checkpoint: Some(42) }] {
            assert_eq!(Head::decode(&head.encode()), Some(head));
        }
        assert_eq!(Head::decode(b"generation=3\n"), None);
        assert_eq!(Head::decode(b"rill checkpoint location head\ngeneration=x\n"), None);
    }

    #[test]
    fn each_claim_takes_the_next_generation_and_names_what_the_previous_one_was_completing() {
        let store = Arc::new(InMemory::new());
        let first = Fence::new(location(&store));
        assert_eq!(first.claim().unwrap(), Some(Claimed { generation: 1, previous_checkpoint: None }));
        first.advance(5).unwrap();
        let second = Fence::new(location(&store));
        assert_eq!(second.claim().unwrap(), Some(Claimed { generation: 2, previous_checkpoint: Some(5) }));
        assert_eq!(second.claim().unwrap(), None, "a second call only verifies");
    }

    #[test]
    fn a_run_whose_location_was_claimed_by_a_newer_run_can_neither_advance_nor_verify() {
        let store = Arc::new(InMemory::new());
        let old = Fence::new(location(&store));
        old.claim().unwrap();
        old.advance(1).unwrap();
        let new = Fence::new(location(&store));
        new.claim().unwrap();
        let fenced = old.advance(2).unwrap_err();
        assert!(matches!(fenced, StateError::Fenced { generation: 1, newer: Some(2), .. }), "{fenced}");
        assert!(matches!(old.verify().unwrap_err(), StateError::Fenced { .. }));
        new.advance(3).unwrap();
        new.verify().unwrap();
    }

    #[test]
    fn a_head_write_whose_answer_was_lost_does_not_fence_its_own_run() {
        let store = Arc::new(InMemory::new());
        let (run, lost_answer) = (Fence::new(location(&store)), Fence::new(location(&store)));
        run.claim().unwrap();
        // The same run's put of checkpoint 1 landed, but it never learnt the new version.
        let stale = run.held().unwrap();
        run.advance(1).unwrap();
        lost_answer.hold(stale);
        lost_answer.advance(2).unwrap();
        lost_answer.verify().unwrap();
    }
}
