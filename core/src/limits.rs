//! Bounds on what a stranger's bytes may make this process do. A pushed
//! Automerge change is read here, without inflating or expanding anything,
//! before Automerge itself parses it: an Automerge change chunk may be
//! deflate-compressed (a 64 KiB body inflated past 60 MiB) and its columns are
//! run-length encoded (three bytes can say "this value, 2⁶² times"). Neither is
//! something a field change needs, so the station refuses compressed chunks
//! outright and counts the rows every column encodes, refusing a change whose
//! count passes [`MAX_CHANGE_OPS`]. See docs/security.md.
//!
//! The format is Automerge's binary change chunk:
//! <https://alexjg.github.io/automerge-storage-docs/>.

/// The largest change a device may send (bytes, as framed). A field change is
/// a few hundred bytes; a patrol's batch of track points a few KiB.
pub const MAX_CHANGE_BYTES: usize = 256 * 1024;
/// The most operations (rows of any column) one change may encode. Creating
/// an inspection with every item of a long checklist is a few hundred.
pub const MAX_CHANGE_OPS: u64 = 10_000;
/// The most operations one pushed batch may encode in all: what bounds the
/// memory a push can make Automerge allocate (roughly 200 bytes per op).
pub const MAX_BATCH_OPS: u64 = 100_000;
/// The most bytes of stored documents a push may be merged ahead against
/// ([`crate::Store::push_bases`]): a push that waits for its group holds its
/// documents' bytes twice (as read, as merged), which its own size does not
/// bound. A push over this is merged by the writer, as before.
pub const MAX_AHEAD_BYTES: usize = 4 << 20;
/// The most operations a document may hold once a device's batch or a
/// store's own edit has grown it: what bounds the CPU and memory every later
/// merge, read and pull of that document costs, which no single change's or
/// batch's bound does (a device could otherwise grow one record push after
/// push, with fields no form reads). A case edited a hundred times holds a
/// few thousand; a patrol recorded for eight hours (a point a second,
/// appended ten at a time, as the apps record) 2,885, measured.
pub const MAX_DOC_OPS: u64 = 50_000;
/// The most bytes a document may save to (Automerge's compressed form), on
/// the same terms as [`MAX_DOC_OPS`]: that eight-hour patrol saves to
/// 247 KB. As much as a push may be merged ahead against
/// ([`MAX_AHEAD_BYTES`]).
pub const MAX_DOC_BYTES: usize = 4 << 20;
/// The most dependencies, actors and columns a change may name.
const MAX_LIST: u64 = 256;

/// Checks a document's size after a write against [`MAX_DOC_OPS`] and
/// [`MAX_DOC_BYTES`]: `ops` is what Automerge holds (`stats().num_ops`, its
/// whole history), `saved` the bytes it saves to. A document past either
/// bound takes no more changes from devices; its record is full.
pub fn check_record_size(ops: u64, saved: usize) -> Result<(), String> {
    if ops > MAX_DOC_OPS {
        return Err(format!(
            "the record would hold {ops} operations, more than {MAX_DOC_OPS}: it is full"
        ));
    }
    if saved > MAX_DOC_BYTES {
        return Err(format!(
            "the record would save to {saved} bytes, more than {MAX_DOC_BYTES}: it is full"
        ));
    }
    Ok(())
}

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED: u8 = 2;

