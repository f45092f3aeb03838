//! The job's web server (axum): `/metrics`, the dashboard at `/`, and the REST API.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the dashboard page (embedded; reads the API every second) |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /api/job` | [`crate::JobView`] |
//! | `GET /api/checkpoints` | [`crate::CheckpointView`]s, newest first |
//! | `GET /api/shards` | [`crate::ShardView`]s |
//! | `POST /api/savepoints` | takes a savepoint; `{"checkpoint": id, "savepoint": id}` once complete; 429 while another is being taken |
//! | `POST /api/stop?savepoint=true&drain=true` | stops the job (final checkpoint, a savepoint if asked; with `drain`, every timer and window fires first); `{"checkpoint": id}`, and `"savepoint": id` if it is one |
//!
//! Every command answers the id of its checkpoint under `"checkpoint"`; an answer whose checkpoint
//! is a savepoint carries the same id under `"savepoint"` too (what clients read before).
//!
//! The `POST` routes steer the job: they need `Content-Type: application/json`, refuse another
//! web origin (403), need `Authorization: Bearer <token>` when a control token is set, and are
//! served only where control is allowed (see [`crate::control`]; elsewhere they answer 403).
//! [`serve_control`] serves the API alone, on a control address of its own.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::control::ControlToken;
use crate::{JobCommand, JobMonitor, ObserveError, Result};

const DASHBOARD: &str = include_str!("dashboard.html");

/// How long a savepoint or stop request waits for its checkpoint.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// A running server; stops (and its port is freed) when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// The address it listens on (with the port chosen, if port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `monitor`'s job on `addr` from a thread of its own, until the returned [`Server`] is
/// dropped: `/metrics`, the dashboard and the API, with control (the `POST` routes) when
/// [`crate::control_on_metrics_addr`] allows it, the token from `RILL_CONTROL_TOKEN`. Installs
/// the process's Prometheus recorder the first time.
pub fn serve(addr: SocketAddr, monitor: JobMonitor) -> Result<Server> {
    let token = ControlToken::given_or_from_env(None);
    let control = crate::control_on_metrics_addr(addr, token.as_ref());
    serve_with(addr, monitor, Routes { metrics: true, control }, token)
}

/// Serves the API alone (the job's views and the control routes) on `addr`, with `token` (or
/// the one in `RILL_CONTROL_TOKEN`): a control address apart from a public metrics address.
pub fn serve_control(addr: SocketAddr, monitor: JobMonitor, token: Option<ControlToken>) -> Result<Server> {
    serve_with(addr, monitor, Routes { metrics: false, control: true }, ControlToken::given_or_from_env(token))
}

/// [`serve`] with the routes and the token chosen by the caller.
pub fn serve_with(
    addr: SocketAddr,
    monitor: JobMonitor,
    routes: Routes,
    token: Option<ControlToken>,
) -> Result<Server> {
    let _ = crate::prometheus::handle();
    let listener = std::net::TcpListener::bind(addr).map_err(|source| ObserveError::Bind { addr, source })?;
    listener.set_nonblocking(true).map_err(ObserveError::Start)?;
    let local = listener.local_addr().map_err(ObserveError::Start)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ObserveError::Start)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(Api { monitor, token, savepoint_running: Arc::default(), control: routes.control }, routes);
    let thread = std::thread::Builder::new()
        .name("rill-web".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "metrics and dashboard server failed to start");
                        return;
                    }
                };
                let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = rx.await;
                });
                if let Err(e) = served.await {
                    tracing::error!(error = %e, "metrics and dashboard server stopped");
                }
            })
        })
        .map_err(ObserveError::Start)?;
    match (routes.metrics, routes.control) {
        (true, true) => tracing::info!(addr = %local, "serving /metrics, the dashboard and /api"),
        (true, false) => tracing::info!(addr = %local,
            "serving /metrics, the dashboard and /api without control (not a loopback address and no control token)"),
        (false, _) => tracing::info!(addr = %local, "serving the control API"),
    }
    Ok(Server { addr: local, shutdown: Some(tx), thread: Some(thread) })
}

/// What the routes share: the job, the control token if one is set, and whether a savepoint
/// request is being answered.
#[derive(Clone)]
struct Api {
    monitor: JobMonitor,
    token: Option<ControlToken>,
    savepoint_running: Arc<AtomicBool>,
    /// Whether the control routes may steer the job here.
    control: bool,
}

/// Which routes a server answers.
#[derive(Debug, Clone, Copy)]
pub struct Routes {
    /// `/metrics` and the dashboard.
    pub metrics: bool,
    /// The control routes (`POST /api/savepoints`, `POST /api/stop`); without, they answer 403.
    pub control: bool,
}

/// Marks a savepoint request as answered when dropped (also when the client goes away).
struct SavepointSlot(Arc<AtomicBool>);

