//! A baseline image (one scan over every component) decoded straight into
//! its planes, a row of MCUs at a time, and on two threads.
//!
//! Row by row: each MCU row's coefficients go into a small buffer, through
//! the scaled IDCT into the planes, and the buffer is reused, so no
//! whole-image coefficient array is written (on a 20 MP photo that was 13 MB
//! of fresh pages).
//!
//! Two threads: without restart markers a baseline scan is one serial bit
//! stream, and where its second half begins is unknown until the first half
//! is decoded. A second thread starts anyway, at the middle byte, as if an
//! MCU began there. Its first symbols are garbage, but Huffman codes
//! resynchronise: soon its MCUs start at the same bits as the true ones. It
//! records where each of its MCUs started and what it decoded (DC as
//! differences, since it does not know the predictors). The first thread
//! decodes up to the middle, then on until one of its MCUs starts at a bit
//! where one of the second thread's did. From the same bit in the same state
//! both decode the same, so the second thread's MCUs from there are the true
//! ones, and its DC differences continue the first thread's predictors; both
//! threads then put them through the IDCT, half the rows each. If they never
//! meet (a damaged file, an unlucky split), the first thread decodes the rest
//! itself: the result is always the serial decoder's.

use super::bits::{Bits, Huffman};
use super::idct::{self, Kernel};
use super::scan::{self, Coefs, Kept};
use super::{Corrupt, Frame, Scan};

/// Some consecutive bands of one plane.
type Rows<'a, 'b> = &'a mut [&'b mut [u8]];

/// Below this many bytes a second thread does not pay.
pub(super) const MIN_BYTES: usize = 256 * 1024;

/// The blocks of the MCU at `x` in a row, in scan order: (scan component,
/// block index in a one-MCU-row buffer of `bw × v` blocks).
fn mcu_blocks(frame: &Frame, scan: &Scan, x: usize, out: &mut Vec<(usize, usize)>) {
    out.clear();
    if scan.comps.len() == 1 {
        out.push((0, x));
        return;
    }
    for (si, sc) in scan.comps.iter().enumerate() {
        let c = &frame.comps[sc.index];
        for v in 0..c.v {
            for h in 0..c.h {
                out.push((si, v * c.bw + x * c.h + h));
            }
        }
    }
}

/// What the second thread decoded: per MCU, its first bit and, per block,
/// the DC difference followed by the kept AC slots.
#[derive(Debug, Default)]
struct Tail {
    starts: Vec<u64>,
    values: Vec<i16>,
    /// The bit it stopped at.
    end: u64,
}

/// The scan's geometry and tables, shared by both threads.
struct Shape<'a> {
    frame: &'a Frame,
    scan: &'a Scan,
    tables: Vec<(&'a Huffman, &'a Huffman)>,
    /// Per scan component: what a block keeps, and its slots.
    kept: Vec<Kept>,
    pers: Vec<usize>,
    /// MCUs per row, rows, and values per MCU in a tail.
    per_row: usize,
    rows: usize,
    mcu_values: usize,
}

impl Shape<'_> {
    /// One MCU row's coefficients per frame component, to be reused.
    fn row_buffer(&self, kept: &[Kept]) -> Vec<Coefs> {
        let single = self.scan.comps.len() == 1;
        self.frame
            .comps
            .iter()
            .zip(kept)
            .map(|(c, k)| {
                let blocks = c.bw * if single { 1 } else { c.v };
                Coefs {
                    dc: vec![0; blocks],
                    ac: vec![0; blocks * k.per_block],
                    nonzero: Vec::new(),
                    kept: k.clone(),
                }
            })
            .collect()
    }

    /// The row buffer through the IDCT into each component's band; the
    /// buffer is cleared for the next row.
    fn flush(&self, kernels: &[Kernel], row: &mut [Coefs], bands: &mut [&mut [u8]]) {
        for (ci, c) in self.frame.comps.iter().enumerate() {
            idct::rows(&kernels[ci], c, &row[ci], 0, bands[ci]);
            row[ci].ac.fill(0);
        }
    }

    /// MCU `x` of a row from a tail's values at `off`, continuing `pred`.
    fn fill(
        &self,
        values: &[i16],
        mut off: usize,
        x: usize,
        row: &mut [Coefs],
        pred: &mut [i32],
        blocks: &mut Vec<(usize, usize)>,
    ) {
        mcu_blocks(self.frame, self.scan, x, blocks);
        for &(si, b) in blocks.iter() {
            let c = &mut row[self.scan.comps[si].index];
            let per = self.pers[si];
            pred[si] = pred[si].wrapping_add(i32::from(values[off]));
            c.dc[b] = pred[si] as i16;
            c.ac[b * per..(b + 1) * per].copy_from_slice(&values[off + 1..off + 1 + per]);
            off += 1 + per;
        }
    }
}

