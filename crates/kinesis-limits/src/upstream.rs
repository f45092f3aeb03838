//! The upstream emulator: forwarding client calls and making the proxy's own calls.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Method, Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::response::{strip_headers, AMZ_JSON};
use crate::LimitsError;

/// Used for the proxy's own calls when the client's request has no credentials to copy
/// (emulators check that these exist, never what they say).
const FAKE_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=kinesis-limits/20240101/us-east-1/kinesis/aws4_request, \
                                  SignedHeaders=host;x-amz-date, Signature=0";
const FAKE_DATE: &str = "20240101T000000Z";

/// Headers of a client request that authenticate it, copied onto the proxy's own calls.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-amz-date", "x-amz-security-token"];

/// The emulator behind the proxy.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    scheme: Scheme,
    authority: Authority,
}

impl Upstream {
    /// An upstream at `url`, `http://host:port` (a path is ignored; TLS is not supported).
    pub(crate) fn new(url: &str) -> Result<Self, LimitsError> {
        let invalid = |reason: &str| LimitsError::InvalidUpstream { url: url.to_string(), reason: reason.to_string() };
        let uri: Uri = url.trim().parse().map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| invalid("no scheme (expected http://host:port)"))?;
        if scheme != Scheme::HTTP {
            return Err(invalid("only http:// is supported"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Upstream { client, scheme, authority })
    }

    /// The upstream URL of `path_and_query`.
    fn uri(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, LimitsError> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query.map_or("/", PathAndQuery::as_str))
            .build()
            .map_err(|e| LimitsError::Upstream { operation: String::new(), reason: e.to_string() })
    }

    /// Sends a client's request (its method, path and headers, with `body`) upstream.
    pub(crate) async fn forward(&self, parts: &Parts, body: Bytes) -> Result<Response<Incoming>, LimitsError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = self.uri(parts.uri.path_and_query())?;
        *request.headers_mut() = parts.headers.clone();
        strip_headers(request.headers_mut(), false);
        self.client.request(request).await.map_err(|e| upstream_error(&parts.headers, &e))
    }

    /// Sends a client's request upstream and reads the whole answer.
    pub(crate) async fn forward_buffered(
        &self,
        parts: &Parts,
        body: Bytes,
    ) -> Result<(hyper::http::response::Parts, Bytes), LimitsError> {
        let answer = self.forward(parts, body).await?;
        let (answer_parts, answer_body) = answer.into_parts();
        let bytes = answer_body.collect().await.map_err(|e| upstream_error(&parts.headers, &e))?.to_bytes();
        Ok((answer_parts, bytes))
    }

    /// The proxy's own call of `operation` with a JSON `payload`, authenticated with the
    /// credential headers of `client_headers` (a client's request). Returns the HTTP status
    /// and the JSON answer.
    pub(crate) async fn call(
        &self,
        operation: &str,
        payload: &Value,
        client_headers: &HeaderMap,
    ) -> Result<(u16, Value), LimitsError> {
        let failed = |reason: String| LimitsError::Upstream { operation: operation.to_string(), reason };
        let mut request = Request::new(Full::new(Bytes::from(payload.to_string())));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri(None)?;
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
        let target =
            HeaderValue::from_str(&format!("Kinesis_20131202.{operation}")).map_err(|e| failed(e.to_string()))?;
        headers.insert("x-amz-target", target);
        for name in CREDENTIAL_HEADERS {
            if let Some(value) = client_headers.get(name) {
                headers.insert(name, value.clone());
            }
        }
        if !headers.contains_key("authorization") {
            headers.insert("authorization", HeaderValue::from_static(FAKE_AUTHORIZATION));
            headers.insert("x-amz-date", HeaderValue::from_static(FAKE_DATE));
        }
        let answer = self.client.request(request).await.map_err(|e| failed(e.to_string()))?;
        let status = answer.status().as_u16();
        let bytes = answer.into_body().collect().await.map_err(|e| failed(e.to_string()))?.to_bytes();
        let json = serde_json::from_slice(&bytes).map_err(|e| {
            failed(format!("answer (HTTP {status}) is not JSON: {e}: {}", String::from_utf8_lossy(&bytes)))
        })?;
        Ok((status, json))
    }
}

fn upstream_error(headers: &HeaderMap, error: &dyn std::fmt::Display) -> LimitsError {
    let operation = crate::request::operation_of(headers).to_string();
    LimitsError::Upstream { operation, reason: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_must_be_an_http_url() {
        assert!(Upstream::new("http://127.0.0.1:4567").is_ok());
        for bad in ["127.0.0.1:4567", "https://127.0.0.1:4567", "http://", "not a url"] {
            let err = Upstream::new(bad).expect_err(bad);
            assert!(err.to_string().contains("invalid upstream URL"), "{err}");
        }
    }
}
