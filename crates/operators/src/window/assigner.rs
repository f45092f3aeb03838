//! Event-time windows and the assigners that put a timestamp into them: tumbling, sliding,
//! session.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::watermark_strategy::duration_ms;

/// A window of event time: `start` inclusive, `end` exclusive, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeWindow {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after the window.
    pub end: i64,
}

impl TimeWindow {
    /// The window `[start, end)`.
    pub const fn new(start: i64, end: i64) -> Self {
        TimeWindow { start, end }
    }

    /// The last millisecond in the window: it fires once the watermark reaches this.
    pub const fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }

    /// Whether the windows overlap or touch (session windows that do are merged).
    pub const fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// Which event-time windows a record belongs to.
///
/// ```
/// use std::time::Duration;
/// use rill_operators::{TimeWindow, WindowAssigner};
/// let mut windows = Vec::new();
/// WindowAssigner::sliding(Duration::from_secs(10), Duration::from_secs(5)).assign(12_000, &mut windows);
/// assert_eq!(windows, vec![TimeWindow::new(10_000, 20_000), TimeWindow::new(5_000, 15_000)]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAssigner {
    /// Fixed-size, non-overlapping windows aligned to `offset_ms` (Flink's
    /// `TumblingEventTimeWindows`).
    Tumbling {
        /// Window length.
        size_ms: i64,
        /// Alignment of window starts.
        offset_ms: i64,
    },
    /// Fixed-size windows starting every `slide_ms`; a record belongs to `size / slide` of them
    /// (Flink's `SlidingEventTimeWindows`).
    Sliding {
        /// Window length.
        size_ms: i64,
        /// Distance between window starts.
        slide_ms: i64,
        /// Alignment of window starts.
        offset_ms: i64,
    },
    /// Per key, records closer than `gap_ms` to each other form one window, which grows as
    /// records arrive (Flink's `EventTimeSessionWindows`).
    Session {
        /// Inactivity that closes a session.
        gap_ms: i64,
    },
}

impl WindowAssigner {
    /// Tumbling windows of `size`.
    pub fn tumbling(size: Duration) -> Self {
        WindowAssigner::Tumbling { size_ms: duration_ms(size), offset_ms: 0 }
    }

    /// Windows of `size` starting every `slide`.
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        WindowAssigner::Sliding { size_ms: duration_ms(size), slide_ms: duration_ms(slide), offset_ms: 0 }
    }

    /// Session windows closed by `gap` of inactivity.
    pub fn session(gap: Duration) -> Self {
        WindowAssigner::Session { gap_ms: duration_ms(gap) }
    }

    /// Shifts the alignment of tumbling and sliding windows (to align daily windows to a time
    /// zone, for instance). No effect on session windows.
    pub fn with_offset(self, offset: Duration) -> Self {
        let offset_ms = duration_ms(offset);
        match self {
            WindowAssigner::Tumbling { size_ms, .. } => WindowAssigner::Tumbling { size_ms, offset_ms },
            WindowAssigner::Sliding { size_ms, slide_ms, .. } => {
                WindowAssigner::Sliding { size_ms, slide_ms, offset_ms }
            }
            session => session,
        }
    }

    /// Whether windows of one key merge (sessions).
    pub fn is_merging(&self) -> bool {
        matches!(self, WindowAssigner::Session { .. })
    }

    /// Why the assigner cannot be used, if it cannot.
    pub(crate) fn check(&self) -> Result<(), String> {
        match *self {
            WindowAssigner::Tumbling { size_ms, .. } if size_ms <= 0 => Err("window size must be positive".into()),
            WindowAssigner::Sliding { size_ms, slide_ms, .. } if size_ms <= 0 || slide_ms <= 0 => {
                Err("window size and slide must be positive".into())
            }
            WindowAssigner::Session { gap_ms } if gap_ms <= 0 => Err("session gap must be positive".into()),
            _ => Ok(()),
        }
    }

    /// Appends the windows `timestamp` belongs to (for sessions: its own window `[t, t + gap)`,
    /// before merging), latest start first.
    pub fn assign(&self, timestamp: i64, out: &mut Vec<TimeWindow>) {
        match *self {
            WindowAssigner::Tumbling { size_ms, offset_ms } => out.push(tumbling_window(timestamp, size_ms, offset_ms)),
            WindowAssigner::Sliding { size_ms, slide_ms, offset_ms } => {
                let mut start = window_start(timestamp, slide_ms, offset_ms);
                while start > timestamp.saturating_sub(size_ms) {
                    out.push(TimeWindow::new(start, start.saturating_add(size_ms)));
                    start = start.saturating_sub(slide_ms);
                }
            }
            WindowAssigner::Session { gap_ms } => {
                out.push(TimeWindow::new(timestamp, timestamp.saturating_add(gap_ms)))
            }
        }
    }
}