/// Decodes the baseline scan that holds every component into `planes` (one
/// per frame component, `bw·n × bh·n`).
pub(super) fn baseline(
    frame: &Frame,
    scan: &Scan,
    data: &[u8],
    kept: &[Kept],
    planes: &mut [Vec<u8>],
) -> Result<(), Corrupt> {
    let kernels: Vec<Kernel> = frame
        .comps
        .iter()
        .zip(kept)
        .map(|(c, k)| Kernel::new(c, k))
        .collect();
    let single = scan.comps.len() == 1;
    let (per_row, rows) = if single {
        let c = &frame.comps[scan.comps[0].index];
        (c.cw, c.ch)
    } else {
        (frame.mcux, frame.mcuy)
    };
    let pers: Vec<usize> = scan
        .comps
        .iter()
        .map(|sc| kept[sc.index].per_block)
        .collect();
    let mut layout = Vec::new();
    mcu_blocks(frame, scan, 0, &mut layout);
    let mcu_values = layout.iter().map(|&(si, _)| 1 + pers[si]).sum();
    let shape = Shape {
        frame,
        scan,
        tables: scan::sequential_tables(scan)?,
        kept: scan.comps.iter().map(|sc| kept[sc.index].clone()).collect(),
        pers,
        per_row,
        rows,
        mcu_values,
    };
    // One band of each plane per MCU row.
    let mut bands: Vec<Vec<&mut [u8]>> = frame
        .comps
        .iter()
        .zip(planes.iter_mut())
        .map(|(c, p)| {
            let band = c.bw * c.mx * c.my * if single { 1 } else { c.v };
            p.chunks_exact_mut(band).take(rows).collect()
        })
        .collect();
    if bands.iter().any(|b| b.len() < rows) {
        return Err(Corrupt("planes smaller than the scan"));
    }
    let total = per_row * rows;
    let speculate = scan.restart == 0 && data.len() >= MIN_BYTES;

    // The split: the middle byte, not inside a stuffed FF 00.
    let mut split = data.len() / 2;
    while split > 0 && split < data.len() && data[split - 1] == 0xFF {
        split += 1;
    }
    let unstuffed = |bytes: &[u8]| {
        (bytes.len() - memchr::memmem::find_iter(bytes, &[0xFF, 0x00]).count()) as u64 * 8
    };
    let split_bit = unstuffed(&data[..split]);
    let total_bits = unstuffed(data);

    std::thread::scope(|s| {
        let second = speculate.then(|| {
            s.spawn(|| speculate_tail(&shape, &data[split..], split_bit, total_bits, total))
        });
        let mut second = second;
        let mut tail: Option<Tail> = None;
        let mut next = 0usize;
        let mut bits = Bits::new(data);
        let mut pred = vec![0i32; scan.comps.len()];
        let mut row = shape.row_buffer(kept);
        let mut blocks = Vec::with_capacity(layout.len());
        for m in 0..total {
            let (r, x) = (m / per_row, m % per_row);
            if x == 0 && m > 0 {
                let mut these: Vec<&mut [u8]> = bands.iter_mut().map(|b| &mut *b[r - 1]).collect();
                shape.flush(&kernels, &mut row, &mut these);
            }
            if scan.restart > 0 && m > 0 && m.is_multiple_of(scan.restart) {
                if bits.overrun() {
                    return Err(Corrupt("restart interval ends early"));
                }
                bits.restart();
                pred.fill(0);
            }
            let at = bits.consumed();
            if at >= split_bit {
                if let Some(handle) = second.take() {
                    tail = Some(handle.join().unwrap_or_default());
                }
                if let Some(t) = &tail {
                    while next < t.starts.len() && t.starts[next] < at {
                        next += 1;
                    }
                    if next < t.starts.len()
                        && t.starts[next] == at
                        && t.starts.len() - next >= total - m
                    {
                        // Where the last MCU ends: within the data, or the
                        // scan was cut short (as the serial decoder finds).
                        let end = t.starts.get(next + total - m).copied().unwrap_or(t.end);
                        if end > total_bits {
                            return Err(Corrupt("scan data ends early"));
                        }
                        finish(
                            &shape, &kernels, kept, t, next, m, &mut row, &mut pred, &mut bands,
                        );
                        return Ok(());
                    }
                }
            }
            mcu_blocks(frame, scan, x, &mut blocks);
            for &(si, b) in &blocks {
                scan::sequential_block(
                    &mut bits,
                    shape.tables[si],
                    &mut row[scan.comps[si].index],
                    b,
                    &mut pred[si],
                )?;
            }
        }
        if bits.overrun() {
            return Err(Corrupt("scan data ends early"));
        }
        let mut these: Vec<&mut [u8]> = bands.iter_mut().map(|b| &mut *b[rows - 1]).collect();
        shape.flush(&kernels, &mut row, &mut these);
        Ok(())
    })
}

