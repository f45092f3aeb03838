//! The running state of one subtask: its tokio runtime, client, owned shards with positions,
//! the reader queue, discovery, gating and event time. Independent of the record type.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::config::{ConsumerSettings, InitialPosition};
use crate::lineage::{known_shards, parent_gate, Gate};
use crate::listing::SharedListing;
use crate::metrics::Stats;
use crate::position::{RestoredShard, RestoredState};
use crate::reader::{Reader, ReaderEvent};
use crate::record::RawRecord;
use crate::registry::Registry;
use crate::shared::Shared;
use crate::watermarks::{ShardWatermarks, SubtaskTime};
use crate::{position, KinesisSourceError, Result, ShardInfo, ShardKey, ShardPosition, StartingPoint};

/// Per-call timeout of Kinesis requests made by the source (a hung call is retried).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// A shard this subtask owns.
#[derive(Debug)]
pub(crate) struct Owned {
    pub(crate) info: ShardInfo,
    /// The position after the last emitted record.
    pub(crate) position: ShardPosition,
    pub(crate) state: OwnedState,
}

/// What is happening to an owned shard.
#[derive(Debug)]
pub(crate) enum OwnedState {
    /// Waiting for its parents.
    Gated,
    /// A reader task is reading it; the flag tells whether it is at the shard's tip.
    Reading(JoinHandle<()>, Arc<AtomicBool>),
    /// Read to its end (here, or before the restored checkpoint).
    Finished,
}

/// The result of one discovery round.
#[derive(Debug)]
struct Listing {
    started: Instant,
    shards: Result<Vec<ShardInfo>>,
}

/// A batch of records of one shard being emitted.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) shard: ShardKey,
    pub(crate) records: VecDeque<RawRecord>,
}

/// What a poll tells downstream about event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventTime {
    /// Nothing new.
    Unchanged,
    /// The subtask's watermark advanced to this.
    Watermark(i64),
    /// The subtask has no active shard: it must not hold event time back.
    Idle,
}

/// Who this subtask is.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) uid: String,
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) parallelism: usize,
}

/// One subtask's running source.
pub(crate) struct Subtask {
    runtime: Option<Runtime>,
    client: Client,
    pub(crate) id: Identity,
    /// The attempt this subtask belongs to (assignments are agreed per attempt).
    run_id: String,
    settings: Arc<ConsumerSettings>,
    stats: Arc<Stats>,
    registry: Registry,
    events: mpsc::Receiver<ReaderEvent>,
    events_tx: mpsc::Sender<ReaderEvent>,
    listings: mpsc::UnboundedReceiver<Listing>,
    wake_discovery: Arc<Notify>,
    discovery: Option<JoinHandle<()>>,
    /// Every shard Kinesis listed or the restored state mentioned (for gating).
    known: BTreeSet<ShardKey>,
    pub(crate) owned: BTreeMap<ShardKey, Owned>,
    /// When the shards were last reported to the job's monitor.
    pub(crate) last_report: Option<Instant>,
    pub(crate) batch: Option<Batch>,
    pub(crate) watermarks: ShardWatermarks,
    emitted_watermark: Option<i64>,
    /// Idleness was announced and nothing was emitted since.
    idle_marked: bool,
    last_listing_started: Instant,
    discovery_requested: bool,
    /// The registry's shard-end count when this subtask last looked.
    seen_shard_ends: u64,
    finished: bool,
}

impl std::fmt::Debug for Subtask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subtask").field("id", &self.id).field("owned", &self.owned.len()).finish_non_exhaustive()
    }
}

impl Drop for Subtask {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn starting_point(position: InitialPosition, latest_pinned_ms: i64) -> StartingPoint {
    match position {
        InitialPosition::Latest => StartingPoint::AtTimestamp { millis: latest_pinned_ms },
        InitialPosition::TrimHorizon => StartingPoint::TrimHorizon,
        InitialPosition::AtTimestamp { millis } => StartingPoint::AtTimestamp { millis },
    }
}

impl Subtask {
    /// Starts the subtask: connects, checks the streams, lists shards, takes its restored or
    /// initial positions, and starts readers for the shards whose parents are done.
    pub(crate) fn open<T>(shared: &Shared<T>, id: Identity, run_id: &str, restored: RestoredState) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("kinesis-{}", id.index))
            .enable_all()
            .build()
            .map_err(KinesisSourceError::Runtime)?;
        let connection = shared.connection.clone().with_max_attempts(1).with_attempt_timeout(ATTEMPT_TIMEOUT);
        let client = runtime.block_on(connection.client())?;
        let settings = shared.settings.clone();
        let stats = shared.stats.clone();

