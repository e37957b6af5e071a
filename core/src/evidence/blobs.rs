//! A content-addressed blob directory: `<dir>/<first 2 hex>/<hash>`, each file
//! written to a temporary name, synced and renamed, so a blob is either whole
//! or absent. Resumable uploads grow in `<dir>/partial/<uploader>/<hash>`, one
//! per uploader, so two devices sending the same photo cannot disturb each
//! other; an upload becomes the blob only once its SHA-256 matches its name,
//! and the first complete, verified copy wins. The phone and the sync server
//! use the same code.

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

/// Whether `uploader` may name an upload's owner (a device id): 1 to 64
/// ASCII letters, digits, `-` and `_`, so that it is safe in a path or an
/// object key.
pub fn is_uploader_name(uploader: &str) -> bool {
    (1..=64).contains(&uploader.len())
        && uploader
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl BlobDir {
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobDir> {
        let root = root.into();
        fs::create_dir_all(root.join("partial"))?;
        Ok(BlobDir { root })
    }

    /// The directory the blobs are in.
    pub fn root(&self) -> &Path {
        &self.root
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

    fn partial_dir(&self, uploader: &str) -> Result<PathBuf> {
        if !is_uploader_name(uploader) {
            return Err(Error::invalid("uploader", "not an uploader name"));
        }
        Ok(self.root.join("partial").join(uploader))
    }

    fn partial_path(&self, uploader: &str, hash: &str) -> Result<PathBuf> {
        Self::check(hash)?;
        Ok(self.partial_dir(uploader)?.join(hash))
    }

    /// Bytes of unfinished uploads `uploader` has on disk.
    pub fn partial_bytes(&self, uploader: &str) -> Result<u64> {
        let dir = self.partial_dir(uploader)?;
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut total = 0;
        for entry in entries {
            total += entry?.metadata()?.len();
        }
        Ok(total)
    }

    /// Deletes unfinished uploads not written to for `max_age`, and any
    /// uploader directory left empty; returns how many uploads and bytes.
    pub fn collect_partials(&self, max_age: std::time::Duration) -> Result<(u64, u64)> {
        let now = std::time::SystemTime::now();
        let (mut files, mut bytes) = (0, 0);
        for dir in fs::read_dir(self.root.join("partial"))? {
            let dir = dir?.path();
            if !dir.is_dir() {
                // An upload from before uploads had owners.
                let m = fs::metadata(&dir)?;
                files += 1;
                bytes += m.len();
                fs::remove_file(&dir)?;
                continue;
            }
            let mut left = 0;
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let m = entry.metadata()?;
                let age = m
                    .modified()
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .unwrap_or_default();
                if age >= max_age {
                    fs::remove_file(entry.path())?;
                    files += 1;
                    bytes += m.len();
                } else {
                    left += 1;
                }
            }
            if left == 0 {
                let _ = fs::remove_dir(&dir);
            }
        }
        Ok((files, bytes))
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

    /// The size of a blob, or of the part of `uploader`'s upload received so far.
    pub fn received(&self, uploader: &str, hash: &str) -> Result<Received> {
        if let Ok(m) = fs::metadata(self.path(hash)?) {
            return Ok(Received::Complete { bytes: m.len() });
        }
        match fs::metadata(self.partial_path(uploader, hash)?) {
            Ok(m) => Ok(Received::Partial { bytes: m.len() }),
            Err(_) => Ok(Received::Partial { bytes: 0 }),
        }
    }

    /// Appends `chunk` to the upload of `hash` at `offset`, which must be the
    /// bytes received so far (else nothing is written and the answer says
    /// where to resume). When `total` bytes are in, the upload is hashed: a
    /// match becomes the blob; a mismatch is deleted and refused.
    pub fn append(
        &self,
        uploader: &str,
        hash: &str,
        offset: u64,
        total: u64,
        chunk: &[u8],
    ) -> Result<Received> {
        if total == 0 || total > MAX_BLOB_BYTES {
            return Err(Error::invalid(
                "total",
                format!("a photo is 1 to {MAX_BLOB_BYTES} bytes"),
            ));
        }
        let now = self.received(uploader, hash)?;
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
        let partial = self.partial_path(uploader, hash)?;
        if let Some(dir) = partial.parent() {
            fs::create_dir_all(dir)?;
        }
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
        if path.is_file() {
            // Another uploader's copy was verified first: it is the same bytes.
            fs::remove_file(&partial)?;
        } else {
            fs::rename(&partial, &path)?;
            sync_dir(path.parent());
        }
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
            blobs
                .append("dev-a", &hash, 0, total, &data[..30_000])
                .expect("a"),
            Received::Partial { bytes: 30_000 }
        );
        // A retry of an old chunk writes nothing and says where to resume.
        assert_eq!(
            blobs
                .append("dev-a", &hash, 0, total, &data[..10])
                .expect("b"),
            Received::Partial { bytes: 30_000 }
        );
        assert_eq!(
            blobs
                .append("dev-a", &hash, 30_000, total, &data[30_000..])
                .expect("c"),
            Received::Complete { bytes: total }
        );
        assert_eq!(blobs.read(&hash).expect("read"), data);
        // Uploading it again is a no-op: deduplicated.
        assert_eq!(
            blobs.append("dev-a", &hash, 0, total, &data).expect("d"),
            Received::Complete { bytes: total }
        );
    }

    #[test]
    fn uploaders_do_not_disturb_each_other_and_stale_partials_are_collected() {
        let dir = tempfile::tempdir().expect("tmp");
        let blobs = BlobDir::open(dir.path()).expect("open");
        let data = vec![7u8; 10_000];
        let hash = sha256_hex(&data);
        blobs
            .append("dev-a", &hash, 0, 10_000, &data[..4_000])
            .expect("a");
        // Another device's junk under the same name fails on its own.
        assert!(
            blobs
                .append("dev-b", &hash, 0, 10_000, &[0u8; 10_000])
                .is_err()
        );
        assert_eq!(
            blobs
                .append("dev-a", &hash, 4_000, 10_000, &data[4_000..])
                .expect("b"),
            Received::Complete { bytes: 10_000 }
        );
        blobs
            .append("dev-c", &sha256_hex(b"other"), 0, 100, b"12345")
            .expect("c");
        assert_eq!(blobs.partial_bytes("dev-c").expect("p"), 5);
        assert!(blobs.append("../x", &sha256_hex(b"z"), 0, 1, b"z").is_err());
        assert!(
            blobs.append("dev-c", &hash, 0, 0, b"").is_err(),
            "an empty total"
        );
        assert_eq!(
            blobs
                .collect_partials(std::time::Duration::from_secs(3600))
                .expect("g"),
            (0, 0)
        );
        assert_eq!(
            blobs
                .collect_partials(std::time::Duration::ZERO)
                .expect("g"),
            (1, 5)
        );
        assert_eq!(blobs.partial_bytes("dev-c").expect("p"), 0);
    }

    #[test]
    fn content_that_does_not_match_its_name_is_discarded() {
        let dir = tempfile::tempdir().expect("tmp");
        let blobs = BlobDir::open(dir.path()).expect("open");
        let hash = sha256_hex(b"the real photo");
        let err = blobs
            .append("dev-a", &hash, 0, 5, b"forge")
            .expect_err("mismatch");
        assert!(err.to_string().contains("upload discarded"), "{err}");
        assert_eq!(
            blobs.received("dev-a", &hash).expect("r"),
            Received::Partial { bytes: 0 }
        );
        assert!(!blobs.contains(&hash).expect("c"));
    }
}
