//! The runtime's error type.

use rill_state::StateError;

/// Errors of building, running, checkpointing and restoring a job.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// State or checkpoint storage failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A file-system operation outside the state backend failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The job or one of its operators is configured wrongly.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An error raised by an operator, source or sink, with where it happened.
    #[error("{context}: {source}")]
    Operator {
        /// Which operator or task.
        context: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An input delivered a barrier for another checkpoint while one was being aligned.
    #[error("failed to align barriers: expected epoch {expected} but input {input} delivered {got}")]
    BarrierMismatch {
        /// The epoch being aligned.
        expected: u64,
        /// The epoch received.
        got: u64,
        /// The input index.
        input: usize,
    },
    /// A channel closed while the job was still running (a neighbouring task failed).
    #[error("{task}: channel to a neighbouring task closed unexpectedly")]
    ChannelClosed {
        /// The task that noticed.
        task: String,
    },
    /// A task panicked.
    #[error("{task} panicked: {message}")]
    Panic {
        /// The task.
        task: String,
        /// The panic message.
        message: String,
    },
    /// The task was told to stop because another task failed.
    #[error("task aborted because the job is restarting")]
    Aborted,
    /// A task failed; the cause is inside.
    #[error("task {task} failed: {cause}")]
    TaskFailed {
        /// The task (vertex and subtask).
        task: String,
        /// Why.
        #[source]
        cause: Box<RuntimeError>,
    },
    /// The job failed for good after its restart strategy gave up.
    #[error("job '{job}' failed after {attempts} attempt(s): {cause}")]
    JobFailed {
        /// Job name.
        job: String,
        /// How many attempts ran.
        attempts: usize,
        /// The last failure.
        #[source]
        cause: Box<RuntimeError>,
    },
}

/// Result alias for the runtime.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

impl RuntimeError {
    /// An error raised by user code, with a message.
    pub fn user(context: impl Into<String>, message: impl Into<String>) -> Self {
        let message: String = message.into();
        RuntimeError::Operator { context: context.into(), source: message.into() }
    }

    /// Wraps any error with the operator or task it happened in.
    pub fn in_operator(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        RuntimeError::Operator { context: context.into(), source: Box::new(source) }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<std::path::PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io { op, path, source }
    }
}