/// The second thread: MCUs from the middle of the scan on, from a guessed
/// start.
fn speculate_tail(
    shape: &Shape,
    data: &[u8],
    split_bit: u64,
    total_bits: u64,
    total: usize,
) -> Tail {
    // Reserved up front (untouched pages cost nothing): growing it would
    // copy it over and over.
    let mut tail = Tail {
        starts: Vec::with_capacity(total.min(4 << 20)),
        values: Vec::with_capacity((total * shape.mcu_values).min(32 << 20)),
        end: 0,
    };
    let mut layout = Vec::new();
    mcu_blocks(shape.frame, shape.scan, 0, &mut layout);
    let mut bits = Bits::new(data);
    while tail.starts.len() < total {
        let at = split_bit + bits.consumed();
        if bits.at_marker() && at >= total_bits {
            break;
        }
        tail.starts.push(at);
        let first = tail.values.len();
        tail.values.resize(first + shape.mcu_values, 0);
        let mut off = first;
        let mut failed = false;
        for &(si, _) in &layout {
            let per = shape.pers[si];
            let (dc, ac) = shape.tables[si];
            let slots = &mut tail.values[off + 1..off + 1 + per];
            match scan::block(&mut bits, dc, ac, &shape.kept[si], slots) {
                Ok(diff) => tail.values[off] = diff as i16,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
            off += 1 + per;
        }
        if failed {
            // Still out of step: forget it all, go on a bit later.
            tail.starts.clear();
            tail.values.clear();
            bits.skip(1);
        }
    }
    tail.end = split_bit + bits.consumed();
    tail
}

/// After the threads met at MCU `m` (the second thread's `from`-th): the rest
/// of that MCU row from the tail, then the remaining rows, half on each
/// thread (the second half's DC predictors summed ahead).
#[allow(clippy::too_many_arguments)]
fn finish(
    shape: &Shape,
    kernels: &[Kernel],
    kept: &[Kept],
    tail: &Tail,
    from: usize,
    m: usize,
    row: &mut [Coefs],
    pred: &mut [i32],
    bands: &mut [Vec<&mut [u8]>],
) {
    let offset = |mcu: usize| (from + mcu - m) * shape.mcu_values;
    let mut blocks = Vec::new();
    let r0 = m / shape.per_row;
    for x in m % shape.per_row..shape.per_row {
        shape.fill(
            &tail.values,
            offset(r0 * shape.per_row + x),
            x,
            row,
            pred,
            &mut blocks,
        );
    }
    let mut these: Vec<&mut [u8]> = bands.iter_mut().map(|b| &mut *b[r0]).collect();
    shape.flush(kernels, row, &mut these);
    // The remaining rows, split in two.
    let (first, end) = (r0 + 1, shape.rows);
    let middle = (first + end) / 2;
    let mut later = pred.to_vec();
    mcu_blocks(shape.frame, shape.scan, 0, &mut blocks);
    for mcu in first * shape.per_row..middle * shape.per_row {
        let mut off = offset(mcu);
        for &(si, _) in &blocks {
            later[si] = later[si].wrapping_add(i32::from(tail.values[off]));
            off += 1 + shape.pers[si];
        }
    }
    let (mut top, mut bottom): (Vec<Rows>, Vec<Rows>) = bands
        .iter_mut()
        .map(|b| b[first..end].split_at_mut(middle - first))
        .unzip();
    let run = |rows: std::ops::Range<usize>, bands: &mut [&mut [&mut [u8]]], pred: &mut [i32]| {
        let mut row = shape.row_buffer(kept);
        let mut blocks = Vec::new();
        for (k, r) in rows.enumerate() {
            for x in 0..shape.per_row {
                shape.fill(
                    &tail.values,
                    offset(r * shape.per_row + x),
                    x,
                    &mut row,
                    pred,
                    &mut blocks,
                );
            }
            let mut these: Vec<&mut [u8]> = bands.iter_mut().map(|b| &mut *b[k]).collect();
            shape.flush(kernels, &mut row, &mut these);
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| run(first..middle, &mut top, pred));
        run(middle..end, &mut bottom, &mut later);
    });
}
