//! The server: accepts HTTP/1.1 connections, routes each call by its `X-Amz-Target`, and
//! serves `GET /_limits/stats`.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::budgets::Budgets;
use crate::control_plane::control_call;
use crate::get_records::{get_records, get_shard_iterator};
use crate::put_records::{put_record, put_records};
use crate::request::operation_of;
use crate::response::{bad_gateway, full, ProxyBody};
use crate::shard_map::ShardMaps;
use crate::upstream::Upstream;
use crate::{Limits, LimitsError, Stats};

/// The path serving [`Stats`] as JSON.
pub const STATS_PATH: &str = "/_limits/stats";

/// What every connection shares: the upstream, the budgets and the shard lists.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) upstream: Upstream,
    pub(crate) shard_maps: ShardMaps,
    budgets: Mutex<Budgets>,
}

impl Shared {
    /// The budgets, locked. Never hold the guard across an await.
    pub(crate) fn budgets(&self) -> MutexGuard<'_, Budgets> {
        self.budgets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running proxy. Dropping it stops it too (without waiting); [`LimitsProxy::shutdown`]
/// waits until its connections are closed.
#[derive(Debug)]
pub struct LimitsProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl LimitsProxy {
    /// Starts a proxy listening on `listen` (port 0 picks a free port) in front of the
    /// emulator at `upstream` (`http://host:port`), enforcing `limits`. Call from within a
    /// Tokio runtime; the proxy runs on it.
    ///
    /// # Errors
    ///
    /// [`LimitsError::InvalidLimit`], [`LimitsError::InvalidUpstream`] or
    /// [`LimitsError::Bind`].
    pub async fn start(listen: SocketAddr, upstream: &str, limits: Limits) -> Result<LimitsProxy, LimitsError> {
        limits.validate()?;
        let upstream = Upstream::new(upstream)?;
        let listener = TcpListener::bind(listen).await.map_err(|source| LimitsError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| LimitsError::Bind { addr: listen, source })?;
        let shared = Arc::new(Shared {
            upstream,
            shard_maps: ShardMaps::default(),
            budgets: Mutex::new(Budgets::new(limits, Instant::now())),
        });
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        Ok(LimitsProxy { addr, shared, stop: Some(stop), server: Some(server) })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to give the SDK, e.g. `http://127.0.0.1:4570` (a loopback address when
    /// listening on all interfaces).
    pub fn endpoint(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// A snapshot of what the proxy admitted and throttled so far.
    pub fn stats(&self) -> Stats {
        self.shared.budgets().stats()
    }

    /// Stops accepting, closes every connection, and waits until the server task has ended.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "the kinesis-limits server task failed");
            }
        }
    }
}

impl Drop for LimitsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // E.g. too many open files: keep serving the connections there are.
                tracing::warn!(error = %e, "kinesis-limits cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| serve(shared.clone(), request));
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    connections.shutdown().await;
}

/// One call: the stats page, or a Kinesis call routed by operation.
async fn serve(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    let (parts, body) = request.into_parts();
    if parts.method == Method::GET && parts.uri.path() == STATS_PATH {
        return Ok(stats_page(&shared.budgets().stats()));
    }
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let mut response = Response::new(full(format!("cannot read the request: {e}")));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(response);
        }
    };
    let operation = operation_of(&parts.headers).to_string();
    let answer = match operation.as_str() {
        "GetRecords" => get_records(&shared, parts, body).await,
        "GetShardIterator" => get_shard_iterator(&shared, parts, body).await,
        "PutRecords" => put_records(&shared, parts, body).await,
        "PutRecord" => put_record(&shared, parts, body).await,
        _ => control_call(&shared, &operation, parts, body).await,
    };
    Ok(answer.unwrap_or_else(|e| {
        tracing::warn!(%operation, error = %e, "answering 502");
        bad_gateway(&e.to_string())
    }))
}

fn stats_page(stats: &Stats) -> Response<ProxyBody> {
    match serde_json::to_string_pretty(stats) {
        Ok(json) => {
            let mut response = Response::new(full(json + "\n"));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(e) => {
            let mut response = Response::new(full(e.to_string()));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}
