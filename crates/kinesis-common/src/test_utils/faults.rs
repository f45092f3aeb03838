//! A fault-injecting HTTP client: wraps the SDK's real client and, following rules set by the
//! test, answers some calls itself, delays them, or fails chosen `PutRecords` entries.
//!
//! Faults are decided before anything reaches the emulator, so an injected failure never
//! writes data: a test can demand "every record exactly once" even with injected faults.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::config::SharedHttpClient;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde_json::{json, Value};

use crate::KinesisConnectionBuilder;

const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and AWS error code, without calling the emulator.
    Error {
        /// The AWS error code, e.g. `ProvisionedThroughputExceededException`.
        code: String,
        /// The HTTP status, e.g. 400.
        status: u16,
    },
    /// Call the emulator after this delay (a slow stream).
    Delay(Duration),
    /// `PutRecords` only: the entries whose position in the request is a multiple of `every`
    /// are withheld from the emulator and reported failed with `code` (a partial failure).
    FailEntries {
        /// The entry error code, e.g. `ProvisionedThroughputExceededException`.
        code: String,
        /// Fail entries 0, every, 2*every, ... (1 fails all).
        every: usize,
    },
    /// Fail with a connection error (an I/O dispatch failure), without calling the emulator.
    ConnectionError,
    /// `ListShards` only: call the emulator, then leave these shard ids out of its answer (a
    /// shard expired past retention, which the emulators cannot do by themselves).
    HideShards(Vec<String>),
}

impl Fault {
    /// `ProvisionedThroughputExceededException`, HTTP 400.
    pub fn throttled() -> Self {
        Fault::error("ProvisionedThroughputExceededException", 400)
    }

    /// `ExpiredIteratorException`, HTTP 400 (for GetRecords).
    pub fn expired_iterator() -> Self {
        Fault::error("ExpiredIteratorException", 400)
    }

    /// `InternalFailure`, HTTP 500.
    pub fn internal_failure() -> Self {
        Fault::error("InternalFailure", 500)
    }

    /// Any AWS error code with an HTTP status.
    pub fn error(code: impl Into<String>, status: u16) -> Self {
        Fault::Error { code: code.into(), status }
    }

    /// Fails every `every`-th PutRecords entry with `code`.
    pub fn fail_entries(code: impl Into<String>, every: usize) -> Self {
        Fault::FailEntries { code: code.into(), every: every.max(1) }
    }

    /// Fails every `every`-th PutRecords entry as throttled.
    pub fn throttle_entries(every: usize) -> Self {
        Fault::fail_entries("ProvisionedThroughputExceededException", every)
    }

    /// Delays calls by `delay`.
    pub fn delay(delay: Duration) -> Self {
        Fault::Delay(delay)
    }
}

#[derive(Debug)]
struct Rule {
    operation: String,
    skip: usize,
    remaining: Option<usize>,
    fault: Fault,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    calls: HashMap<String, usize>,
    injected: HashMap<String, usize>,
}

/// Decides, per call, whether to inject a fault, and counts calls and injections per operation.
///
/// Rules are checked in the order added. For a call of operation `op`, each rule for `op` that
/// still skips calls counts one down; the first rule for `op` that no longer skips and has uses
/// left is applied. Clones share their rules and counters.
#[derive(Clone, Default)]
pub struct FaultInjector {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FaultInjector").field("rules", &state.rules).field("calls", &state.calls).finish()
    }
}

