//! The photo pipeline's one form of parallelism: an image's rows split in two
//! halves, one on a second thread. Phones and the station have at least two
//! cores; a photo of a stranger is otherwise processed on one.

/// Calls `fill(first_row, rows)` on the top half of `out` on a second thread
/// and on the bottom half on this one; `row_len` is the bytes of one row.
pub(super) fn halves<T: Send>(
    out: &mut [T],
    row_len: usize,
    fill: impl Fn(usize, &mut [T]) + Sync,
) {
    let rows = out.len().checked_div(row_len).unwrap_or(0);
    let half = rows.div_ceil(2);
    let (top, bottom) = out.split_at_mut(half * row_len);
    std::thread::scope(|s| {
        s.spawn(|| fill(0, top));
        fill(half, bottom);
    });
}