/// Checks that a whole document received from the station (a snapshot page)
/// is what a store keeps: one document chunk and nothing after it, or one
/// change chunk that passes [`check_change`] (a record that has had only the
/// change that made it is kept as that change, ADR 0019).
/// Automerge's loader also takes several chunks and bundles, and fuzzing
/// found a 71-byte bundle on which it asks for 2 GiB at once (an allocation
/// failure aborts the process; no `catch_unwind` helps): no such chunk
/// reaches the loader.
pub fn check_document(bytes: &[u8]) -> Result<(), String> {
    let mut r = Cursor { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return Err("not an Automerge chunk".into());
    }
    r.take(4)?; // checksum, verified by Automerge
    match r.byte()? {
        CHUNK_DOCUMENT => {}
        CHUNK_CHANGE => {
            return check_change(bytes)
                .map(|_| ())
                .map_err(|why| format!("a document kept as its change: {why}"));
        }
        other => return Err(format!("chunk type {other} is not a document")),
    }
    let len = r.uleb()?;
    if len != (bytes.len() - r.at) as u64 {
        return Err("a document must be one chunk whose length matches its bytes".into());
    }
    Ok(())
}

/// Checks a change's bytes; `Ok` carries the operation count (an upper bound
/// by rows), `Err` says why it is refused.
pub fn check_change(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() > MAX_CHANGE_BYTES {
        return Err(format!(
            "{} bytes; a change may be at most {MAX_CHANGE_BYTES}",
            bytes.len()
        ));
    }
    let mut r = Cursor { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return Err("not an Automerge chunk".into());
    }
    r.take(4)?; // checksum, verified by Automerge
    match r.byte()? {
        CHUNK_CHANGE => {}
        CHUNK_COMPRESSED => return Err("compressed changes are not accepted".into()),
        CHUNK_DOCUMENT => return Err("a whole document is not a change".into()),
        other => return Err(format!("chunk type {other} is not a change")),
    }
    let len = r.uleb()?;
    if len != (bytes.len() - r.at) as u64 {
        return Err("the chunk's length does not match its bytes".into());
    }
    let deps = r.list_len("dependencies")?;
    r.take(usize_of(deps.saturating_mul(32))?)?;
    r.length_prefixed()?; // actor
    r.uleb()?; // seq
    r.uleb()?; // start op
    r.sleb()?; // time
    r.length_prefixed()?; // message
    for _ in 0..r.list_len("actors")? {
        r.length_prefixed()?;
    }
    let columns = r.list_len("columns")?;
    let mut specs = Vec::with_capacity(columns as usize);
    for _ in 0..columns {
        let spec = r.uleb()?;
        let len = usize_of(r.uleb()?)?;
        specs.push((spec, len));
    }
    let mut rows_max = 0u64;
    for (spec, len) in specs {
        if spec & 0b1000 != 0 {
            return Err("compressed columns are not accepted".into());
        }
        let data = r.take(len)?;
        let rows = column_rows(spec & 0b111, data)?;
        rows_max = rows_max.max(rows);
    }
    Ok(rows_max)
}

/// The rows a column encodes, refusing more than [`MAX_CHANGE_OPS`] (and
/// group columns whose counts sum past it).
fn column_rows(kind: u64, data: &[u8]) -> Result<u64, String> {
    let mut r = Cursor { bytes: data, at: 0 };
    let mut rows = 0u64;
    let mut grouped = 0u64;
    let add = |total: &mut u64, n: u64| -> Result<(), String> {
        *total = total.saturating_add(n);
        if *total > MAX_CHANGE_OPS {
            Err(format!(
                "a column encodes more than {MAX_CHANGE_OPS} operations"
            ))
        } else {
            Ok(())
        }
    };
    match kind {
        // Boolean: alternating run lengths.
        4 => {
            while !r.done() {
                add(&mut rows, r.uleb()?)?;
            }
        }
        // Raw values: their count comes from the metadata column.
        7 => {}
        // Run-length encoded: group counts, actors, integers, deltas, strings,
        // value metadata.
        _ => {
            while !r.done() {
                let n = r.sleb()?;
                if n == 0 {
                    add(&mut rows, r.uleb()?)?; // a run of nulls
                    continue;
                }
                let (count, values) = if n > 0 {
                    (n.unsigned_abs(), 1)
                } else {
                    (n.unsigned_abs(), n.unsigned_abs())
                };
                add(&mut rows, count)?;
                for _ in 0..values {
                    let value = match kind {
                        3 => r.sleb()?.unsigned_abs(),
                        5 => {
                            r.length_prefixed()?;
                            0
                        }
                        _ => r.uleb()?,
                    };
                    if kind == 0 {
                        // A group's counts say how many rows its columns hold.
                        let times = if values == 1 { count } else { 1 };
                        add(&mut grouped, value.saturating_mul(times))?;
                    }
                }
            }
        }
    }
    Ok(rows)
}

