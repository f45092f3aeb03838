//! The process-wide Prometheus recorder, installed once, the first time a job serves metrics.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The handle that renders `/metrics`, or why there is none (another recorder was installed
/// first).
pub(crate) fn handle() -> Result<&'static PrometheusHandle, &'static str> {
    RECORDER
        .get_or_init(|| {
            PrometheusBuilder::new().install_recorder().map_err(|e| {
                tracing::warn!(error = %e, "cannot install the Prometheus recorder; /metrics is unavailable");
                format!("the Prometheus recorder could not be installed: {e}")
            })
        })
        .as_ref()
        .map_err(|e| e.as_str())
}