impl Drop for SavepointSlot {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn router(api: Api, routes: Routes) -> Router {
    let mut router = Router::new();
    if routes.metrics {
        router = router.route("/", get(|| async { Html(DASHBOARD) })).route("/metrics", get(metrics));
    }
    router
        .route("/api/job", get(|State(api): State<Api>| async move { Json(api.monitor.view()) }))
        .route("/api/checkpoints", get(|State(api): State<Api>| async move { Json(api.monitor.checkpoints()) }))
        .route("/api/shards", get(|State(api): State<Api>| async move { Json(api.monitor.shards()) }))
        .route("/api/savepoints", post(savepoint))
        .route("/api/stop", post(stop))
        .with_state(api)
}

async fn metrics(State(Api { monitor, .. }): State<Api>) -> Response {
    match crate::prometheus::handle() {
        Ok(handle) => {
            monitor.sample(Duration::from_secs(1));
            monitor.publish();
            handle.run_upkeep();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why.to_string()).into_response(),
    }
}

/// Sends a command and waits for the checkpoint that answers it: `{"checkpoint": id}`, with
/// `"savepoint": id` beside it when that checkpoint is a savepoint.
async fn command(
    monitor: &JobMonitor,
    make: impl FnOnce(crate::CommandReply) -> JobCommand,
    is_savepoint: bool,
) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if monitor.send_command(make(tx)).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "the job is not running"}))).into_response();
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
        Ok(Ok(Ok(id))) if is_savepoint => Json(json!({ "checkpoint": id, "savepoint": id })).into_response(),
        Ok(Ok(Ok(id))) => Json(json!({ "checkpoint": id })).into_response(),
        Ok(Ok(Err(reason))) => (StatusCode::CONFLICT, Json(json!({"error": reason}))).into_response(),
        Ok(Err(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "the job ended before answering"}))).into_response()
        }
        Err(_) => (StatusCode::GATEWAY_TIMEOUT, Json(json!({"error": "no answer within 10 minutes"}))).into_response(),
    }
}

/// A control request's refusal, if its headers do not pass [`crate::control::check`].
fn refused(api: &Api, headers: &HeaderMap) -> Option<Response> {
    if !api.control {
        let reason = "control is not served on this address (not a loopback address and no control token): \
                      use a control address (--control-addr) or set a control token";
        return Some((StatusCode::FORBIDDEN, Json(json!({ "error": reason }))).into_response());
    }
    let (status, reason) = crate::control::check(headers, api.token.as_ref().map(ControlToken::as_str)).err()?;
    Some((status, Json(json!({ "error": reason }))).into_response())
}

async fn savepoint(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&api, &headers) {
        return refusal;
    }
    // One savepoint at a time: savepoints are never deleted, so a loop of requests must not pile
    // them up.
    if api.savepoint_running.swap(true, Ordering::SeqCst) {
        let error = "a savepoint is being taken; ask again once it is answered";
        return (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "error": error }))).into_response();
    }
    let _slot = SavepointSlot(api.savepoint_running.clone());
    command(&api.monitor, |reply| JobCommand::Savepoint { reply: Some(reply) }, true).await
}

#[derive(Deserialize)]
struct StopQuery {
    #[serde(default)]
    savepoint: bool,
    #[serde(default)]
    drain: bool,
}

