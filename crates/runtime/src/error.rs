//! The runtime's error type, the error user code returns, and the class that decides restarts.

use rill_state::StateError;

/// What user code (operators, sources, sinks, factories) returns on failure: any error, boxed.
/// `?` converts `std::io::Error`, `anyhow::Error`, `String`, `&str` and every rill error into it;
/// the runtime wraps it with the operator and subtask it came from. Mark an error that a restart
/// cannot cure with [`fatal`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result of a user hook: `Ok(T)` or any [`BoxError`].
pub type OperatorResult<T = ()> = std::result::Result<T, BoxError>;

/// Whether restarting the job can cure a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient (I/O, network, throttling that outlasted its retries, a panic): restart the job
    /// from its latest checkpoint under the restart strategy.
    Retryable,
    /// A restart would fail the same way (bad configuration, a missing stream, a malformed record
    /// under the fail policy, a state type mismatch): fail the job at once, with the cause.
    Fatal,
}

/// An error marked as fatal: the job fails without restarting. Made by [`fatal`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FatalError(BoxError);

impl FatalError {
    /// The error inside.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

/// Marks `error` as fatal: when an operator returns it, the job fails at once, without restarts.
///
/// ```
/// use rill_runtime::{fatal, ErrorClass, OperatorResult, RuntimeError};
/// fn check(limit: u64) -> OperatorResult {
///     if limit == 0 {
///         return Err(fatal("limit must be positive"));
///     }
///     Ok(())
/// }
/// let e = check(0).unwrap_err();
/// assert_eq!(RuntimeError::class_of(e.as_ref()), ErrorClass::Fatal);
/// ```
pub fn fatal(error: impl Into<BoxError>) -> BoxError {
    Box::new(FatalError(error.into()))
}

/// `error` as an operator error of `class`: marked by [`fatal`] if fatal, as it is otherwise.
/// How a crate with its own error classification (the Kinesis connectors) hands its errors to
/// the runtime.
pub fn classified(error: impl Into<BoxError>, class: ErrorClass) -> BoxError {
    match class {
        ErrorClass::Fatal => fatal(error),
        ErrorClass::Retryable => error.into(),
    }
}

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
    /// The job or one of its operators is configured wrongly (fatal).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The runtime broke one of its own rules (a bug, not a user error).
    #[error("internal error: {0}")]
    Internal(String),
    /// An error raised by an operator, source or sink, wrapped with where it happened.
    #[error("operator {operator} in {task}: {source}")]
    Operator {
        /// The operator's uid.
        operator: String,
        /// The subtask, `vertex[subtask/parallelism]`.
        task: String,
        /// Whether a restart can cure it.
        class: ErrorClass,
        /// What went wrong.
        #[source]
        source: BoxError,
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
    /// Checkpoints failed (expired, or declined by a subtask whose upload failed) one time more
    /// in a row than tolerated.
    #[error("checkpoint {epoch} {why} ({failures} checkpoint failure(s) in a row, more than tolerated)")]
    CheckpointsFailed {
        /// The last failed checkpoint.
        epoch: u64,
        /// Why it failed.
        why: String,
        /// Checkpoints failed in a row.
        failures: usize,
    },
    /// A graceful stop did not finish (final checkpoint complete and committed) within the stop
    /// timeout; nothing of it was committed.
    #[error("the job did not stop within {timeout:?}: its final checkpoint did not complete; nothing was committed, the next run restores the latest complete checkpoint")]
    StopTimedOut {
        /// The stop timeout.
        timeout: std::time::Duration,
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
    /// A task failed; the cause is inside (and in the message, which is the whole report: it
    /// is not also a `source()`, so an error printer shows it once).
    #[error("task {task} failed: {cause}")]
    TaskFailed {
        /// The task (vertex and subtask).
        task: String,
        /// Why.
        cause: Box<RuntimeError>,
    },
    /// The job failed for good: a fatal error, or the restart strategy gave up. The message holds
    /// the last failure (not also a `source()`, so an error printer shows it once).
    #[error("job '{job}' failed after {attempts} attempt(s): {cause}")]
    JobFailed {
        /// Job name.
        job: String,
        /// How many attempts ran.
        attempts: usize,
        /// The last failure.
        cause: Box<RuntimeError>,
    },
}

/// Result alias for the runtime.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

impl RuntimeError {
    /// Whether a restart can cure this error. Configuration errors, state type mismatches,
    /// incompatible checkpoints and errors marked with [`fatal`] are fatal; the rest is retryable.
    pub fn class(&self) -> ErrorClass {
        match self {
            RuntimeError::Config(_) | RuntimeError::StopTimedOut { .. } => ErrorClass::Fatal,
            RuntimeError::State(e) => state_class(e),
            RuntimeError::Operator { class, .. } => *class,
            RuntimeError::TaskFailed { cause, .. } | RuntimeError::JobFailed { cause, .. } => cause.class(),
            _ => ErrorClass::Retryable,
        }
    }

    /// The class of any error: fatal if it, or any error in its source chain, is a
    /// [`FatalError`], a fatal [`RuntimeError`] or a fatal [`StateError`].
    pub fn class_of(error: &(dyn std::error::Error + 'static)) -> ErrorClass {
        let mut next = Some(error);
        while let Some(e) = next {
            if e.is::<FatalError>() {
                return ErrorClass::Fatal;
            }
            if let Some(r) = e.downcast_ref::<RuntimeError>() {
                if r.class() == ErrorClass::Fatal {
                    return ErrorClass::Fatal;
                }
            }
            if let Some(s) = e.downcast_ref::<StateError>() {
                if state_class(s) == ErrorClass::Fatal {
                    return ErrorClass::Fatal;
                }
            }
            next = e.source();
        }
        ErrorClass::Retryable
    }

    /// Wraps an error of user code with the operator and subtask it happened in.
    pub(crate) fn in_operator(operator: &str, task: String, source: BoxError) -> Self {
        let class = RuntimeError::class_of(source.as_ref());
        RuntimeError::Operator { operator: operator.to_string(), task, class, source }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<std::path::PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io { op, path, source }
    }
}

fn state_class(e: &StateError) -> ErrorClass {
    match e {
        StateError::TypeMismatch { .. }
        | StateError::Incompatible { .. }
        | StateError::NoUsableCheckpoint { .. }
        | StateError::Fenced { .. }
        | StateError::BadHead { .. } => ErrorClass::Fatal,
        _ => ErrorClass::Retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_error_is_retryable_and_a_marked_one_fatal() {
        let io: BoxError = std::io::Error::other("disk hiccup").into();
        assert_eq!(RuntimeError::class_of(io.as_ref()), ErrorClass::Retryable);
        assert_eq!(RuntimeError::class_of(fatal("bad limit").as_ref()), ErrorClass::Fatal);
    }

    #[test]
    fn wrapping_keeps_the_class_and_names_the_operator() {
        let e = RuntimeError::in_operator("v1-op1-map", "v1-map[0/2]".into(), fatal("no"));
        assert_eq!(e.class(), ErrorClass::Fatal);
        assert_eq!(e.to_string(), "operator v1-op1-map in v1-map[0/2]: no");
        let failed = RuntimeError::TaskFailed { task: "t".into(), cause: Box::new(e) };
        assert_eq!(failed.class(), ErrorClass::Fatal);
    }

    #[test]
    fn a_config_error_inside_a_boxed_chain_is_fatal() {
        let boxed: BoxError = Box::new(RuntimeError::Config("bad".into()));
        assert_eq!(RuntimeError::class_of(boxed.as_ref()), ErrorClass::Fatal);
    }
}
