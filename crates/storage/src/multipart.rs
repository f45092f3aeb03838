//! Multipart uploads under explicit ids on a [`RemoteLocation`], for sinks whose uploads must
//! outlive a process: started and filled part by part while data arrives, completed only when a
//! checkpoint completes (by whichever process restores it), aborted when no checkpoint holds them.
//! Also a small put and a plain read, for the markers of such uploads and for readers of the output.

use object_store::multipart::PartId;
use object_store::PutPayload;

use crate::{RemoteLocation, Result, StorageError};

/// What completing a multipart upload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadCompletion {
    /// The object is visible: completed now, or found completed before.
    Completed,
    /// Neither the upload nor the object exists: it can never be completed.
    Missing,
}

impl RemoteLocation {
    fn multipart_store(&self, rel: &str) -> Result<std::sync::Arc<dyn object_store::multipart::MultipartStore>> {
        self.multipart.clone().ok_or_else(|| StorageError::Location {
            url: self.target_of(rel),
            reason: "this object store has no multipart uploads".into(),
        })
    }

    /// Starts a multipart upload of `rel`; returns its id.
    pub fn start_upload(&self, rel: &str) -> Result<String> {
        let (store, path, url) = (self.multipart_store(rel)?, self.path(rel), self.target_of(rel));
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
        let (store, path, url, id) = (self.multipart_store(rel)?, self.path(rel), self.target_of(rel), id.to_string());
        self.run("upload part", async move {
            let part = store
                .put_part(&path, &id, index, PutPayload::from(bytes))
                .await
                .map_err(|source| StorageError::object_store("upload part", url, source))?;
            Ok(part.content_id)
        })
    }

    /// Completes upload `id` with `parts`, making `rel` visible. Idempotent: an upload that is
    /// gone while `rel` exists was completed before (by an earlier attempt). An upload that is
    /// gone while `rel` is missing too (aborted, reaped by a lifecycle rule, its object moved
    /// or expired since) can never be completed: [`UploadCompletion::Missing`]. "Gone" is what S3
    /// answers (`404 NoSuchUpload`); moto 5.2.5 answers `500` instead (a `KeyError` inside it) and
    /// the in-memory store a generic error, so against them it stays an error.
    pub fn complete_upload(&self, rel: &str, id: &str, parts: &[String]) -> Result<UploadCompletion> {
        let (store, objects) = (self.multipart_store(rel)?, self.store.clone());
        let (path, url, id) = (self.path(rel), self.target_of(rel), id.to_string());
        let parts: Vec<PartId> = parts.iter().map(|p| PartId { content_id: p.clone() }).collect();
        self.run("complete upload", async move {
            match store.complete_multipart(&path, &id, parts).await {
                Ok(_) => Ok(UploadCompletion::Completed),
                Err(error) => match objects.head(&path).await {
                    Ok(_) => Ok(UploadCompletion::Completed),
                    Err(object_store::Error::NotFound { .. })
                        if matches!(error, object_store::Error::NotFound { .. }) =>
                    {
                        Ok(UploadCompletion::Missing)
                    }
                    Err(_) => Err(StorageError::object_store("complete upload", url, error)),
                },
            }
        })
    }

    /// Aborts upload `id` of `rel`, discarding its parts; one already gone is fine.
    pub fn abort_upload(&self, rel: &str, id: &str) -> Result<()> {
        let (store, path, url, id) = (self.multipart_store(rel)?, self.path(rel), self.target_of(rel), id.to_string());
        self.run("abort upload", async move {
            match store.abort_multipart(&path, &id).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(source) => Err(StorageError::object_store("abort upload", url, source)),
            }
        })
    }

    /// Writes the small object `rel` (in one put).
    pub fn write(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let (store, path, url) = (self.store.clone(), self.path(rel), self.target_of(rel));
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

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn completing_an_upload_again_finds_it_completed() {
        let location =
            RemoteLocation::from_multipart_store("memory://out", std::sync::Arc::new(InMemory::new()), "out").unwrap();
        let id = location.start_upload("part-1").unwrap();
        let part = location.upload_part("part-1", &id, 0, b"lines\n".to_vec()).unwrap();
        assert_eq!(
            location.complete_upload("part-1", &id, std::slice::from_ref(&part)).unwrap(),
            UploadCompletion::Completed
        );
        assert_eq!(location.complete_upload("part-1", &id, &[part]).unwrap(), UploadCompletion::Completed);
    }
}