impl FaultInjector {
    /// An injector without rules (it only counts calls).
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, operation: &str, skip: usize, remaining: Option<usize>, fault: Fault) -> &Self {
        self.lock().rules.push(Rule { operation: operation.to_string(), skip, remaining, fault });
        self
    }

    /// Applies `fault` to the next `times` calls of `operation` (e.g. `"PutRecords"`).
    pub fn inject(&self, operation: &str, fault: Fault, times: usize) -> &Self {
        self.add(operation, 0, Some(times), fault)
    }

    /// Applies `fault` to the `nth` call of `operation` from now on (1 = the next one).
    pub fn inject_nth(&self, operation: &str, nth: usize, fault: Fault) -> &Self {
        self.add(operation, nth.saturating_sub(1), Some(1), fault)
    }

    /// Applies `fault` to every call of `operation` until [`FaultInjector::clear`].
    pub fn inject_always(&self, operation: &str, fault: Fault) -> &Self {
        self.add(operation, 0, None, fault)
    }

    /// Removes every rule (counters are kept).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Calls of `operation` seen so far.
    pub fn calls(&self, operation: &str) -> usize {
        self.lock().calls.get(operation).copied().unwrap_or(0)
    }

    /// Faults injected into calls of `operation` so far.
    pub fn injected(&self, operation: &str) -> usize {
        self.lock().injected.get(operation).copied().unwrap_or(0)
    }

    /// The fault for this call of `operation`, if any; counts the call.
    fn next_fault(&self, operation: &str) -> Option<Fault> {
        let mut state = self.lock();
        *state.calls.entry(operation.to_string()).or_default() += 1;
        let mut chosen = None;
        for rule in state.rules.iter_mut().filter(|r| r.operation == operation) {
            if rule.remaining == Some(0) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            if chosen.is_none() {
                if let Some(left) = rule.remaining.as_mut() {
                    *left -= 1;
                }
                chosen = Some(rule.fault.clone());
            }
        }
        if chosen.is_some() {
            *state.injected.entry(operation.to_string()).or_default() += 1;
        }
        chosen
    }

    /// Wraps an HTTP client so that every call goes through this injector.
    pub fn wrap(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(FaultyClient { inner, injector: self.clone() })
    }

    /// Installs this injector around the default HTTP client of connections built by `builder`.
    pub fn install(&self, builder: KinesisConnectionBuilder) -> KinesisConnectionBuilder {
        let injector = self.clone();
        builder.wrap_http_client(move |inner| injector.wrap(inner))
    }
}

#[derive(Debug)]
struct FaultyClient {
    inner: SharedHttpClient,
    injector: FaultInjector,
}

impl HttpClient for FaultyClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        let inner = self.inner.http_connector(settings, components);
        SharedHttpConnector::new(FaultyConnector { inner, injector: self.injector.clone() })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    injector: FaultInjector,
}

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = operation_of(&request);
        let Some(fault) = self.injector.next_fault(&operation) else {
            return self.inner.call(request);
        };
        tracing::debug!(%operation, ?fault, "injecting fault");
        match fault {
            Fault::Error { code, status } => HttpConnectorFuture::ready(error_response(status, &code)),
            Fault::ConnectionError => {
                HttpConnectorFuture::ready(Err(ConnectorError::io("connection reset (injected by the test)".into())))
            }
            Fault::Delay(delay) => {
                let inner = self.inner.clone();
                HttpConnectorFuture::new(async move {
                    tokio::time::sleep(delay).await;
                    inner.call(request).await
                })
            }
            Fault::FailEntries { code, every } => {
                HttpConnectorFuture::new(fail_entries(self.inner.clone(), request, code, every.max(1)))
            }
            Fault::HideShards(ids) => HttpConnectorFuture::new(hide_shards(self.inner.clone(), request, ids)),
        }
    }
}

/// `Kinesis_20131202.PutRecords` → `PutRecords`.
fn operation_of(request: &HttpRequest) -> String {
    request.headers().get("x-amz-target").and_then(|t| t.rsplit('.').next()).unwrap_or("").to_string()
}

fn json_response(status: u16, body: Vec<u8>) -> Result<HttpResponse, ConnectorError> {
    let status = StatusCode::try_from(status).map_err(|e| ConnectorError::other(Box::new(e), None))?;
    let length = body.len().to_string();
    let mut response = HttpResponse::new(status, SdkBody::from(body));
    response.headers_mut().insert("content-type", JSON_CONTENT_TYPE);
    response.headers_mut().insert("content-length", length);
    Ok(response)
}

