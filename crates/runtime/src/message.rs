//! The one message type on every channel, and the barrier and watermark it carries.

/// A checkpoint barrier. Small and `Copy`: it flows with the data and splits the stream into the
/// part before checkpoint `epoch` and the part after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// The checkpoint id.
    pub epoch: u64,
    /// The final checkpoint of a job whose sources have all finished; the job stops once it completes.
    pub then_stop: bool,
}

/// Event-time progress: no record with a timestamp at or below `timestamp_ms` is expected anymore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watermark {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

impl Watermark {
    /// The watermark sent at the end of input: every timer and window fires.
    pub const MAX: Watermark = Watermark { timestamp_ms: i64::MAX };

    /// A watermark at `timestamp_ms`.
    pub const fn at(timestamp_ms: i64) -> Self {
        Watermark { timestamp_ms }
    }
}

/// What flows on every channel between subtasks.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<T> {
    /// A small batch of records and, on a keyed channel, the key group of each (computed once,
    /// by the sender's exchange, so the keyed subtask does not hash the keys again).
    Data {
        /// The records, in order.
        records: Vec<T>,
        /// One key group per record on a keyed channel; `None` on others.
        key_groups: Option<Vec<u16>>,
    },
    /// Event-time progress of the sending subtask.
    Watermark(Watermark),
    /// The sender is idle: until it sends records or a watermark again, it must not hold the
    /// receiver's event time back.
    Idle,
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The sender will send no more records (barriers may still follow, for the final checkpoint).
    EndOfInput,
}

#[cfg(test)]
impl<T> Message<T> {
    /// A batch of records of an unkeyed channel.
    pub(crate) fn records(records: Vec<T>) -> Self {
        Message::Data { records, key_groups: None }
    }
}
