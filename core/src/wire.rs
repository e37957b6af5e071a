//! The binary framing of change batches between devices and the sync server
//! (docs/protocol.md). Big-endian, length-prefixed, versioned by its magic:
//!
//! ```text
//! batch  := "MQC1" | cursor u64 | more u8 | remaining u64 | count u32 | change*
//! change := id_len u16 | doc_id (UTF-8) | len u32 | Automerge change bytes
//! ```
//!
//! A push sends cursor 0, more 0, remaining 0. A snapshot page that carries
//! the station's views of its documents uses the magic "MQS1", and each
//! change is followed by `view_len u32 | view (UTF-8 JSON)`, `view_len` 0
//! for a document without one. Decoding checks every length against what is
//! left, so a truncated or padded body is an error, never a panic.

use crate::store::DocChange;

pub const MAGIC: &[u8; 4] = b"MQC1";
/// The magic of a snapshot page with views.
pub const MAGIC_VIEWS: &[u8; 4] = b"MQS1";
/// The media type of a framed batch.
pub const CONTENT_TYPE: &str = "application/x-menqian-changes";

/// A page of changes as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireBatch {
    /// Pull: the cursor to ask from next. Push: 0.
    pub cursor: u64,
    /// Pull: more changes wait after `cursor`.
    pub more: bool,
    /// Pull: how many changes wait after `cursor` (for progress).
    pub remaining: u64,
    pub changes: Vec<DocChange>,
    /// Snapshot: each document's view where the station has one, in the
    /// order of `changes`; empty otherwise (and always in a push).
    pub views: Vec<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a Menqian change batch (bad magic or version)")]
    BadMagic,
    #[error("the batch is cut short at byte {at}")]
    Truncated { at: usize },
    #[error("{extra} unexpected bytes after the last change")]
    TrailingBytes { extra: usize },
    #[error("change {index}: the document id is not UTF-8")]
    BadDocId { index: usize },
    #[error("change {index}: the view is not UTF-8")]
    BadView { index: usize },
    #[error("the batch has {count} changes, more than the {max} allowed")]
    TooManyChanges { count: u32, max: u32 },
    #[error("change {index} ({doc_id}): {reason}")]
    Refused {
        index: usize,
        doc_id: String,
        reason: String,
    },
    #[error("change {index}: {what} is too long for the frame")]
    TooLong { index: usize, what: &'static str },
}

/// The most changes one batch may carry.
pub const MAX_CHANGES: u32 = 100_000;