        let restored_finished =
            restored.shards.values().filter(|s| s.position.is_finished()).map(|s| s.info.key.clone());
        shared.registry.attach(&id.uid, run_id, restored_finished);

        let listing = runtime.block_on(shared.listing.shards(
            &client,
            &settings,
            &stats,
            Instant::now().checked_sub(settings.discovery_interval).unwrap_or_else(Instant::now),
        ))?;
        let listed = listing.shards;

        let (events_tx, events) = mpsc::channel(settings.queue_capacity);
        let (listings_tx, listings) = mpsc::unbounded_channel();
        let wake_discovery = Arc::new(Notify::new());
        let discovery = runtime.spawn(discovery_loop(
            client.clone(),
            shared.listing.clone(),
            settings.clone(),
            stats.clone(),
            listings_tx,
            wake_discovery.clone(),
        ));

        let mut subtask = Subtask {
            runtime: Some(runtime),
            client,
            id,
            run_id: run_id.to_string(),
            settings: settings.clone(),
            stats,
            registry: shared.registry.clone(),
            events,
            events_tx,
            listings,
            wake_discovery,
            discovery: Some(discovery),
            // Only what Kinesis lists now: a restored shard it no longer lists expired past
            // retention, and must not hold its children back.
            known: known_shards(&listed),
            owned: BTreeMap::new(),
            last_report: None,
            batch: None,
            watermarks: ShardWatermarks::new(settings.shard_idle_interval, settings.max_out_of_orderness),
            emitted_watermark: None,
            idle_marked: false,
            last_listing_started: Instant::now(),
            discovery_requested: false,
            seen_shard_ends: 0,
            finished: false,
        };
        let owners = shared.assigner.owners(&listed, subtask.id.parallelism, run_id);
        for (key, RestoredShard { info, position }) in restored.shards {
            let Some(owner) = owners.get(&key) else {
                tracing::warn!(shard = %key, ?position, "restored shard is no longer listed by Kinesis (expired); dropping it");
                continue;
            };
            if *owner == subtask.id.index {
                subtask.own(info, position);
            }
        }
        let fresh_start = starting_point(shared.settings.initial_position, shared.latest_pinned_ms);
        let point = if restored.restored { StartingPoint::TrimHorizon } else { fresh_start };
        subtask.add_listed(listed, &owners, point);
        tracing::info!(
            subtask = %subtask.id.name,
            owned = subtask.owned.len(),
            restored = restored.restored,
            "Kinesis source subtask opened"
        );
        subtask.start_ready();
        Ok(subtask)
    }

    fn own(&mut self, info: ShardInfo, position: ShardPosition) {
        let state = if position.is_finished() { OwnedState::Finished } else { OwnedState::Gated };
        self.known.insert(info.key.clone());
        self.owned.insert(info.key.clone(), Owned { info, position, state });
    }

    /// Registers newly listed shards; those assigned here start at `point` once their parents are done.
    fn add_listed(&mut self, shards: Vec<ShardInfo>, owners: &HashMap<ShardKey, usize>, point: StartingPoint) {
        for info in shards {
            self.stats.saw_shard(&info.key);
            self.known.insert(info.key.clone());
            if self.owned.contains_key(&info.key) || owners.get(&info.key) != Some(&self.id.index) {
                continue;
            }
            tracing::info!(subtask = %self.id.name, shard = %info.key, parent = ?info.parent, adjacent = ?info.adjacent_parent, "new shard assigned");
            self.own(info, ShardPosition::NotStarted(point));
        }
    }

    /// Applies finished discovery rounds; asks for one at once when a shard ended anywhere.
    pub(crate) fn drain_listings(&mut self, assigner: &crate::assigner::SharedAssigner) -> Result<()> {
        let ends = self.registry.shard_ends(&self.id.uid);
        if ends != self.seen_shard_ends {
            self.seen_shard_ends = ends;
            self.wake_discovery.notify_one();
        }
        loop {
            match self.listings.try_recv() {
                Ok(Listing { started, shards }) => {
                    let shards = shards?;
                    let owners = assigner.owners(&shards, self.id.parallelism, &self.run_id);
                    self.add_listed(shards, &owners, StartingPoint::TrimHorizon);
                    self.last_listing_started = self.last_listing_started.max(started);
                    self.discovery_requested = false;
                }
                Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    if self.finished {
                        return Ok(());
                    }
                    return Err(KinesisSourceError::ReadersGone);
                }
            }
        }
    }

    /// Starts readers for gated shards whose parents are done.
    pub(crate) fn start_ready(&mut self) {
        if self.finished {
            return;
        }
        let gated: Vec<ShardKey> =
            self.owned.iter().filter(|(_, o)| matches!(o.state, OwnedState::Gated)).map(|(k, _)| k.clone()).collect();
        for key in gated {
            let Some(owned) = self.owned.get(&key) else { continue };
            let gate = parent_gate(
                &owned.info,
                |p| self.owned.get(p).is_some_and(|o| o.position.is_finished()),
                |p| self.registry.is_committed_finished(&self.id.uid, p),
                |p| self.known.contains(p),
            );
            if let Gate::WaitingFor(parents) = gate {
                tracing::trace!(shard = %key, ?parents, "child shard waits for its parents");
                continue;
            }
            let Some(runtime) = self.runtime.as_ref() else { return };
            let caught_up = Arc::new(AtomicBool::new(false));
            let reader = Reader {
                client: self.client.clone(),
                shard: key.clone(),
                hash_range: (owned.info.hash_start, owned.info.hash_end),
                start: owned.position.clone(),
                settings: self.settings.clone(),
                stats: self.stats.clone(),
                events: self.events_tx.clone(),
                caught_up: caught_up.clone(),
            };
            tracing::info!(subtask = %self.id.name, shard = %key, position = ?owned.position, "starting shard reader");
            let handle = runtime.spawn(reader.run());
            if let Some(owned) = self.owned.get_mut(&key) {
                owned.state = OwnedState::Reading(handle, caught_up);
            }
            self.watermarks.add(&key, Instant::now());
            self.registry.touch(&self.id.uid);
        }
    }

    /// Whether any owned shard waits for its parents.
    pub(crate) fn has_gated(&self) -> bool {
        self.owned.values().any(|o| matches!(o.state, OwnedState::Gated))
    }

    /// The next reader event, if one is queued.
    pub(crate) fn next_event(&mut self) -> Result<Option<ReaderEvent>> {
        match self.events.try_recv() {
            Ok(e) => Ok(Some(e)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(KinesisSourceError::ReadersGone),
        }
    }

    /// A shard's every record was emitted and its end reached.
    pub(crate) fn shard_ended(&mut self, key: &ShardKey) {
        if let Some(owned) = self.owned.get_mut(key) {
            owned.position = ShardPosition::Finished;
            owned.state = OwnedState::Finished;
        }
        self.watermarks.remove(key);
        self.stats.shard_finished();
        // Children appear in the listing now: every subtask looks for them at once.
        self.registry.shard_ended(&self.id.uid);
        self.start_ready();
    }

    /// Records were emitted.
    pub(crate) fn touch(&self) {
        self.registry.touch(&self.id.uid);
    }

    /// The union-state entries for checkpoint `epoch`, registering finished shards as part of it.
    pub(crate) fn snapshot(&self, epoch: u64) -> Vec<position::StateEntry> {
        let mut entries = Vec::with_capacity(self.owned.len() + 1);
        entries.push(position::encode_marker());
        for owned in self.owned.values() {
            entries.push(position::encode_shard(&owned.info, &owned.position));
            if owned.position.is_finished() {
                self.registry.snapshotted_finished(&self.id.uid, &owned.info.key, epoch);
            }
        }
        entries
    }

    /// Checkpoint `epoch` completed: children of shards finished in it may start.
    pub(crate) fn committed(&mut self, epoch: u64) {
        self.registry.committed(&self.id.uid, epoch);
        self.start_ready();
    }

    /// What to tell downstream about event time now: a watermark that advanced, or that this
    /// subtask went idle (no shard, or all idle), which it says once until it is active again.
    pub(crate) fn event_time(&mut self, now: Instant) -> EventTime {
        match self.watermarks.current(now) {
            SubtaskTime::At(w) => {
                let was_idle = std::mem::replace(&mut self.idle_marked, false);
                if w == i64::MIN || (!was_idle && self.emitted_watermark.is_some_and(|e| w <= e)) {
                    return EventTime::Unchanged;
                }
                let w = self.emitted_watermark.map_or(w, |e| e.max(w));
                self.emitted_watermark = Some(w);
                EventTime::Watermark(w)
            }
            SubtaskTime::HeldBack => {
                self.idle_marked = false;
                EventTime::Unchanged
            }
            SubtaskTime::Idle if !self.idle_marked => {
                self.idle_marked = true;
                EventTime::Idle
            }
            SubtaskTime::Idle => EventTime::Unchanged,
        }
    }

    /// Records were emitted: the output is active again.
    pub(crate) fn active(&mut self) {
        self.idle_marked = false;
    }

    /// Whether the source should finish because nothing happened for the idle time; asks for a
    /// fresh discovery first, so shards created meanwhile are not missed.
    pub(crate) fn idle_exit_due(&mut self, now: Instant) -> bool {
        let Some(idle) = self.settings.stop_when_idle else { return false };
        let caught_up = self.batch.is_none()
            && !self.has_gated()
            && self.owned.values().all(|o| match &o.state {
                OwnedState::Reading(_, at_tip) => at_tip.load(Ordering::Relaxed),
                OwnedState::Gated => false,
                OwnedState::Finished => true,
            });
        if !self.registry.caught_up(&self.id.uid, self.id.index, caught_up) {
            return false;
        }
        let Some(last) = self.registry.last_activity(&self.id.uid) else { return false };
        if now.saturating_duration_since(last) < idle {
            return false;
        }
        if self.last_listing_started >= last + idle {
            return true;
        }
        if !self.discovery_requested {
            self.discovery_requested = true;
            self.wake_discovery.notify_one();
        }
        false
    }

    /// Stops readers and discovery; positions stay as they are for the final checkpoint.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
        self.registry.caught_up(&self.id.uid, self.id.index, true);
        for owned in self.owned.values() {
            if let OwnedState::Reading(handle, _) = &owned.state {
                handle.abort();
            }
        }
        if let Some(d) = self.discovery.take() {
            d.abort();
        }
        tracing::info!(subtask = %self.id.name, "Kinesis source subtask finished (idle)");
    }

    /// Whether [`Subtask::finish`] was called.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Records of `key` that were emitted: the position moves after the last of them.
    pub(crate) fn advance(&mut self, key: &ShardKey, sequence_number: String, sub_sequence: Option<u64>) {
        if let Some(owned) = self.owned.get_mut(key) {
            owned.position = ShardPosition::After { sequence_number, sub_sequence };
        }
    }

    /// The stats shared by all subtasks.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// Asks the shared listing for shards every discovery interval (or at once when woken, then
/// for a listing started after the wake) and sends what it got. A failed round ends the loop
/// after reporting the failure (the subtask then fails).
async fn discovery_loop(
    client: Client,
    listing: Arc<SharedListing>,
    settings: Arc<ConsumerSettings>,
    stats: Arc<Stats>,
    tx: mpsc::UnboundedSender<Listing>,
    wake: Arc<Notify>,
) {
    loop {
        let not_before = tokio::select! {
            _ = tokio::time::sleep(settings.discovery_interval) => {
                Instant::now().checked_sub(settings.discovery_interval / 2).unwrap_or_else(Instant::now)
            }
            _ = wake.notified() => Instant::now(),
        };
        let round = listing.shards(&client, &settings, &stats, not_before).await;
        let failed = round.is_err();
        let listing = match round {
            Ok(l) => Listing { started: l.started, shards: Ok(l.shards) },
            Err(e) => Listing { started: Instant::now(), shards: Err(e) },
        };
        if tx.send(listing).is_err() || failed {
            return;
        }
    }
}
