//! Where files are kept beyond the local disk: an object store (`s3://bucket/prefix`, or
//! any [`ObjectStore`], an in-memory one in tests) under a prefix, with the small async runtime
//! its client runs on.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::multipart::MultipartStore;
use object_store::ObjectStore;

use crate::{Result, StorageError};

/// Object uploads that may run at once in this process, whatever the number of subtasks: with
/// [`UPLOAD_BUFFER_BYTES`] each (plus parts in flight), this bounds an upload's memory.
pub(crate) const CONCURRENT_UPLOADS: usize = 4;

/// Bytes an upload buffers before it turns into a multipart upload (S3's smallest part).
pub(crate) const UPLOAD_BUFFER_BYTES: usize = 5 << 20;

/// An object-store location (for checkpoints, sink output): the store, the prefix every object goes under, and
/// the runtime the store's async client runs on (so the synchronous runtime can call it from
/// any thread, also from inside another tokio runtime).
pub struct RemoteLocation {
    url: String,
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The same store's multipart uploads under explicit ids, for sinks whose uploads outlive a
    /// process (`None` for stores without them).
    pub(crate) multipart: Option<Arc<dyn MultipartStore>>,
    /// Prefix without a trailing slash; empty for the bucket's root.
    pub(crate) prefix: String,
    pub(crate) runtime: IoRuntime,
    pub(crate) uploads: Arc<tokio::sync::Semaphore>,
    /// Where requests go, for messages: ` (endpoint URL, region R)` for S3, else empty.
    via: String,
}

impl std::fmt::Debug for RemoteLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLocation").field("url", &self.url).finish()
    }
}

impl RemoteLocation {
    /// An S3 location `s3://bucket[/prefix]`, configured as the AWS SDKs are: credentials from
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` (or the instance's role),
    /// region from `AWS_REGION` or `AWS_DEFAULT_REGION`, endpoint from `AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL` (plain `http://` endpoints are allowed, for S3-compatible servers).
    pub fn s3(url: &str) -> Result<Self> {
        let bad = |reason: &str| StorageError::Location { url: url.to_string(), reason: reason.to_string() };
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("expected s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name"));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL")).ok();
        let endpoint = endpoint.filter(|e| !e.is_empty());
        if let Some(endpoint) = endpoint.clone() {
            builder = builder.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
        }
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        let store = builder.build().map_err(|e| bad(&e.to_string()))?;
        let endpoint = endpoint.unwrap_or_else(|| "AWS S3".to_string());
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".to_string());
        let via = format!(" (endpoint {endpoint}, region {region})");
        let mut location = Self::from_multipart_store(url, Arc::new(store), prefix)?;
        location.via = via;
        Ok(location)
    }

    /// A location in a store with multipart uploads (S3, or the in-memory store in tests), as
    /// [`RemoteLocation::from_store`]; object-store sinks need these.
    pub fn from_multipart_store<S: ObjectStore + MultipartStore>(
        url: &str,
        store: Arc<S>,
        prefix: &str,
    ) -> Result<Self> {
        let mut location = Self::from_store(url, store.clone(), prefix)?;
        location.multipart = Some(store);
        Ok(location)
    }

    /// A location in any object store (an in-memory one in tests), objects under `prefix`.
    /// `url` only names it in messages.
    pub fn from_store(url: &str, store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rill-object-store")
            .enable_all()
            .build()
            .map_err(|e| StorageError::Location { url: url.to_string(), reason: format!("no runtime: {e}") })?;
        Ok(RemoteLocation {
            url: url.trim_end_matches('/').to_string(),
            store,
            multipart: None,
            prefix: prefix.trim_matches('/').to_string(),
            runtime: IoRuntime(Some(runtime)),
            uploads: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_UPLOADS)),
            via: String::new(),
        })
    }

    /// The location as given (`s3://bucket/prefix`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of an object, for messages.
    pub fn url_of(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url)
    }

    /// The URL of an object and where its requests go (the endpoint and region of an S3
    /// location), for the messages of failed requests: a mistyped endpoint shows in them.
    pub(crate) fn target_of(&self, rel: &str) -> String {
        format!("{}{}", self.url_of(rel), self.via)
    }

    /// The runtime the store's client runs on, to run asynchronous work of one's own with it
    /// (`None` once it is shut down).
    pub fn runtime_handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.handle()
    }
}

/// Whether `location` names an object store (`s3://...`) rather than a local directory.
pub fn is_object_store_url(location: &str) -> bool {
    location.starts_with("s3://")
}

/// Where files go: a local (or mounted shared) directory, or an object store. The one parser of
/// every "a directory or `s3://bucket/prefix`" option (checkpoint location, sink output).
#[derive(Debug, Clone)]
pub enum Location {
    /// A local directory.
    Directory(std::path::PathBuf),
    /// An object store under a prefix.
    ObjectStore(Arc<RemoteLocation>),
}

impl Location {
    /// `s3://bucket/prefix` (configured from the standard AWS variables, see
    /// [`RemoteLocation::s3`]), or else a local directory.
    pub fn parse(location: &str) -> Result<Self> {
        if is_object_store_url(location) {
            Ok(Location::ObjectStore(Arc::new(RemoteLocation::s3(location)?)))
        } else {
            Ok(Location::Directory(location.into()))
        }
    }
}

/// A tokio runtime shut down without blocking when dropped (a drop may happen on a thread that
/// must not block, such as another runtime's worker).
pub(crate) struct IoRuntime(Option<tokio::runtime::Runtime>);

impl IoRuntime {
    pub(crate) fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(|r| r.handle())
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_url_without_a_bucket_is_refused_naming_the_url() {
        let err = RemoteLocation::s3("s3:///prefix").unwrap_err().to_string();
        assert!(err.contains("s3:///prefix") && err.contains("no bucket"), "{err}");
        let err = RemoteLocation::s3("gs://b/p").unwrap_err().to_string();
        assert!(err.contains("expected s3://"), "{err}");
    }

    #[test]
    fn object_store_urls_are_told_from_local_paths() {
        assert!(matches!(Location::parse("/var/lib/rill/out"), Ok(Location::Directory(_))));
        assert!(matches!(Location::parse("s3://bucket/out"), Ok(Location::ObjectStore(_))));
        assert!(Location::parse("s3://").is_err(), "an object-store URL is never taken for a directory");
        assert!(is_object_store_url("s3://bucket/jobs/a"));
        assert!(!is_object_store_url("/var/lib/rill/checkpoints"));
        assert!(!is_object_store_url("checkpoints"));
    }
}
