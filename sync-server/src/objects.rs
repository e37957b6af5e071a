//! Photos in S3-compatible object storage (`--blobs s3://bucket/prefix`), for
//! a city's station whose instances share them (issue 17). Each instance
//! keeps its photo directory as a cache in front: an upload is complete for a
//! device only once the object holds it, a photo the station received (a
//! citizen's, a camera's snapshot) is stored there before its record is
//! written, and a photo another instance received is fetched into the cache
//! when first asked for. Objects are named by their SHA-256, checked when
//! fetched. Credentials and endpoint come from the usual `AWS_*` environment
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_DEFAULT_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`).

use std::sync::Arc;

use futures_util::TryStreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use sha2::{Digest, Sha256};

use menqian_core::evidence::blobs::BlobDir;

/// The folder (under the prefix) of unfinished uploads' acknowledged chunks.
const UPLOADS: &str = "uploads";

/// Where a station keeps its photos besides its own directory.
#[derive(Clone)]
pub struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for ObjectBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBlobs")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What object storage can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Files(#[from] menqian_core::Error),
}

impl ObjectBlobs {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub fn open(url: &str) -> Result<ObjectBlobs, ObjectError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| ObjectError::Bad(format!("--blobs {url}: want s3://bucket/prefix")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ObjectError::Bad(format!("--blobs {url}: no bucket")));
        }
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()?;
        Ok(ObjectBlobs {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
        })
    }

    fn path(&self, hash: &str) -> ObjectPath {
        self.key(hash)
    }

    fn key(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    /// Where the acknowledged chunks of `uploader`'s upload of `hash` are
    /// kept until it completes: `uploads/<uploader>/<hash>/`.
    fn parts_of(&self, uploader: &str, hash: &str) -> Result<ObjectPath, ObjectError> {
        if !menqian_core::evidence::blobs::is_uploader_name(uploader)
            || !menqian_core::evidence::is_hash(hash)
        {
            return Err(ObjectError::Bad("not an upload's name".into()));
        }
        Ok(self.key(&format!("{UPLOADS}/{uploader}/{hash}")))
    }

    /// Keeps an acknowledged chunk of an unfinished upload (`offset` of a
    /// `total`-byte photo), so that the upload resumes through any instance
    /// ([`ObjectBlobs::parts`]).
    pub async fn put_part(
        &self,
        uploader: &str,
        hash: &str,
        offset: u64,
        total: u64,
        chunk: impl Into<PutPayload>,
    ) -> Result<(), ObjectError> {
        let dir = self.parts_of(uploader, hash)?;
        let key = ObjectPath::from(format!("{dir}/{total}-{offset:010}"));
        self.store.put(&key, chunk.into()).await?;
        Ok(())
    }

    /// The chunks of `uploader`'s upload of `hash` that instances
    /// acknowledged, by offset: each its offset, the photo's total and its
    /// key ([`ObjectBlobs::part`]).
    pub async fn parts(
        &self,
        uploader: &str,
        hash: &str,
    ) -> Result<Vec<(u64, u64, ObjectPath)>, ObjectError> {
        let dir = self.parts_of(uploader, hash)?;
        let mut parts: Vec<(u64, u64, ObjectPath)> = self
            .store
            .list(Some(&dir))
            .try_filter_map(|meta| async move {
                let name = meta.location.filename().unwrap_or_default().to_string();
                let parsed = name.split_once('-').and_then(|(total, offset)| {
                    Some((offset.parse::<u64>().ok()?, total.parse::<u64>().ok()?))
                });
                Ok(parsed.map(|(offset, total)| (offset, total, meta.location)))
            })
            .try_collect()
            .await?;
        parts.sort_by_key(|p| p.0);
        Ok(parts)
    }

    /// The bytes of `uploader`'s unfinished uploads that any instance
    /// acknowledged: what its uploads in progress hold across the city, the
    /// figure its bound on them is held to.
    pub async fn parts_bytes(&self, uploader: &str) -> Result<u64, ObjectError> {
        if !menqian_core::evidence::blobs::is_uploader_name(uploader) {
            return Err(ObjectError::Bad("not an uploader's name".into()));
        }
        let dir = self.key(&format!("{UPLOADS}/{uploader}"));
        Ok(self
            .store
            .list(Some(&dir))
            .try_fold(0u64, |sum, meta| async move {
                Ok(sum.saturating_add(meta.size))
            })
            .await?)
    }

    /// One kept chunk's bytes (at most an upload chunk's size).
    pub async fn part(&self, key: &ObjectPath) -> Result<Vec<u8>, ObjectError> {
        let got = self.store.get(key).await?;
        if got.meta.size > crate::sync::MAX_BLOB_CHUNK as u64 {
            return Err(ObjectError::Bad(format!("{key} is larger than a chunk")));
        }
        Ok(got.bytes().await?.to_vec())
    }

    /// Deletes the kept chunks of an upload that completed.
    pub async fn drop_parts(&self, uploader: &str, hash: &str) -> Result<(), ObjectError> {
        let dir = self.parts_of(uploader, hash)?;
        let keys: Vec<ObjectPath> = self
            .store
            .list(Some(&dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for key in keys {
            self.store.delete(&key).await?;
        }
        Ok(())
    }

    /// Deletes kept chunks not written for `max_age` (uploads a device gave
    /// up); how many.
    pub async fn collect_parts(&self, max_age: std::time::Duration) -> Result<u64, ObjectError> {
        let oldest = chrono::Utc::now()
            - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        let stale: Vec<ObjectPath> = self
            .store
            .list(Some(&self.key(UPLOADS)))
            .try_filter_map(|meta| async move {
                Ok((meta.last_modified < oldest).then_some(meta.location))
            })
            .try_collect()
            .await?;
        for key in &stale {
            self.store.delete(key).await?;
        }
        Ok(stale.len() as u64)
    }

    /// Whether the object storage holds `hash`.
    pub async fn contains(&self, hash: &str) -> Result<bool, ObjectError> {
        match self.store.head(&self.path(hash)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores `bytes` under their SHA-256 unless already there; the hash.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<String, ObjectError> {
        let hash = menqian_core::hex::encode(&Sha256::digest(&bytes));
        if !self.contains(&hash).await? {
            self.store
                .put(&self.path(&hash), PutPayload::from(bytes))
                .await?;
        }
        Ok(hash)
    }

    /// Stores the cached file of `hash` unless the object storage has it.
    pub async fn keep(&self, cache: &BlobDir, hash: &str) -> Result<(), ObjectError> {
        if self.contains(hash).await? {
            return Ok(());
        }
        let (cache, name) = (cache.clone(), hash.to_string());
        let bytes = tokio::task::spawn_blocking(move || cache.read(&name))
            .await
            .map_err(|e| ObjectError::Bad(e.to_string()))??;
        self.put(bytes).await.map(|_| ())
    }

    /// Fetches `hash` into the cache if the object storage has it; whether
    /// it did. An object whose content is not its name is refused.
    pub async fn fetch(&self, cache: &BlobDir, hash: &str) -> Result<bool, ObjectError> {
        let got = match self.store.get(&self.path(hash)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if got.meta.size > menqian_core::evidence::blobs::MAX_BLOB_BYTES {
            return Err(ObjectError::Bad(format!("object {hash} is too large")));
        }
        let bytes = got.bytes().await?.to_vec();
        let cache = cache.clone();
        let stored = tokio::task::spawn_blocking(move || cache.put(&bytes))
            .await
            .map_err(|e| ObjectError::Bad(e.to_string()))??;
        if stored != hash {
            return Err(ObjectError::Bad(format!(
                "object {hash} holds other content ({stored})"
            )));
        }
        Ok(true)
    }

    /// Stores every finished photo of `cache` the object storage lacks (a
    /// station moved into a city's, `migrate --blobs`); how many it stored.
    pub async fn keep_all(&self, cache: &BlobDir) -> Result<u64, ObjectError> {
        let root = cache.root().to_path_buf();
        let hashes = tokio::task::spawn_blocking(move || finished(&root))
            .await
            .map_err(|e| ObjectError::Bad(e.to_string()))??;
        let mut stored = 0;
        for hash in hashes {
            if !self.contains(&hash).await? {
                self.keep(cache, &hash).await?;
                stored += 1;
            }
        }
        Ok(stored)
    }
}

/// The finished photos under a photo directory (`ab/abcd…`), not the
/// unfinished uploads under `partial/`.
fn finished(root: &std::path::Path) -> Result<Vec<String>, ObjectError> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(root) else {
        return Ok(out);
    };
    for dir in dirs {
        let dir = dir.map_err(menqian_core::Error::from)?;
        if dir.file_name() == "partial" || !dir.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(dir.path()).map_err(menqian_core::Error::from)? {
            let name = file.map_err(menqian_core::Error::from)?.file_name();
            if let Some(name) = name.to_str().filter(|n| menqian_core::evidence::is_hash(n)) {
                out.push(name.to_string());
            }
        }
    }
    Ok(out)
}
