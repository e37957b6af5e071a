//! A content-addressed blob directory: `<dir>/<first 2 hex>/<hash>`, each file
//! written to a temporary name, synced and renamed, so a blob is either whole
//! or absent. Resumable uploads grow in `<dir>/partial/<hash>` and become a
//! blob only once their SHA-256 matches their name. The phone and the sync
//! server use the same code.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{is_hash, sha256_hex};
use crate::error::{Error, Result};

/// The largest blob accepted: an evidence JPEG is 0.2–1 MB.
pub const MAX_BLOB_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobDir> {
        let root = root.into();
        fs::create_dir_all(root.join("partial"))?;
        Ok(BlobDir { root })
    }

    fn check(hash: &str) -> Result<()> {
        if is_hash(hash) {
            Ok(())
        } else {
            Err(Error::invalid("hash", "not a SHA-256 hex name"))
        }
    }

    pub fn path(&self, hash: &str) -> Result<PathBuf> {
        Self::check(hash)?;
        Ok(self.root.join(&hash[..2]).join(hash))
    }

    fn partial_path(&self, hash: &str) -> Result<PathBuf> {
        Self::check(hash)?;
        Ok(self.root.join("partial").join(hash))
    }

    pub fn contains(&self, hash: &str) -> Result<bool> {
        Ok(self.path(hash)?.is_file())
    }

    /// Stores `bytes` under their hash (a no-op if present) and returns it.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let hash = sha256_hex(bytes);
        let path = self.path(&hash)?;
        if !path.is_file() {
            write_atomically(&path, bytes)?;
        }
        Ok(hash)
    }

    pub fn read(&self, hash: &str) -> Result<Vec<u8>> {
        let path = self.path(hash)?;
        fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found("photo", hash),
            _ => Error::Io(e),
        })
    }

    /// The size of a blob, or of the part of an upload received so far.
    pub fn received(&self, hash: &str) -> Result<Received> {
        if let Ok(m) = fs::metadata(self.path(hash)?) {
            return Ok(Received::Complete { bytes: m.len() });
        }
        match fs::metadata(self.partial_path(hash)?) {
            Ok(m) => Ok(Received::Partial { bytes: m.len() }),
            Err(_) => Ok(Received::Partial { bytes: 0 }),
        }
    }

    /// Appends `chunk` to the upload of `hash` at `offset`, which must be the
    /// bytes received so far (else nothing is written and the answer says
    /// where to resume). When `total` bytes are in, the upload is hashed: a
    /// match becomes the blob; a mismatch is deleted and refused.
    pub fn append(&self, hash: &str, offset: u64, total: u64, chunk: &[u8]) -> Result<Received> {
        if total > MAX_BLOB_BYTES {
            return Err(Error::invalid(
                "total",
                format!("a photo may be at most {MAX_BLOB_BYTES} bytes"),
            ));
        }
        let now = self.received(hash)?;
        let have = match now {
            Received::Complete { .. } => return Ok(now),
            Received::Partial { bytes } => bytes,
        };
        if offset != have {
            return Ok(now);
        }
        if offset + chunk.len() as u64 > total {
            return Err(Error::invalid("chunk", "runs past the declared total"));
        }
        let partial = self.partial_path(hash)?;
        {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&partial)?;
            f.write_all(chunk)?;
            f.sync_data()?;
        }
        let have = have + chunk.len() as u64;
        if have < total {
            return Ok(Received::Partial { bytes: have });
        }
        let actual = hash_file(&partial)?;
        if actual != hash {
            fs::remove_file(&partial)?;
            return Err(Error::invalid(
                "blob",
                format!("content hashes to {actual}, not {hash}: upload discarded"),
            ));
        }
        let path = self.path(hash)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::rename(&partial, &path)?;
        sync_dir(path.parent());
        Ok(Received::Complete { bytes: have })
    }
}

/// How much of a blob a store has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Complete { bytes: u64 },
    Partial { bytes: u64 },
}

fn hash_file(path: &Path) -> Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(crate::hex::encode(&hasher.finalize()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::invalid("path", "blob path has no directory"))?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(Some(dir));
    Ok(())
}

fn sync_dir(dir: Option<&Path>) {
    // Makes the rename durable where the platform allows opening a directory.
    if let Some(d) = dir
        && let Ok(f) = File::open(d)
    {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_resumes_and_is_verified() {
        let dir = tempfile::tempdir().expect("tmp");
        let blobs = BlobDir::open(dir.path()).expect("open");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let hash = sha256_hex(&data);
        let total = data.len() as u64;
        assert_eq!(
            blobs.append(&hash, 0, total, &data[..30_000]).expect("a"),
            Received::Partial { bytes: 30_000 }
        );
        // A retry of an old chunk writes nothing and says where to resume.
        assert_eq!(
            blobs.append(&hash, 0, total, &data[..10]).expect("b"),
            Received::Partial { bytes: 30_000 }
        );
        assert_eq!(
            blobs
                .append(&hash, 30_000, total, &data[30_000..])
                .expect("c"),
            Received::Complete { bytes: total }
        );
        assert_eq!(blobs.read(&hash).expect("read"), data);
        // Uploading it again is a no-op: deduplicated.
        assert_eq!(
            blobs.append(&hash, 0, total, &data).expect("d"),
            Received::Complete { bytes: total }
        );
    }

    #[test]
    fn content_that_does_not_match_its_name_is_discarded() {
        let dir = tempfile::tempdir().expect("tmp");
        let blobs = BlobDir::open(dir.path()).expect("open");
        let hash = sha256_hex(b"the real photo");
        let err = blobs.append(&hash, 0, 5, b"forge").expect_err("mismatch");
        assert!(err.to_string().contains("upload discarded"), "{err}");
        assert_eq!(
            blobs.received(&hash).expect("r"),
            Received::Partial { bytes: 0 }
        );
        assert!(!blobs.contains(&hash).expect("c"));
    }
}