fn error_response(status: u16, code: &str) -> Result<HttpResponse, ConnectorError> {
    let body = json!({ "__type": code, "message": "injected by the rill test fault injector" });
    json_response(status, body.to_string().into_bytes())
}

fn other(message: impl Into<String>) -> ConnectorError {
    let message: String = message.into();
    ConnectorError::other(message.into(), None)
}

/// The JSON body of an emulator's answer.
async fn json_body(response: HttpResponse) -> Result<Value, ConnectorError> {
    let bytes = ByteStream::new(response.into_body())
        .collect()
        .await
        .map_err(|e| ConnectorError::io(Box::new(e)))?
        .into_bytes();
    serde_json::from_slice(&bytes).map_err(|e| other(format!("response is not JSON: {e}")))
}

/// Calls the emulator and removes the shards `ids` from its ListShards answer.
async fn hide_shards(
    inner: SharedHttpConnector,
    request: HttpRequest,
    ids: Vec<String>,
) -> Result<HttpResponse, ConnectorError> {
    let response = inner.call(request).await?;
    if !response.status().is_success() {
        return Ok(response);
    }
    let mut answer = json_body(response).await?;
    if let Some(shards) = answer.get_mut("Shards").and_then(Value::as_array_mut) {
        shards.retain(|s| s.get("ShardId").and_then(Value::as_str).is_none_or(|id| !ids.iter().any(|h| h == id)));
    }
    json_response(200, answer.to_string().into_bytes())
}

/// Withholds every `every`-th entry of a PutRecords request from the emulator, then splices
/// failed results for them into the emulator's answer at their original positions.
async fn fail_entries(
    inner: SharedHttpConnector,
    mut request: HttpRequest,
    code: String,
    every: usize,
) -> Result<HttpResponse, ConnectorError> {
    let Some(body) = request.body().bytes().map(<[u8]>::to_vec) else {
        return inner.call(request).await;
    };
    let mut payload: Value = serde_json::from_slice(&body).map_err(|e| other(format!("request is not JSON: {e}")))?;
    let Some(entries) = payload.get_mut("Records").and_then(Value::as_array_mut) else {
        return inner.call(request).await;
    };
    let all = std::mem::take(entries);
    let total = all.len();
    let failed_at: Vec<bool> = (0..total).map(|i| i % every == 0).collect();
    let kept: Vec<Value> = all.into_iter().zip(&failed_at).filter(|(_, f)| !**f).map(|(e, _)| e).collect();
    let failure = json!({ "ErrorCode": code, "ErrorMessage": "injected by the rill test fault injector" });
    let failed_count = failed_at.iter().filter(|f| **f).count();

    let mut forwarded_results: Vec<Value> = Vec::new();
    let mut forwarded_failures = 0u64;
    if !kept.is_empty() {
        *entries = kept;
        let new_body = serde_json::to_vec(&payload).map_err(|e| other(e.to_string()))?;
        request.headers_mut().insert("content-length", new_body.len().to_string());
        *request.body_mut() = SdkBody::from(new_body);
        let response = inner.call(request).await?;
        if !response.status().is_success() {
            return Ok(response);
        }
        let answer = json_body(response).await?;
        forwarded_failures = answer.get("FailedRecordCount").and_then(Value::as_u64).unwrap_or(0);
        forwarded_results = answer.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
    }
    let mut forwarded = forwarded_results.into_iter();
    let mut results = Vec::with_capacity(total);
    for failed in failed_at {
        if failed {
            results.push(failure.clone());
        } else {
            results.push(forwarded.next().ok_or_else(|| other("emulator answered fewer records than sent"))?);
        }
    }
    let answer = json!({ "FailedRecordCount": forwarded_failures + failed_count as u64, "Records": results });
    json_response(200, answer.to_string().into_bytes())
}