async fn stop(State(api): State<Api>, headers: HeaderMap, Query(q): Query<StopQuery>) -> Response {
    if let Some(refusal) = refused(&api, &headers) {
        return refusal;
    }
    let StopQuery { savepoint, drain } = q;
    command(&api.monitor, |reply| JobCommand::Stop { savepoint, drain, reply: Some(reply) }, savepoint).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JobState;

    fn local() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn the_api_serves_the_job_the_page_and_prometheus_text() {
        let monitor = JobMonitor::new("served");
        let subtasks = monitor.register_vertices(vec![crate::VertexSpec {
            id: "src".into(),
            name: "numbers".into(),
            parallelism: 1,
            is_source: true,
            inputs: vec![],
        }]);
        subtasks[0][0].add_records_in(42);
        monitor.checkpoint_triggered(1, false, false);
        monitor.checkpoint_completed(1, 10);
        let server = serve(local(), monitor).unwrap();
        let base = format!("http://{}", server.addr());
        let job: serde_json::Value = reqwest::blocking::get(format!("{base}/api/job")).unwrap().json().unwrap();
        assert_eq!(job["job"], "served");
        let page = reqwest::blocking::get(&base).unwrap().text().unwrap();
        assert!(page.contains("<title>rill"), "{page}");
        let text = reqwest::blocking::get(format!("{base}/metrics")).unwrap().text().unwrap();
        assert!(
            text.lines().any(|l| l.starts_with("rill_task_records_in_total{")
                && l.contains("job=\"served\"")
                && l.ends_with(" 42")),
            "{text}"
        );
        assert!(text.contains("rill_checkpoints_completed_total{job=\"served\"} 1"), "{text}");
    }

    #[test]
    fn a_savepoint_request_is_answered_by_the_job() {
        let monitor = JobMonitor::new("steered");
        let server = serve(local(), monitor.clone()).unwrap();
        let url = format!("http://{}/api/savepoints", server.addr());
        let refused = reqwest::blocking::Client::new().post(&url).header("Origin", "https://example.com");
        let refused = refused.header("Content-Type", "application/json").send().unwrap();
        assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN, "another web origin cannot steer the job");
        let plain = reqwest::blocking::Client::new().post(&url).body("{}").send().unwrap();
        assert_eq!(plain.status(), reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE, "a body not declared JSON");
        assert!(monitor.try_command().is_none(), "neither reached the job");
        let answer = std::thread::spawn(move || {
            let request = reqwest::blocking::Client::new().post(url).header("Content-Type", "application/json");
            request.send().unwrap().text().unwrap()
        });
        let command = loop {
            if let Some(c) = monitor.try_command() {
                break c;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let JobCommand::Savepoint { reply: Some(reply) } = command else { panic!("{command:?}") };
        // While it is being taken, another savepoint request is refused.
        let again = reqwest::blocking::Client::new().post(format!("http://{}/api/savepoints", server.addr()));
        let again = again.header("Content-Type", "application/json").send().unwrap();
        assert_eq!(again.status(), reqwest::StatusCode::TOO_MANY_REQUESTS, "one savepoint at a time");
        reply.send(Ok(7)).unwrap();
        assert_eq!(answer.join().unwrap(), r#"{"checkpoint":7,"savepoint":7}"#);
    }

    #[test]
    fn control_is_served_on_a_public_metrics_address_only_with_a_token_and_on_a_control_address() {
        let public: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert!(!crate::control_on_metrics_addr(public, None));
        assert!(crate::control_on_metrics_addr(public, ControlToken::new("t").as_ref()));
        assert!(crate::control_on_metrics_addr(local(), None));

        let monitor = JobMonitor::new("public");
        let metrics = serve_with(public, monitor.clone(), Routes { metrics: true, control: false }, None).unwrap();
        let base = format!("http://127.0.0.1:{}", metrics.addr().port());
        assert!(reqwest::blocking::get(format!("{base}/metrics")).unwrap().status().is_success());
        let stop = reqwest::blocking::Client::new().post(format!("{base}/api/stop"));
        let refused = stop.header("Content-Type", "application/json").send().unwrap();
        assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);
        assert!(refused.text().unwrap().contains("control is not served on this address"));

        let control = serve_control(local(), monitor.clone(), ControlToken::new("secret")).unwrap();
        let url = format!("http://{}/api/stop", control.addr());
        assert_eq!(reqwest::blocking::get(format!("http://{}/metrics", control.addr())).unwrap().status(), 404);
        let stop = |token: Option<&str>| {
            let mut request = reqwest::blocking::Client::new().post(&url).header("Content-Type", "application/json");
            if let Some(token) = token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            request.timeout(Duration::from_millis(300)).send()
        };
        assert_eq!(stop(None).unwrap().status(), reqwest::StatusCode::UNAUTHORIZED);
        assert!(monitor.try_command().is_none(), "no refused request reached the job");
        let _ = stop(Some("secret"));
        assert!(matches!(monitor.try_command(), Some(JobCommand::Stop { .. })), "the token's request did");
        assert_eq!(format!("{:?}", ControlToken::new("secret").unwrap()), "ControlToken(***)");
    }

    #[test]
    fn no_request_waits_past_the_end_of_the_job() {
        let monitor = JobMonitor::new("ending");
        let server = serve(local(), monitor.clone()).unwrap();
        let url = format!("http://{}/api/savepoints", server.addr());
        let post = move || {
            let request = reqwest::blocking::Client::new().post(url.clone()).header("Content-Type", "application/json");
            let answer = request.send().unwrap();
            (answer.status(), answer.text().unwrap())
        };
        let post_again = post.clone();
        // A request the job has not taken yet when it ends is answered at once.
        let waiting = std::thread::spawn(post);
        while monitor.pending_commands() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        monitor.set_state(JobState::Finished);
        let (status, body) = waiting.join().unwrap();
        assert_eq!(status, reqwest::StatusCode::CONFLICT, "{body}");
        assert!(body.contains("the job ended"), "{body}");
        // One arriving after the end is refused without waiting.
        let (status, body) = post_again();
        assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }

    #[test]
    fn an_address_in_use_is_a_clear_error() {
        let taken = std::net::TcpListener::bind(local()).unwrap();
        let err = serve(taken.local_addr().unwrap(), JobMonitor::new("j")).unwrap_err();
        assert!(err.to_string().contains("cannot serve metrics and dashboard on"), "{err}");
    }
}