/// Frames a batch. Refuses (rather than truncates) a batch whose counts or
/// lengths do not fit the frame's fields.
pub fn encode(batch: &WireBatch) -> Result<Vec<u8>, WireError> {
    let count = u32::try_from(batch.changes.len())
        .ok()
        .filter(|n| *n <= MAX_CHANGES)
        .ok_or(WireError::TooManyChanges {
            count: u32::try_from(batch.changes.len()).unwrap_or(u32::MAX),
            max: MAX_CHANGES,
        })?;
    let with_views = !batch.views.is_empty();
    if with_views && batch.views.len() != batch.changes.len() {
        return Err(WireError::TooLong {
            index: batch.views.len().min(batch.changes.len()),
            what: "the list of views (one per document)",
        });
    }
    let view = |i: usize| batch.views.get(i).and_then(|v| v.as_deref());
    let size: usize = 25
        + batch
            .changes
            .iter()
            .enumerate()
            .map(|(i, c)| 6 + c.doc_id.len() + c.bytes.len() + 4 + view(i).map_or(0, str::len))
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(if with_views { MAGIC_VIEWS } else { MAGIC });
    out.extend_from_slice(&batch.cursor.to_be_bytes());
    out.push(u8::from(batch.more));
    out.extend_from_slice(&batch.remaining.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    for (index, c) in batch.changes.iter().enumerate() {
        let id = c.doc_id.as_bytes();
        let id_len = u16::try_from(id.len()).map_err(|_| WireError::TooLong {
            index,
            what: "the document id",
        })?;
        let len = u32::try_from(c.bytes.len()).map_err(|_| WireError::TooLong {
            index,
            what: "the change",
        })?;
        out.extend_from_slice(&id_len.to_be_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&c.bytes);
        if with_views {
            let view = view(index).unwrap_or_default().as_bytes();
            let len = u32::try_from(view.len()).map_err(|_| WireError::TooLong {
                index,
                what: "the view",
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(view);
        }
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or(WireError::Truncated {
                at: self.bytes.len(),
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// Decodes a batch or a snapshot page, with views or without.
pub fn decode(bytes: &[u8]) -> Result<WireBatch, WireError> {
    decode_framed(bytes, true, |_, _| Ok(()))
}

/// Decodes a push: views are refused (`BadMagic`), and `check` runs on each
/// change's id and bytes before they are copied: a change it refuses stops
/// the decoding there.
pub fn decode_checked(
    bytes: &[u8],
    check: impl FnMut(&str, &[u8]) -> Result<(), String>,
) -> Result<WireBatch, WireError> {
    decode_framed(bytes, false, check)
}

fn decode_framed(
    bytes: &[u8],
    allow_views: bool,
    mut check: impl FnMut(&str, &[u8]) -> Result<(), String>,
) -> Result<WireBatch, WireError> {
    let mut r = Reader { bytes, at: 0 };
    let magic = r.take(4).map_err(|_| WireError::BadMagic)?;
    let with_views = match magic {
        m if m == MAGIC => false,
        m if m == MAGIC_VIEWS && allow_views => true,
        _ => return Err(WireError::BadMagic),
    };
    let cursor = u64::from_be_bytes(r.array()?);
    let more = r.array::<1>()?[0] != 0;
    let remaining = u64::from_be_bytes(r.array()?);
    let count = u32::from_be_bytes(r.array()?);
    if count > MAX_CHANGES {
        return Err(WireError::TooManyChanges {
            count,
            max: MAX_CHANGES,
        });
    }
    let mut changes = Vec::with_capacity(count.min(4_096) as usize);
    let mut views = Vec::new();
    for index in 0..count as usize {
        let id_len = u16::from_be_bytes(r.array()?) as usize;
        let doc_id = std::str::from_utf8(r.take(id_len)?)
            .map_err(|_| WireError::BadDocId { index })?
            .to_string();
        let len = u32::from_be_bytes(r.array()?) as usize;
        let change = r.take(len)?;
        check(&doc_id, change).map_err(|reason| WireError::Refused {
            index,
            doc_id: doc_id.escape_debug().to_string(),
            reason,
        })?;
        if with_views {
            let len = u32::from_be_bytes(r.array()?) as usize;
            let view = r.take(len)?;
            views.push(if view.is_empty() {
                None
            } else {
                Some(
                    std::str::from_utf8(view)
                        .map_err(|_| WireError::BadView { index })?
                        .to_string(),
                )
            });
        }
        changes.push(DocChange {
            doc_id,
            bytes: change.to_vec(),
        });
    }
    if r.at != bytes.len() {
        return Err(WireError::TrailingBytes {
            extra: bytes.len() - r.at,
        });
    }
    Ok(WireBatch {
        cursor,
        more,
        remaining,
        changes,
        views,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> WireBatch {
        WireBatch {
            cursor: 42,
            more: true,
            remaining: 7,
            changes: vec![
                DocChange {
                    doc_id: "shop/1101060000010".into(),
                    bytes: vec![1, 2, 3],
                },
                DocChange {
                    doc_id: "case/abc".into(),
                    bytes: vec![],
                },
            ],
            views: vec![],
        }
    }

    #[test]
    fn a_batch_round_trips() {
        assert_eq!(decode(&encode(&sample()).unwrap()), Ok(sample()));
        assert_eq!(
            decode(&encode(&WireBatch::default()).unwrap()),
            Ok(WireBatch::default())
        );
    }

    #[test]
    fn a_snapshot_page_with_views_round_trips_and_a_push_may_not_carry_them() {
        let mut page = sample();
        page.views = vec![Some("{\"code\":\"1\"}".into()), None];
        let bytes = encode(&page).unwrap();
        assert_eq!(&bytes[..4], MAGIC_VIEWS);
        assert_eq!(decode(&bytes), Ok(page.clone()));
        assert_eq!(
            decode_checked(&bytes, |_, _| Ok(())),
            Err(WireError::BadMagic)
        );
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        page.views.pop();
        assert!(encode(&page).is_err(), "one view for two documents");
    }

    #[test]
    fn an_id_too_long_for_its_field_is_refused_not_cut() {
        let long = WireBatch {
            changes: vec![DocChange {
                doc_id: "x".repeat(70_000),
                bytes: vec![],
            }],
            ..WireBatch::default()
        };
        assert_eq!(
            encode(&long),
            Err(WireError::TooLong {
                index: 0,
                what: "the document id"
            })
        );
    }

    #[test]
    fn every_truncation_and_padding_is_an_error() {
        let bytes = encode(&sample()).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(decode(&padded), Err(WireError::TrailingBytes { extra: 1 }));
        assert_eq!(decode(b"{\"json\": true}"), Err(WireError::BadMagic));
        let mut huge = bytes[..21].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode(&huge),
            Err(WireError::TooManyChanges { .. })
        ));
    }
}
