//! Job configuration and its builder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use rill_state::{KeyedStateConfig, DEFAULT_MAX_PARALLELISM};
use rill_storage::{is_object_store_url, RemoteLocation};

use crate::{RestartStrategy, Result, RuntimeError};

/// Everything that shapes how a job runs.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Default parallelism of every operator chain.
    pub parallelism: usize,
    /// Number of key groups; fixed for the life of the job's checkpoints.
    pub max_parallelism: u16,
    /// Periodic checkpoint interval; `None` takes only the final checkpoint at end of input.
    pub checkpoint_interval: Option<Duration>,
    /// Where checkpoints (and the working state, under `work/`) live on the local disk. With an
    /// object-store [`JobConfig::checkpoint_location`], this is their local working copy.
    pub checkpoint_dir: PathBuf,
    /// Where checkpoints are kept when they must outlive the machine: an object store
    /// (`s3://bucket/prefix`). `None` (default): only the local [`JobConfig::checkpoint_dir`].
    pub checkpoint_location: Option<Arc<RemoteLocation>>,
    /// Complete checkpoints to keep.
    pub retained_checkpoints: usize,
    /// A checkpoint not acknowledged by every subtask within this long is abandoned (Flink's
    /// `execution.checkpointing.timeout`, default 10 minutes).
    pub checkpoint_timeout: Duration,
    /// Checkpoints that may fail (expire) in a row before the job fails over (Flink's
    /// `execution.checkpointing.tolerable-failed-checkpoints`, default 0).
    pub tolerable_checkpoint_failures: usize,
    /// Restart strategy for task failures.
    pub restart: RestartStrategy,
    /// Keyed state backend tuning.
    pub keyed_state: KeyedStateConfig,
    /// Batches a channel holds before the sender blocks (back-pressure).
    pub channel_capacity: usize,
    /// Restore this checkpoint instead of the latest one.
    pub restore_from: Option<u64>,
    /// Start fresh even if the directory holds checkpoints.
    pub ignore_checkpoints: bool,
    /// Restore even if the checkpoint holds state no operator of the job claims (dropping it);
    /// otherwise such a restore fails naming that state (Flink's `allowNonRestoredState`).
    pub allow_non_restored_state: bool,
    /// How often operators get [`crate::Operator::on_processing_time`]: the resolution of
    /// processing-time timers, periodic watermarks and idleness timeouts.
    pub tick_interval: Duration,
    /// Watermark alignment: a subtask does not read an input whose watermark is more than this
    /// ahead of its merged watermark, until the others catch up. `None` (default): off.
    pub watermark_alignment: Option<Duration>,
    /// Where to serve `/metrics` (Prometheus), the dashboard and the REST API. `None` (default):
    /// nothing is served (metrics still go to any recorder the program installed).
    pub metrics_addr: Option<SocketAddr>,
    /// Where to serve the control API (savepoints, stop) apart from the metrics address, so that
    /// `/metrics` can be public while control stays on loopback. `None` (default): control is
    /// served on the metrics address when that is a loopback address or a token is set.
    pub control_addr: Option<SocketAddr>,
    /// The token control requests must carry (`Authorization: Bearer ...`); `None`: the one in
    /// `RILL_CONTROL_TOKEN`, if any.
    pub control_token: Option<rill_observe::ControlToken>,
    /// Whether SIGTERM and SIGINT (Ctrl-C) stop the job gracefully: sources stop, a final
    /// checkpoint is taken, sinks commit, and `execute` returns. A second signal exits at once.
    pub stop_on_signals: bool,
    /// Whether such a signal stops the job with drain: every timer and window fires before the
    /// final checkpoint (as `POST /api/stop?drain=true` and Flink's `stop --drain`).
    pub drain_on_signals: bool,
    /// How long a graceful stop may take before the job gives up without committing (the next
    /// run restores as after a crash).
    pub stop_timeout: Duration,
}

/// Builds a [`crate::StreamEnv`].
///
/// ```
/// use std::time::Duration;
/// let dir = tempfile::tempdir().unwrap();
/// let env = rill_runtime::StreamEnv::builder()
///     .parallelism(2)
///     .checkpoint_interval(Duration::from_secs(1))
///     .checkpoint_dir(dir.path())
///     .build()
///     .unwrap();
/// assert_eq!(env.config().parallelism, 2);
/// ```
#[derive(Debug, Clone)]
pub struct StreamEnvBuilder {
    config: JobConfig,
    dir_set: bool,
    /// An object-store checkpoint location, opened by `build`.
    location_url: Option<String>,
}

