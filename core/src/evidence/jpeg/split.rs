//! A baseline scan's entropy decoding on two threads.
//!
//! Without restart markers a baseline scan is one serial bit stream: where
//! its second half begins is unknown until the first half is decoded. A
//! second thread starts anyway, at the middle byte, as if an MCU began there.
//! Its first symbols are garbage, but Huffman codes resynchronise: soon its
//! MCUs start at the same bits as the true ones. It records where each of its
//! MCUs started and what it decoded (DC as differences, since it does not
//! know the predictors). The first thread decodes up to the middle, then on
//! until one of its MCUs starts at a bit where one of the second thread's
//! did: from the same bit in the same state both decode the same, so the
//! second thread's MCUs from there are the true ones, and its DC differences
//! continue the first thread's predictors. If they never meet (a damaged
//! file, an unlucky split), the first thread decodes the rest itself: the
//! result is always the serial decoder's.

use super::bits::Bits;
use super::scan::{self, Coefs, Kept};
use super::{Corrupt, Frame, Scan};

/// Below this many bytes a second thread does not pay.
pub(super) const MIN_BYTES: usize = 256 * 1024;

/// The blocks of MCU `m` in scan order: (scan component, block index).
fn mcu_blocks(frame: &Frame, scan: &Scan, m: usize, out: &mut Vec<(usize, usize)>) {
    out.clear();
    if scan.comps.len() == 1 {
        let c = &frame.comps[scan.comps[0].index];
        out.push((0, (m / c.cw) * c.bw + m % c.cw));
        return;
    }
    let (my, mx) = (m / frame.mcux, m % frame.mcux);
    for (si, sc) in scan.comps.iter().enumerate() {
        let c = &frame.comps[sc.index];
        for v in 0..c.v {
            for h in 0..c.h {
                out.push((si, (my * c.v + v) * c.bw + mx * c.h + h));
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

/// Decodes one sequential scan with no restart interval.
pub(super) fn sequential(
    frame: &Frame,
    scan: &Scan,
    data: &[u8],
    coefs: &mut [Coefs],
) -> Result<(), Corrupt> {
    let tables = scan::sequential_tables(scan)?;
    let kept: Vec<Kept> = scan
        .comps
        .iter()
        .map(|sc| coefs[sc.index].kept.clone())
        .collect();
    let total = if scan.comps.len() == 1 {
        let c = &frame.comps[scan.comps[0].index];
        c.cw * c.ch
    } else {
        frame.mcux * frame.mcuy
    };
    // Every MCU has the same layout: which scan component each block is.
    let mut layout = Vec::new();
    mcu_blocks(frame, scan, 0, &mut layout);
    let layout: Vec<usize> = layout.iter().map(|&(si, _)| si).collect();
    let mcu_values: usize = layout.iter().map(|&si| 1 + kept[si].per_block).sum();

    // The split: the middle byte, not inside a stuffed FF 00.
    let mut split = data.len() / 2;
    while split > 0 && split < data.len() && data[split - 1] == 0xFF {
        split += 1;
    }
    let stuffed = memchr::memmem::find_iter(&data[..split], &[0xFF, 0x00]).count();
    let split_bit = ((split - stuffed) as u64) * 8;
    let total_bits =
        ((data.len() - memchr::memmem::find_iter(data, &[0xFF, 0x00]).count()) as u64) * 8;

    std::thread::scope(|s| {
        let second = s.spawn(|| {
            // Reserved up front (untouched pages cost nothing): growing it
            // would copy it over and over.
            let reserve = (total * mcu_values).min(32 << 20);
            let mut tail = Tail {
                starts: Vec::with_capacity(total.min(4 << 20)),
                values: Vec::with_capacity(reserve),
                end: 0,
            };
            let mut bits = Bits::new(&data[split..]);
            while tail.starts.len() < total {
                let at = split_bit + bits.consumed();
                if bits.at_marker() && at >= total_bits {
                    break;
                }
                tail.starts.push(at);
                let first = tail.values.len();
                tail.values.resize(first + mcu_values, 0);
                let mut off = first;
                let mut failed = false;
                for &si in &layout {
                    let per = kept[si].per_block;
                    let (dc, ac) = tables[si];
                    let slots = &mut tail.values[off + 1..off + 1 + per];
                    match scan::block(&mut bits, dc, ac, &kept[si], slots) {
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
        });
        let mut second = Some(second);
        let mut tail: Option<Tail> = None;
        let mut next = 0usize;
        let mut bits = Bits::new(data);
        let mut pred = vec![0i32; scan.comps.len()];
        let mut blocks = Vec::with_capacity(layout.len());
        for m in 0..total {
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
                        adopt(frame, scan, coefs, t, next, m, total, mcu_values, &mut pred);
                        return Ok(());
                    }
                }
            }
            mcu_blocks(frame, scan, m, &mut blocks);
            for &(si, b) in &blocks {
                scan::sequential_block(
                    &mut bits,
                    tables[si],
                    &mut coefs[scan.comps[si].index],
                    b,
                    &mut pred[si],
                )?;
            }
        }
        if bits.overrun() {
            return Err(Corrupt("scan data ends early"));
        }
        Ok(())
    })
}

/// Copies the second thread's MCUs from its `from`-th on into place as MCUs
/// `m..total`, turning DC differences into values from `pred`; the MCU rows
/// split between two threads.
#[allow(clippy::too_many_arguments)]
fn adopt(
    frame: &Frame,
    scan: &Scan,
    coefs: &mut [Coefs],
    tail: &Tail,
    from: usize,
    m: usize,
    total: usize,
    mcu_values: usize,
    pred: &mut [i32],
) {
    // An interleaved scan splits at an MCU row; a one-component scan's MCU
    // rows are its block rows.
    let per_row = if scan.comps.len() == 1 {
        frame.comps[scan.comps[0].index].cw
    } else {
        frame.mcux
    };
    let row = (m + total).div_ceil(2).div_ceil(per_row);
    let middle = (row * per_row).clamp(m, total);
    let pers: Vec<usize> = scan
        .comps
        .iter()
        .map(|sc| coefs[sc.index].kept.per_block)
        .collect();
    // The predictors where the second half starts.
    let mut later = pred.to_vec();
    let mut layout = Vec::new();
    mcu_blocks(frame, scan, 0, &mut layout);
    for k in 0..middle - m {
        let mut off = (from + k) * mcu_values;
        for &(si, _) in &layout {
            later[si] = later[si].wrapping_add(i32::from(tail.values[off]));
            off += 1 + pers[si];
        }
    }
    // Each component's blocks split at the middle MCU row.
    let mut top: Vec<(&mut [i16], &mut [i16], usize)> = Vec::new();
    let mut bottom: Vec<(&mut [i16], &mut [i16], usize)> = Vec::new();
    for (ci, c) in coefs.iter_mut().enumerate() {
        let comp = &frame.comps[ci];
        let v = if scan.comps.len() == 1 { 1 } else { comp.v };
        let at = (row * v * comp.bw).min(c.dc.len());
        let per = c.kept.per_block;
        let (d0, d1) = c.dc.split_at_mut(at);
        let (a0, a1) = c.ac.split_at_mut(at * per);
        top.push((d0, a0, 0));
        bottom.push((d1, a1, at));
    }
    let place = |part: &mut Vec<(&mut [i16], &mut [i16], usize)>,
                 mcus: std::ops::Range<usize>,
                 pred: &mut [i32]| {
        let mut blocks = Vec::new();
        for abs in mcus {
            mcu_blocks(frame, scan, abs, &mut blocks);
            let mut off = (from + abs - m) * mcu_values;
            for &(si, b) in &blocks {
                let ci = scan.comps[si].index;
                let per = pers[si];
                let (dc, ac, base) = &mut part[ci];
                let b = b - *base;
                pred[si] = pred[si].wrapping_add(i32::from(tail.values[off]));
                dc[b] = pred[si] as i16;
                ac[b * per..(b + 1) * per].copy_from_slice(&tail.values[off + 1..off + 1 + per]);
                off += 1 + per;
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| place(&mut top, m..middle, pred));
        place(&mut bottom, middle..total, &mut later);
    });
}
