//! See and steer a running rill job.
//!
//! - [`JobMonitor`]: the live status of one job, shared by the runtime (which writes it: subtask
//!   counters, checkpoints, restarts, source positions) and by whoever reads it (the web server,
//!   the progress line, tests). Subtasks only touch relaxed atomics ([`SubtaskMetrics`]); a
//!   sampler turns them into rates once a second.
//! - Metrics: [`JobMonitor::publish`] writes every figure through the `metrics` facade, so any
//!   installed recorder sees them; [`serve`] installs the Prometheus recorder
//!   (`metrics-exporter-prometheus`) and serves `/metrics` in Prometheus text format.
//! - [`serve`] also serves the dashboard (one embedded page, no build step, no CDN) and the JSON
//!   REST API it reads (`/api/job`, `/api/checkpoints`, `/api/shards`, `POST /api/savepoints`,
//!   `POST /api/stop`), with axum on a small tokio runtime of its own.
//! - Requests that steer the job (savepoint, stop) reach the runtime as [`JobCommand`]s.
//! - [`Progress`]: a live progress line on a terminal (indicatif), plain lines otherwise.
//!
//! Depends on `metrics`, `metrics-exporter-prometheus`, `axum`, `tokio`, `indicatif`, `serde`.

mod commands;
mod control;
mod error;
mod history;
mod model;
mod monitor;
mod progress;
mod prometheus;
mod publish;
mod server;
mod subtask;

pub use commands::{CommandReply, JobCommand};
pub use control::{control_on_metrics_addr, ControlToken, CONTROL_TOKEN_VAR};
pub use error::{ObserveError, Result};
pub use model::{CheckpointStatus, CheckpointView, JobState, JobView, RestartView, ShardView, SubtaskView, VertexView};
pub use monitor::{JobMonitor, VertexSpec};
pub use progress::Progress;
pub use server::{serve, serve_control, serve_with, Routes, Server};
pub use subtask::SubtaskMetrics;