fn usize_of(n: u64) -> Result<usize, String> {
    usize::try_from(n).map_err(|_| "a length past the end of the change".to_string())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("the change is cut short")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn uleb(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number longer than 64 bits".into())
    }

    fn sleb(&mut self) -> Result<i64, String> {
        let mut value = 0i64;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift >= 64 {
                return Err("a number longer than 64 bits".into());
            }
            value |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
        }
    }

    fn length_prefixed(&mut self) -> Result<&'a [u8], String> {
        let n = usize_of(self.uleb()?)?;
        self.take(n)
    }

    fn list_len(&mut self, what: &str) -> Result<u64, String> {
        let n = self.uleb()?;
        if n > MAX_LIST {
            return Err(format!("more than {MAX_LIST} {what}"));
        }
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn a_record_may_reach_either_bound_but_not_pass_it() {
        assert!(check_record_size(MAX_DOC_OPS, MAX_DOC_BYTES).is_ok());
        let ops = check_record_size(MAX_DOC_OPS + 1, 10).unwrap_err();
        assert!(
            ops.contains("50001 operations") && ops.ends_with("it is full"),
            "{ops}"
        );
        let bytes = check_record_size(10, MAX_DOC_BYTES + 1).unwrap_err();
        assert!(
            bytes.contains("4194305 bytes") && bytes.ends_with("it is full"),
            "{bytes}"
        );
    }

    use super::*;
    use automerge::{AutoCommit, transaction::Transactable};

    fn change(ops: usize) -> Vec<u8> {
        let mut d = AutoCommit::new();
        for i in 0..ops {
            d.put(automerge::ROOT, format!("k{i}"), i as i64).unwrap();
        }
        d.get_last_local_change().unwrap().raw_bytes().to_vec()
    }

    #[test]
    fn field_changes_pass_with_their_op_count() {
        assert_eq!(check_change(&change(1)).unwrap(), 1);
        assert_eq!(check_change(&change(300)).unwrap(), 300);
    }

    #[test]
    fn compressed_chunks_are_refused() {
        let mut d = AutoCommit::new();
        d.put(automerge::ROOT, "note", "x".repeat(10_000)).unwrap();
        let mut c = d.get_last_local_change().unwrap().clone();
        let compressed = c.bytes().to_vec();
        assert_eq!(compressed[8], CHUNK_COMPRESSED, "automerge compresses this");
        let err = check_change(&compressed).unwrap_err();
        assert!(err.contains("compressed"), "{err}");
    }

    #[test]
    fn a_run_length_bomb_is_refused_without_expanding() {
        // Take a real one-op change and make its first column's run say 2^40.
        let bytes = change(1);
        let err = check_change(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(!err.is_empty());
        let mut big = Vec::new();
        let mut n = 1u64 << 40;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                big.push(b);
                break;
            }
            big.push(b | 0x80);
        }
        // A boolean column holding the run, behind a minimal header.
        let mut body = vec![0u8]; // no deps
        body.extend([1, 0xab]); // actor
        body.extend([1, 1, 0, 0, 0]); // seq, start op, time, message, actors
        body.push(1); // one column
        body.extend([0x14, big.len() as u8]); // column 1, boolean
        body.extend(&big);
        let mut chunk = MAGIC.to_vec();
        chunk.extend([0; 4]);
        chunk.push(CHUNK_CHANGE);
        chunk.push(body.len() as u8);
        chunk.extend(body);
        let err = check_change(&chunk).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }
}
