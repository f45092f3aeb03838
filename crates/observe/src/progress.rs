//! A progress line for people: live on a terminal (indicatif), a plain line now and then when
//! standard error is not a terminal (logs, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

use indicatif::{ProgressBar, ProgressStyle};

use crate::JobMonitor;

/// How often a plain progress line is written when not on a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// Shows a job's progress on standard error until finished or dropped.
#[derive(Debug)]
pub struct Progress {
    /// Dropped to stop the thread at once.
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One progress line: records/s, records, checkpoints, the worst shard lag.
pub(crate) fn progress_line(monitor: &JobMonitor) -> String {
    let view = monitor.view();
    let records: u64 = view.vertices.iter().filter(|v| v.is_source).map(|v| v.records_in).sum();
    let mut line = format!(
        "{}: {:.0} records/s · {} records · {} checkpoints",
        view.state.label(),
        view.records_per_second,
        records,
        view.checkpoints_completed
    );
    if let Some(c) = &view.last_checkpoint {
        line.push_str(&format!(" (last {})", c.id));
    }
    if let Some(lag) = monitor.shards().iter().filter_map(|s| s.millis_behind_latest).max() {
        line.push_str(&format!(" · lag {lag} ms"));
    }
    if !view.restarts.is_empty() {
        line.push_str(&format!(" · {} restarts", view.restarts.len()));
    }
    line
}

impl Progress {
    /// Starts showing `monitor`'s job: a live line if standard error is a terminal, else a plain
    /// line every 10 seconds.
    pub fn start(monitor: JobMonitor) -> Progress {
        let (stop, stopped) = bounded::<()>(1);
        let live = std::io::stderr().is_terminal();
        let thread = std::thread::Builder::new()
            .name("rill-progress".into())
            .spawn(move || {
                let bar = live.then(|| {
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg}").unwrap_or(ProgressStyle::default_spinner()),
                    );
                    bar
                });
                let mut last_plain = Instant::now();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_millis(250)) {
                    monitor.sample(Duration::from_secs(1));
                    match &bar {
                        Some(bar) => {
                            bar.set_message(progress_line(&monitor));
                            bar.tick();
                        }
                        None if last_plain.elapsed() >= PLAIN_EVERY => {
                            eprintln!("{}", progress_line(&monitor));
                            last_plain = Instant::now();
                        }
                        None => {}
                    }
                }
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
            })
            .ok();
        Progress { stop: Some(stop), thread }
    }

    /// Stops showing progress (clearing the live line).
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_rate_records_checkpoints_and_lag() {
        let m = JobMonitor::new("j");
        let s = m.register_vertices(vec![crate::VertexSpec {
            id: "src".into(),
            name: "numbers".into(),
            parallelism: 1,
            is_source: true,
            inputs: vec![],
        }]);
        s[0][0].add_records_in(5);
        m.sample(Duration::ZERO);
        m.checkpoint_triggered(3, false, false);
        m.checkpoint_completed(3, 1);
        m.report_shard(crate::ShardView {
            operator: "k".into(),
            subtask: 0,
            stream: "s".into(),
            shard: "a".into(),
            position: None,
            millis_behind_latest: Some(250),
            finished: false,
            updated_at_ms: 0,
        });
        let line = progress_line(&m);
        assert!(line.starts_with("starting: "), "{line}");
        assert!(line.contains("5 records · 1 checkpoints (last 3) · lag 250 ms"), "{line}");
    }
}
