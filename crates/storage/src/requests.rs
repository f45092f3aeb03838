//! The object-store requests rill needs, as blocking calls on a [`RemoteLocation`]: put
//! a file (streamed, multipart past one buffer), put an object only if absent or only if it is
//! still the version read, get, download, list, copy and delete. Paths are relative to the
//! location's prefix.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::location::{CONCURRENT_UPLOADS, UPLOAD_BUFFER_BYTES};
use crate::{RemoteLocation, Result, StorageError};

/// What a put-if-absent found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was written.
    Created,
    /// An object already had that name; nothing was written.
    AlreadyExists,
}

/// The version of an object as read, for a put that succeeds only if the object is still that
/// version (S3's `If-Match` on the ETag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    e_tag: Option<String>,
    version: Option<String>,
}

/// What a conditional update found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The object was replaced; this is its new version.
    Updated(ObjectVersion),
    /// The object is no longer the version given (another writer replaced or deleted it);
    /// nothing was written.
    Conflict,
}

impl RemoteLocation {
    /// The store path of `rel`.
    pub(crate) fn path(&self, rel: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// Runs `future` on the location's runtime and waits for it, from any thread.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        what: &'static str,
        future: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let handle = self
            .runtime
            .handle()
            .ok_or_else(|| StorageError::object_store_failure(what, self.target_of(""), "runtime is shut down"))?;
        let task = handle.spawn(future);
        futures::executor::block_on(task)
            .map_err(|e| StorageError::object_store_failure(what, self.target_of(""), e))?
    }

    /// Writes `bytes` to `rel` unless an object is there already (a conditional put, S3's
    /// `If-None-Match: *`), so two writers can never both create it.
    pub fn put_if_absent(&self, rel: &str, bytes: Vec<u8>) -> Result<PutOutcome> {
        Ok(match self.create_versioned(rel, bytes)? {
            Some(_) => PutOutcome::Created,
            None => PutOutcome::AlreadyExists,
        })
    }