impl Default for StreamEnvBuilder {
    fn default() -> Self {
        StreamEnvBuilder {
            config: JobConfig {
                parallelism: 1,
                max_parallelism: DEFAULT_MAX_PARALLELISM,
                checkpoint_interval: None,
                checkpoint_dir: PathBuf::new(),
                checkpoint_location: None,
                retained_checkpoints: 3,
                checkpoint_timeout: Duration::from_secs(600),
                tolerable_checkpoint_failures: 0,
                restart: RestartStrategy::default(),
                keyed_state: KeyedStateConfig::default(),
                channel_capacity: 16,
                restore_from: None,
                ignore_checkpoints: false,
                allow_non_restored_state: false,
                tick_interval: Duration::from_millis(20),
                watermark_alignment: None,
                metrics_addr: None,
                control_addr: None,
                control_token: None,
                stop_on_signals: true,
                drain_on_signals: false,
                stop_timeout: Duration::from_secs(25),
            },
            dir_set: false,
            location_url: None,
        }
    }
}

impl StreamEnvBuilder {
    /// Default parallelism (default 1).
    pub fn parallelism(mut self, parallelism: usize) -> Self {
        self.config.parallelism = parallelism;
        self
    }

    /// Number of key groups (default 128). Must not change between runs of a job.
    pub fn max_parallelism(mut self, max_parallelism: u16) -> Self {
        self.config.max_parallelism = max_parallelism;
        self
    }

    /// Periodic checkpoint interval; zero disables periodic checkpoints.
    pub fn checkpoint_interval(mut self, interval: std::time::Duration) -> Self {
        self.config.checkpoint_interval = (!interval.is_zero()).then_some(interval);
        self
    }