/// The start of the window of `size` (aligned to `offset`) holding `timestamp`.
#[inline]
fn window_start(timestamp: i64, size: i64, offset: i64) -> i64 {
    timestamp.saturating_sub(timestamp.wrapping_sub(offset).rem_euclid(size))
}

/// The tumbling window holding `timestamp`.
#[inline]
pub(crate) fn tumbling_window(timestamp: i64, size: i64, offset: i64) -> TimeWindow {
    let start = window_start(timestamp, size, offset);
    TimeWindow::new(start, start.saturating_add(size))
}

/// Flink's name for [`WindowAssigner::tumbling`].
#[derive(Debug, Clone, Copy)]
pub struct TumblingEventTimeWindows;

impl TumblingEventTimeWindows {
    /// Tumbling windows of `size`.
    pub fn of(size: Duration) -> WindowAssigner {
        WindowAssigner::tumbling(size)
    }
}

/// Flink's name for [`WindowAssigner::sliding`].
#[derive(Debug, Clone, Copy)]
pub struct SlidingEventTimeWindows;

impl SlidingEventTimeWindows {
    /// Windows of `size` starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> WindowAssigner {
        WindowAssigner::sliding(size, slide)
    }
}

/// Flink's name for [`WindowAssigner::session`].
#[derive(Debug, Clone, Copy)]
pub struct EventTimeSessionWindows;

impl EventTimeSessionWindows {
    /// Session windows closed by `gap` of inactivity.
    pub fn with_gap(gap: Duration) -> WindowAssigner {
        WindowAssigner::session(gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(a: WindowAssigner, ts: i64) -> Vec<TimeWindow> {
        let mut out = Vec::new();
        a.assign(ts, &mut out);
        out
    }

    #[test]
    fn tumbling_windows_hold_their_start_but_not_their_end() {
        let a = WindowAssigner::tumbling(Duration::from_millis(1000));
        assert_eq!(assigned(a, 0), vec![TimeWindow::new(0, 1000)]);
        assert_eq!(assigned(a, 999), vec![TimeWindow::new(0, 1000)]);
        assert_eq!(assigned(a, 1000), vec![TimeWindow::new(1000, 2000)]);
        assert_eq!(assigned(a, -1), vec![TimeWindow::new(-1000, 0)], "negative timestamps round down");
        assert_eq!(TimeWindow::new(0, 1000).max_timestamp(), 999);
    }

    #[test]
    fn offsets_shift_window_alignment() {
        let a = WindowAssigner::tumbling(Duration::from_millis(100)).with_offset(Duration::from_millis(30));
        assert_eq!(assigned(a, 129), vec![TimeWindow::new(30, 130)]);
        assert_eq!(assigned(a, 130), vec![TimeWindow::new(130, 230)]);
    }

    #[test]
    fn a_record_belongs_to_size_over_slide_sliding_windows() {
        let a = SlidingEventTimeWindows::of(Duration::from_millis(300), Duration::from_millis(100));
        assert_eq!(
            assigned(a, 250),
            vec![TimeWindow::new(200, 500), TimeWindow::new(100, 400), TimeWindow::new(0, 300)]
        );
        assert_eq!(assigned(a, 300).len(), 3);
    }

    #[test]
    fn session_windows_intersect_when_they_touch() {
        let a = EventTimeSessionWindows::with_gap(Duration::from_millis(10));
        assert_eq!(assigned(a, 5), vec![TimeWindow::new(5, 15)]);
        assert!(TimeWindow::new(0, 10).intersects(&TimeWindow::new(10, 20)));
        assert!(!TimeWindow::new(0, 10).intersects(&TimeWindow::new(11, 20)));
        assert_eq!(TimeWindow::new(0, 10).cover(&TimeWindow::new(5, 30)), TimeWindow::new(0, 30));
    }

    #[test]
    fn non_positive_sizes_are_rejected() {
        assert!(WindowAssigner::tumbling(Duration::ZERO).check().is_err());
        assert!(WindowAssigner::sliding(Duration::from_secs(1), Duration::ZERO).check().is_err());
        assert!(WindowAssigner::session(Duration::ZERO).check().is_err());
        assert!(TumblingEventTimeWindows::of(Duration::from_secs(1)).check().is_ok());
    }
}
