//! Requests to a running job (savepoints, a graceful stop) and the pure decision of what the
//! coordinator triggers next.

use std::time::{Duration, Instant};

use rill_observe::{CommandReply, JobCommand};

/// What kind of checkpoint to trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trigger {
    /// The last checkpoint of the run: sources stop after its barrier.
    pub(crate) then_stop: bool,
    /// Never deleted by retention.
    pub(crate) savepoint: bool,
    /// The sources end event time before this (last) checkpoint's barrier (a stop with drain).
    pub(crate) drain: bool,
}

/// A graceful stop in progress.
#[derive(Debug)]
struct Stop {
    savepoint: bool,
    drain: bool,
    deadline: Instant,
}

/// Requests the coordinator has received and not yet answered.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    /// Savepoint requests waiting for a checkpoint to be triggered.
    savepoints: Vec<Option<CommandReply>>,
    stop: Option<Stop>,
    /// Replies waiting for the last checkpoint of the run.
    stop_replies: Vec<CommandReply>,
}

impl Requests {
    /// Takes in a command received at `now`.
    pub(crate) fn on_command(&mut self, command: JobCommand, now: Instant, stop_timeout: Duration) {
        match command {
            JobCommand::Savepoint { reply } => self.savepoints.push(reply),
            JobCommand::Stop { savepoint, drain, reply } => {
                let stop = self.stop.get_or_insert(Stop { savepoint, drain, deadline: now + stop_timeout });
                stop.savepoint |= savepoint;
                stop.drain |= drain;
                self.stop_replies.extend(reply);
            }
        }
    }

    /// Whether a stop was asked for.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.is_some()
    }

    /// When a stop asked for must be done by.
    pub(crate) fn stop_deadline(&self) -> Option<Instant> {
        self.stop.as_ref().map(|s| s.deadline)
    }

    /// What to trigger now that no checkpoint is pending: the stop's final checkpoint, the final
    /// checkpoint after every source finished, a savepoint asked for, or a periodic checkpoint
    /// that is due; a savepoint asked for makes the final checkpoint a savepoint too.
    pub(crate) fn decide(&self, sources_finished: bool, periodic_due: bool) -> Option<Trigger> {
        let savepoint_asked = !self.savepoints.is_empty();
        if let Some(stop) = &self.stop {
            return Some(Trigger { then_stop: true, savepoint: stop.savepoint || savepoint_asked, drain: stop.drain });
        }
        if sources_finished {
            // Finished sources ended event time already.
            return Some(Trigger { then_stop: true, savepoint: savepoint_asked, drain: false });
        }
        if savepoint_asked {
            return Some(Trigger { then_stop: false, savepoint: true, drain: false });
        }
        periodic_due.then_some(Trigger { then_stop: false, savepoint: false, drain: false })
    }

    /// The replies the checkpoint triggered as `trigger` answers.
    pub(crate) fn replies_for(&mut self, trigger: Trigger) -> Vec<CommandReply> {
        let mut replies = Vec::new();
        if trigger.savepoint {
            replies.extend(self.savepoints.drain(..).flatten());
        }
        if trigger.then_stop {
            replies.append(&mut self.stop_replies);
        }
        replies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKPOINT: Trigger = Trigger { then_stop: false, savepoint: false, drain: false };
    const SAVEPOINT: Trigger = Trigger { then_stop: false, savepoint: true, drain: false };

    fn savepoint() -> JobCommand {
        JobCommand::Savepoint { reply: None }
    }

    fn stop(savepoint: bool) -> JobCommand {
        JobCommand::Stop { savepoint, drain: false, reply: None }
    }

    #[test]
    fn without_requests_only_a_due_periodic_checkpoint_is_triggered() {
        let r = Requests::default();
        assert_eq!(r.decide(false, false), None);
        assert_eq!(r.decide(false, true), Some(CHECKPOINT));
    }

    #[test]
    fn a_savepoint_request_is_triggered_without_waiting_for_the_interval() {
        let mut r = Requests::default();
        r.on_command(savepoint(), Instant::now(), Duration::from_secs(1));
        assert_eq!(r.decide(false, false), Some(SAVEPOINT));
        let (tx, _rx) = tokio::sync::oneshot::channel();
        r.on_command(JobCommand::Savepoint { reply: Some(tx) }, Instant::now(), Duration::from_secs(1));
        assert_eq!(r.replies_for(SAVEPOINT).len(), 1);
        assert_eq!(r.decide(false, false), None, "answered requests are gone");
    }

    #[test]
    fn a_stop_takes_a_final_checkpoint_that_is_a_savepoint_only_if_asked() {
        let now = Instant::now();
        let mut r = Requests::default();
        r.on_command(stop(false), now, Duration::from_secs(5));
        assert_eq!(r.decide(false, false), Some(Trigger { then_stop: true, savepoint: false, drain: false }));
        assert_eq!(r.stop_deadline(), Some(now + Duration::from_secs(5)));
        r.on_command(stop(true), now + Duration::from_secs(3), Duration::from_secs(5));
        assert_eq!(r.decide(false, false), Some(Trigger { then_stop: true, savepoint: true, drain: false }));
        assert_eq!(r.stop_deadline(), Some(now + Duration::from_secs(5)), "a second stop keeps the first deadline");
    }

    #[test]
    fn finished_sources_take_the_final_checkpoint_as_before() {
        let r = Requests::default();
        assert_eq!(r.decide(true, false), Some(Trigger { then_stop: true, savepoint: false, drain: false }));
    }

    #[test]
    fn a_stop_with_drain_ends_event_time_before_its_final_checkpoint_and_a_later_plain_stop_keeps_it() {
        let mut r = Requests::default();
        let now = Instant::now();
        r.on_command(JobCommand::Stop { savepoint: false, drain: true, reply: None }, now, Duration::from_secs(5));
        r.on_command(stop(false), now, Duration::from_secs(5));
        assert_eq!(r.decide(false, false), Some(Trigger { then_stop: true, savepoint: false, drain: true }));
        assert_eq!(Requests::default().decide(true, false).map(|t| t.drain), Some(false), "finished sources");
    }
}