    /// Directory for checkpoints and working state (required).
    pub fn checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.checkpoint_dir = dir.into();
        self.dir_set = true;
        self
    }

    /// Where checkpoints are kept: a local directory (the same as [`Self::checkpoint_dir`]), or
    /// an object store, `s3://bucket/prefix`, configured from the standard AWS variables (see
    /// [`RemoteLocation::s3`]). With an object store, the checkpoint directory still holds the
    /// working state and a local copy of recent checkpoints; a job started with an empty one
    /// restores from the object store.
    pub fn checkpoint_location(mut self, location: &str) -> Self {
        if is_object_store_url(location) {
            self.location_url = Some(location.to_string());
        } else {
            self = self.checkpoint_dir(location);
        }
        self
    }

    /// Keeps checkpoints in an object store already set up (any `object_store` implementation).
    pub fn checkpoint_remote(mut self, location: Arc<RemoteLocation>) -> Self {
        self.config.checkpoint_location = Some(location);
        self
    }

    /// How many complete checkpoints to keep (default 3).
    pub fn retained_checkpoints(mut self, n: usize) -> Self {
        self.config.retained_checkpoints = n;
        self
    }

    /// How long a checkpoint may take before it is abandoned (default 10 minutes).
    pub fn checkpoint_timeout(mut self, timeout: Duration) -> Self {
        self.config.checkpoint_timeout = timeout;
        self
    }

    /// Checkpoint failures in a row tolerated before the job fails over (default 0: the first
    /// expired checkpoint restarts the job from the latest complete one, as in Flink).
    pub fn tolerable_checkpoint_failures(mut self, failures: usize) -> Self {
        self.config.tolerable_checkpoint_failures = failures;
        self
    }

    /// Restart strategy for retryable task failures (default: exponential delay from 1 s to 1 min,
    /// reset after an hour without failure, as Flink's default).
    pub fn restart_strategy(mut self, strategy: RestartStrategy) -> Self {
        self.config.restart = strategy;
        self
    }

    /// Keyed state tuning.
    pub fn keyed_state(mut self, config: KeyedStateConfig) -> Self {
        self.config.keyed_state = config;
        self
    }

    /// Batches buffered per channel (default 16).
    pub fn channel_capacity(mut self, batches: usize) -> Self {
        self.config.channel_capacity = batches;
        self
    }

    /// Restore even if the checkpoint holds state that no operator of this job claims (a removed
    /// operator, a changed uid): that state is dropped, with a warning. Default false: such a
    /// restore fails, naming the state.
    pub fn allow_non_restored_state(mut self, allow: bool) -> Self {
        self.config.allow_non_restored_state = allow;
        self
    }

    /// Restore from this checkpoint id rather than the latest complete one.
    pub fn restore_from(mut self, checkpoint: u64) -> Self {
        self.config.restore_from = Some(checkpoint);
        self
    }

    /// How often operators see processing time advance (default 20 ms).
    pub fn tick_interval(mut self, interval: Duration) -> Self {
        self.config.tick_interval = interval;
        self
    }

    /// Watermark alignment (Flink's `withWatermarkAlignment`, applied at each subtask's inputs):
    /// an input whose watermark runs more than `max_drift` ahead of the subtask's watermark is not
    /// read — its sender is back-pressured — until the others catch up. This bounds how much
    /// event-time state (open windows, timers) skew between parallel sources can pile up. An idle
    /// input does not hold the others back; barrier alignment always reads every input.
    pub fn watermark_alignment(mut self, max_drift: Duration) -> Self {
        self.config.watermark_alignment = Some(max_drift);
        self
    }

    /// Serves `/metrics` (Prometheus text format), the live dashboard at `/` and the REST API
    /// under `/api` on `addr` while the job runs (port 0 picks a free port).
    pub fn metrics_addr(mut self, addr: impl Into<Option<SocketAddr>>) -> Self {
        self.config.metrics_addr = addr.into();
        self
    }

    /// Serves the control API (`POST /api/savepoints`, `POST /api/stop`, and the job's views) on
    /// `addr`, apart from the metrics address.
    pub fn control_addr(mut self, addr: impl Into<Option<SocketAddr>>) -> Self {
        self.config.control_addr = addr.into();
        self
    }

    /// The token control requests must carry (`Authorization: Bearer <token>`); without one,
    /// `RILL_CONTROL_TOKEN` is read.
    pub fn control_token(mut self, token: impl Into<String>) -> Self {
        self.config.control_token = rill_observe::ControlToken::new(token);
        self
    }

    /// [`StreamEnvBuilder::control_token`] with a token already made.
    pub fn control_token_of(mut self, token: rill_observe::ControlToken) -> Self {
        self.config.control_token = Some(token);
        self
    }

    /// Whether SIGTERM and SIGINT stop the job gracefully (default true): the sources stop, a
    /// final checkpoint is taken and committed, and `execute` returns `Ok` with
    /// [`crate::JobResult::stopped`] set. A second signal exits the process at once (status 130).
    pub fn stop_on_signals(mut self, on: bool) -> Self {
        self.config.stop_on_signals = on;
        self
    }

    /// Whether SIGTERM and SIGINT stop the job with drain (default false): the sources end event
    /// time before the final checkpoint, so every pending timer and window fires and its output
    /// is committed (Flink's `stop --drain`). For a job that is not meant to resume: a restore
    /// from that checkpoint starts at the end of event time.
    pub fn drain_on_signals(mut self, on: bool) -> Self {
        self.config.drain_on_signals = on;
        self
    }

    /// How long a graceful stop (signal or `POST /api/stop`) may take (default 25 s, inside
    /// Kubernetes' default grace period of 30 s). Past it, the job ends with
    /// [`crate::RuntimeError::StopTimedOut`] without committing; the next run restores the latest
    /// complete checkpoint, as after a crash.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.config.stop_timeout = timeout;
        self
    }

    /// Checks the configuration and creates the environment.
    pub fn build(mut self) -> Result<crate::StreamEnv> {
        if let Some(url) = self.location_url.take() {
            let location = RemoteLocation::s3(&url).map_err(|e| RuntimeError::Config(e.to_string()))?;
            self.config.checkpoint_location = Some(Arc::new(location));
        }
        let c = &self.config;
        if c.parallelism == 0 {
            return Err(RuntimeError::Config("parallelism must be at least 1".into()));
        }
        if c.max_parallelism == 0 || c.parallelism > usize::from(c.max_parallelism) {
            return Err(RuntimeError::Config(format!(
                "parallelism {} exceeds max parallelism {}",
                c.parallelism, c.max_parallelism
            )));
        }
        if !self.dir_set || c.checkpoint_dir.as_os_str().is_empty() {
            return Err(RuntimeError::Config("a checkpoint directory is required".into()));
        }
        if c.tick_interval.is_zero() {
            return Err(RuntimeError::Config("tick interval must be positive".into()));
        }
        if c.checkpoint_timeout.is_zero() {
            return Err(RuntimeError::Config("checkpoint timeout must be positive".into()));
        }
        if c.stop_timeout.is_zero() {
            return Err(RuntimeError::Config("stop timeout must be positive".into()));
        }
        if c.channel_capacity == 0 {
            return Err(RuntimeError::Config("channel capacity must be at least 1".into()));
        }
        Ok(crate::StreamEnv::new(self.config))
    }
}
