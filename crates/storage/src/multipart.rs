//! Multipart uploads under explicit ids on a [`RemoteLocation`], for sinks whose uploads must
//! outlive a process: started and filled part by part while data arrives, completed only when a
//! checkpoint completes (by whichever process restores it), aborted when no checkpoint holds them.
//! Also a small put and a plain read, for the markers of such uploads and for readers of the output.

use object_store::multipart::PartId;
use object_store::PutPayload;

use crate::{RemoteLocation, Result, StorageError};

impl RemoteLocation {
    fn multipart_store(&self, rel: &str) -> Result<std::sync::Arc<dyn object_store::multipart::MultipartStore>> {
        self.multipart.clone().ok_or_else(|| StorageError::Location {
            url: self.url_of(rel),
            reason: "this object store has no multipart uploads".into(),
        })
    }

    /// Starts a multipart upload of `rel`; returns its id.
    pub fn start_upload(&self, rel: &str) -> Result<String> {
        let (store, path, url) = (self.multipart_store(rel)?, self.path(rel), self.url_of(rel));
        self.run("start upload", async move {
            store
                .create_multipart(&path)
                .await
                .map_err(|source| StorageError::object_store("start upload", url, source))
        })
    }

    /// Uploads part `index` (from 0) of upload `id`; returns the part's id for completion. Every
    /// part but the last must hold at least 5 MiB.
    pub fn upload_part(&self, rel: &str, id: &str, index: usize, bytes: Vec<u8>) -> Result<String> {
        let (store, path, url, id) = (self.multipart_store(rel)?, self.path(rel), self.url_of(rel), id.to_string());
        self.run("upload part", async move {
            let part = store
                .put_part(&path, &id, index, PutPayload::from(bytes))
                .await
                .map_err(|source| StorageError::object_store("upload part", url, source))?;
            Ok(part.content_id)
        })
    }

    /// Completes upload `id` with `parts`, making `rel` visible. Idempotent: an upload that is
    /// gone while `rel` exists was completed before (by an earlier attempt).
    pub fn complete_upload(&self, rel: &str, id: &str, parts: &[String]) -> Result<()> {
        let (store, objects) = (self.multipart_store(rel)?, self.store.clone());
        let (path, url, id) = (self.path(rel), self.url_of(rel), id.to_string());
        let parts: Vec<PartId> = parts.iter().map(|p| PartId { content_id: p.clone() }).collect();
        self.run("complete upload", async move {
            match store.complete_multipart(&path, &id, parts).await {
                Ok(_) => Ok(()),
                Err(error) => match objects.head(&path).await {
                    Ok(_) => Ok(()),
                    Err(_) => Err(StorageError::object_store("complete upload", url, error)),
                },
            }
        })
    }

    /// Aborts upload `id` of `rel`, discarding its parts; one already gone is fine.
    pub fn abort_upload(&self, rel: &str, id: &str) -> Result<()> {
        let (store, path, url, id) = (self.multipart_store(rel)?, self.path(rel), self.url_of(rel), id.to_string());
        self.run("abort upload", async move {
            match store.abort_multipart(&path, &id).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(source) => Err(StorageError::object_store("abort upload", url, source)),
            }
        })
    }

    /// Writes the small object `rel` (in one put).
    pub fn write(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let (store, path, url) = (self.store.clone(), self.path(rel), self.url_of(rel));
        self.run("put", async move {
            store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|source| StorageError::object_store("put", url, source))?;
            Ok(())
        })
    }

    /// The bytes of object `rel`, or `None` if there is none.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(rel)?.map(|b| b.to_vec()))
    }
}
