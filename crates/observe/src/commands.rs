//! Requests from outside the job (the REST API, a signal) to its checkpoint coordinator.

/// Where the coordinator answers a command: the id of the checkpoint that completed it, or why
/// it could not.
pub type CommandReply = tokio::sync::oneshot::Sender<Result<u64, String>>;

/// A request to the running job.
#[derive(Debug)]
pub enum JobCommand {
    /// Take a savepoint (a checkpoint retention never deletes) and go on running.
    Savepoint {
        /// Answered once the savepoint is complete (or failed).
        reply: Option<CommandReply>,
    },
    /// Stop the sources, take a final checkpoint (a savepoint if asked), commit the sinks and end
    /// the job.
    Stop {
        /// Whether the final checkpoint is a savepoint.
        savepoint: bool,
        /// Whether to end event time first (Flink's `stop --drain`): the sources emit the final
        /// watermark before the last barrier, so every timer and window fires and its output is
        /// in the final checkpoint. A job restored from that checkpoint starts at the end of
        /// event time: drain a job that is not meant to resume.
        drain: bool,
        /// Answered once the final checkpoint is complete (or failed).
        reply: Option<CommandReply>,
    },
}

impl JobCommand {
    /// Answers the request that it cannot be done, for `reason`.
    pub fn refuse(self, reason: &str) {
        let (JobCommand::Savepoint { reply } | JobCommand::Stop { reply, .. }) = self;
        if let Some(reply) = reply {
            let _ = reply.send(Err(reason.to_string()));
        }
    }
}