    /// The bytes of `rel` with their version (for [`RemoteLocation::put_if_version`]), or
    /// `None` if there is no such object.
    pub fn get_versioned(&self, rel: &str) -> Result<Option<(Bytes, ObjectVersion)>> {
        let (store, path, url) = (self.store.clone(), self.path(rel), self.target_of(rel));
        self.run("get", async move {
            let result = match store.get(&path).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(source) => return Err(StorageError::object_store("get", url, source)),
            };
            let version = ObjectVersion { e_tag: result.meta.e_tag.clone(), version: result.meta.version.clone() };
            let bytes = result.bytes().await.map_err(|source| StorageError::object_store("get", url, source))?;
            Ok(Some((bytes, version)))
        })
    }

    /// Replaces `rel` with `bytes` only if it is still `version` (a conditional put, S3's
    /// `If-Match`), so of two writers that read the same version only one can replace it.
    pub fn put_if_version(&self, rel: &str, bytes: Vec<u8>, version: &ObjectVersion) -> Result<UpdateOutcome> {
        let (store, path, url) = (self.store.clone(), self.path(rel), self.target_of(rel));
        let expected = UpdateVersion { e_tag: version.e_tag.clone(), version: version.version.clone() };
        self.run("put", async move {
            let options = PutOptions { mode: PutMode::Update(expected), ..Default::default() };
            match store.put_opts(&path, PutPayload::from(bytes), options).await {
                Ok(put) => Ok(UpdateOutcome::Updated(ObjectVersion { e_tag: put.e_tag, version: put.version })),
                Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
                    Ok(UpdateOutcome::Conflict)
                }
                Err(source) => Err(StorageError::object_store("put", url, source)),
            }
        })
    }

    /// Writes `bytes` to `rel` unless an object is there already, returning the new object's
    /// version; `None` if one was there (nothing written).
    pub fn create_versioned(&self, rel: &str, bytes: Vec<u8>) -> Result<Option<ObjectVersion>> {
        let (store, path, url) = (self.store.clone(), self.path(rel), self.target_of(rel));
        self.run("put", async move {
            let options = PutOptions { mode: PutMode::Create, ..Default::default() };
            match store.put_opts(&path, PutPayload::from(bytes), options).await {
                Ok(put) => Ok(Some(ObjectVersion { e_tag: put.e_tag, version: put.version })),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(None),
                Err(source) => Err(StorageError::object_store("put", url, source)),
            }
        })
    }

    /// Whether object `rel` exists (a HEAD request).
    pub fn exists(&self, rel: &str) -> Result<bool> {
        let (store, path, url) = (self.store.clone(), self.path(rel), self.target_of(rel));
        self.run("head", async move {
            match store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(source) => Err(StorageError::object_store("head", url, source)),
            }
        })
    }

    /// The bytes of `rel`, or `None` if there is no such object.
    pub fn get(&self, rel: &str) -> Result<Option<Bytes>> {
        Ok(self.get_versioned(rel)?.map(|(bytes, _)| bytes))
    }

    /// The bytes of `rel`, creating it with `bytes` first if there is no such object (a
    /// conditional put): every caller gets the same answer, whoever created it.
    pub fn get_or_create(&self, rel: &str, bytes: Vec<u8>) -> Result<Bytes> {
        if let Some(found) = self.get(rel)? {
            return Ok(found);
        }
        if self.create_versioned(rel, bytes.clone())?.is_some() {
            return Ok(Bytes::from(bytes));
        }
        self.get(rel)?.ok_or_else(|| {
            StorageError::object_store_failure("get", self.target_of(rel), "created by another writer, then deleted")
        })
    }

    /// Downloads `rel` into the local file `to` (through a temporary file, so a cut-short
    /// download never looks whole). `false` if there is no such object.
    pub fn download(&self, rel: &str, to: &Path) -> Result<bool> {
        let (store, path, url, to) = (self.store.clone(), self.path(rel), self.target_of(rel), to.to_path_buf());
        self.run("download", async move {
            let result = match store.get(&path).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(source) => return Err(StorageError::object_store("get", url, source)),
            };
            if let Some(dir) = to.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(StorageError::io("create", dir))?;
            }
            let tmp = to.with_extension("download");
            let mut file = tokio::fs::File::create(&tmp).await.map_err(StorageError::io("create", &tmp))?;
            let mut chunks = result.into_stream();
            while let Some(chunk) =
                chunks.try_next().await.map_err(|source| StorageError::object_store("get", url.clone(), source))?
            {
                file.write_all(&chunk).await.map_err(StorageError::io("write", &tmp))?;
            }
            file.sync_all().await.map_err(StorageError::io("fsync", &tmp))?;
            tokio::fs::rename(&tmp, &to).await.map_err(StorageError::io("rename", &to))?;
            Ok(true)
        })
    }

    /// The names directly under `rel` (a "directory" listing: common prefixes and objects).
    pub fn list_names(&self, rel: &str) -> Result<Vec<String>> {
        let (store, path, url) = (self.store.clone(), self.path(rel), self.target_of(rel));
        self.run("list", async move {
            let listing = store
                .list_with_delimiter(Some(&path))
                .await
                .map_err(|source| StorageError::object_store("list", url, source))?;
            let names = listing.common_prefixes.iter().chain(listing.objects.iter().map(|o| &o.location));
            Ok(names.filter_map(|p| p.filename().map(str::to_string)).collect())
        })
    }

    /// Every object under `rel`, recursively, as paths relative to the location's prefix.
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        let (store, path, url) = (self.store.clone(), self.path(rel), self.target_of(rel));
        let prefix = self.path("");
        self.run("list", async move {
            let objects: Vec<_> = store
                .list(Some(&path))
                .try_collect()
                .await
                .map_err(|source| StorageError::object_store("list", url, source))?;
            let strip = |p: &ObjectPath| -> String {
                let full = p.as_ref();
                full.strip_prefix(prefix.as_ref()).unwrap_or(full).trim_start_matches('/').to_string()
            };
            Ok(objects.iter().map(|o| strip(&o.location)).collect())
        })
    }

    /// Deletes object `rel`; one already gone is fine.
    pub fn remove(&self, rel: &str) -> Result<()> {
        let (store, path, url) = (self.store.clone(), self.path(rel), self.target_of(rel));
        self.run("delete", async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(source) => Err(StorageError::object_store("delete", url, source)),
            }
        })
    }

    /// Copies `from` to `to`.
    pub fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (store, src, dst, url) = (self.store.clone(), self.path(from), self.path(to), self.target_of(from));
        self.run("copy", async move {
            store.copy(&src, &dst).await.map_err(|source| StorageError::object_store("copy", url, source))
        })
    }

    /// Uploads local files, each `(file, rel)` to object `rel`, streamed (one buffer of 5 MiB,
    /// multipart past it): at most 4 at once in this process, whatever the number of callers.
    pub async fn upload_files(&self, files: Vec<(PathBuf, String)>) -> Result<()> {
        futures::stream::iter(files)
            .map(|(local, object)| async move {
                // One permit per file: uploads of every subtask together stay within bounds.
                let _permit = self.uploads.acquire().await.map_err(|_| {
                    StorageError::object_store_failure("upload", self.target_of(&object), "upload pool closed")
                })?;
                upload_file(self.store.clone(), self.path(&object), self.target_of(&object), local).await
            })
            .buffer_unordered(CONCURRENT_UPLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// Uploads the local file `from` to `to`, streaming: at most one buffer of
/// [`UPLOAD_BUFFER_BYTES`] (plus two parts in flight) is held, whatever the file's size. A
/// multipart upload that fails while parts are written is aborted; one whose completion fails is
/// left to the bucket's lifecycle rule for incomplete uploads (the writer cannot abort it then).
async fn upload_file(store: Arc<dyn ObjectStore>, to: ObjectPath, url: String, from: PathBuf) -> Result<()> {
    // The writer reports the store's own error inside an I/O error: unwrap it when it is one.
    let failed = |e: std::io::Error| {
        let source = if e.get_ref().is_some_and(|inner| inner.is::<object_store::Error>()) {
            match e.into_inner().map(|inner| inner.downcast::<object_store::Error>()) {
                Some(Ok(store_error)) => *store_error,
                Some(Err(other)) => object_store::Error::Generic { store: "rill", source: other },
                None => object_store::Error::Generic { store: "rill", source: "unknown I/O error".into() },
            }
        } else {
            object_store::Error::Generic { store: "rill", source: Box::new(e) }
        };
        StorageError::object_store("upload", url.clone(), source)
    };
    let mut file = tokio::fs::File::open(&from).await.map_err(StorageError::io("open", &from))?;
    let mut writer = BufWriter::with_capacity(store, to, UPLOAD_BUFFER_BYTES).with_max_concurrency(2);
    let mut buf = vec![0u8; 1 << 20];
    let written: std::io::Result<()> = async {
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            writer.write_all(&buf[..n]).await?;
        }
    }
    .await;
    if let Err(e) = written {
        let _ = writer.abort().await;
        return Err(failed(e));
    }
    writer.shutdown().await.map_err(failed)
}
