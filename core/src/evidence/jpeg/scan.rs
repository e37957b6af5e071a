//! The scans: sequential (baseline) and the four progressive kinds (T.81
//! G.1.2). Each block keeps only the coefficients the scaled inverse DCT
//! uses; a progressive block also keeps a bit per zig-zag position saying
//! whether that coefficient is already non-zero, which is all a refinement
//! scan needs to be parsed. With that mask, a refinement walks a band in a
//! few bit operations and skips the correction bits of coefficients nobody
//! reads, where a full decoder visits all 63 one by one.

use std::cell::Cell;

use super::bits::{Bits, Huffman};
use super::{Component, Corrupt, Frame, NATURAL, Scan};

/// A zig-zag position the scaled inverse DCT does not read.
pub(super) const UNUSED: u8 = u8::MAX;

/// Which coefficients of a block a component keeps.
#[derive(Debug, Clone)]
pub(super) struct Kept {
    /// By zig-zag position: the slot in the block's row, or `UNUSED`.
    pub slot: [u8; 64],
    /// Zig-zag positions 1..=63 that are kept, as bits.
    pub mask: u64,
    /// The highest kept zig-zag position.
    pub last: usize,
    /// Slots per block: `mx × my`.
    pub per_block: usize,
}

impl Kept {
    /// The top-left `mx × my` coefficients, in natural order.
    pub(super) fn new(mx: usize, my: usize) -> Kept {
        let mut slot = [UNUSED; 64];
        let (mut mask, mut last) = (0u64, 0usize);
        for (k, &n) in NATURAL.iter().enumerate() {
            let (row, col) = (usize::from(n) / 8, usize::from(n) % 8);
            if row < my && col < mx {
                slot[k] = (row * mx + col) as u8;
                last = last.max(k);
                if k > 0 {
                    mask |= 1 << k;
                }
            }
        }
        Kept {
            slot,
            mask,
            last,
            per_block: mx * my,
        }
    }
}

/// One component's coefficients over the whole image.
#[derive(Debug)]
pub(super) struct Coefs {
    /// DC per block (kept apart: DC and AC scans of a progressive file touch
    /// disjoint data and run on different threads).
    pub dc: Vec<i16>,
    /// `kept.per_block` slots per block (slot 0 unused: the DC is in `dc`).
    pub ac: Vec<i16>,
    /// Progressive only: per block, the zig-zag positions already non-zero.
    pub nonzero: Vec<u64>,
    pub kept: Kept,
}

/// Visits the blocks of a scan in order, handling restart intervals: `visit`
/// gets the scan component's index and the block's index in its component.
fn walk(
    frame: &Frame,
    scan: &Scan,
    bits: &mut Bits,
    mut visit: impl FnMut(&mut Bits, usize, usize) -> Result<(), Corrupt>,
    mut restarted: impl FnMut(),
) -> Result<(), Corrupt> {
    let mut mcu = 0usize;
    let mut next_mcu = |bits: &mut Bits| {
        if scan.restart > 0 && mcu > 0 && mcu.is_multiple_of(scan.restart) {
            if bits.overrun() {
                return Err(Corrupt("restart interval ends early"));
            }
            bits.restart();
            restarted();
        }
        mcu += 1;
        Ok(())
    };
    if scan.comps.len() == 1 {
        let c: &Component = &frame.comps[scan.comps[0].index];
        for by in 0..c.ch {
            for bx in 0..c.cw {
                next_mcu(bits)?;
                visit(bits, 0, by * c.bw + bx)?;
            }
        }
    } else {
        for my in 0..frame.mcuy {
            for mx in 0..frame.mcux {
                next_mcu(bits)?;
                for (si, sc) in scan.comps.iter().enumerate() {
                    let c = &frame.comps[sc.index];
                    for v in 0..c.v {
                        let row = (my * c.v + v) * c.bw + mx * c.h;
                        for h in 0..c.h {
                            visit(bits, si, row + h)?;
                        }
                    }
                }
            }
        }
    }
    if bits.overrun() {
        return Err(Corrupt("scan data ends early"));
    }
    Ok(())
}

fn table(t: Option<&Huffman>) -> Result<&Huffman, Corrupt> {
    t.ok_or(Corrupt("scan uses a Huffman table never defined"))
}

/// Each scan component's DC and AC tables.
pub(super) fn sequential_tables(scan: &Scan) -> Result<Vec<(&Huffman, &Huffman)>, Corrupt> {
    scan.comps
        .iter()
        .map(|sc| Ok((table(sc.dc.as_deref())?, table(sc.ac.as_deref())?)))
        .collect()
}

/// A sequential (baseline or extended) scan: every coefficient of each
/// block, DC then AC, with only the kept ones stored.
pub(super) fn sequential(
    frame: &Frame,
    scan: &Scan,
    data: &[u8],
    coefs: &mut [Coefs],
) -> Result<(), Corrupt> {
    let mut bits = Bits::new(data);
    let mut pred = vec![0i32; scan.comps.len()];
    let tables = sequential_tables(scan)?;
    let reset = Cell::new(false);
    walk(
        frame,
        scan,
        &mut bits,
        |bits, si, block_at| {
            if reset.replace(false) {
                pred.fill(0);
            }
            sequential_block(
                bits,
                tables[si],
                &mut coefs[scan.comps[si].index],
                block_at,
                &mut pred[si],
            )
        },
        || reset.set(true),
    )
}

/// Block `at` of a component in a sequential scan, its DC from `pred`.
#[inline]
pub(super) fn sequential_block(
    bits: &mut Bits,
    (dc_table, ac_table): (&Huffman, &Huffman),
    c: &mut Coefs,
    at: usize,
    pred: &mut i32,
) -> Result<(), Corrupt> {
    let per = c.kept.per_block;
    let diff = block(
        bits,
        dc_table,
        ac_table,
        &c.kept,
        &mut c.ac[at * per..(at + 1) * per],
    )?;
    *pred = pred.wrapping_add(diff);
    c.dc[at] = *pred as i16;
    Ok(())
}

/// One block of a sequential scan: its AC coefficients into `ac` (kept
/// slots only); returns the DC difference.
#[inline]
pub(super) fn block(
    bits: &mut Bits,
    dc_table: &Huffman,
    ac_table: &Huffman,
    kept: &Kept,
    ac: &mut [i16],
) -> Result<i32, Corrupt> {
    let s = u32::from(bits.decode(dc_table)?);
    let diff = bits.extend(s)?;
    let mut k = 1usize;
    while k < 64 {
        if let Some((r, value)) = bits.fast_ac(ac_table) {
            k += r;
            if k > 63 {
                return Err(Corrupt("coefficient past the end of its block"));
            }
            if k <= kept.last && kept.slot[k] != UNUSED {
                ac[usize::from(kept.slot[k])] = value as i16;
            }
            k += 1;
            continue;
        }
        let sym = bits.decode(ac_table)?;
        let (r, s) = (usize::from(sym >> 4), u32::from(sym & 15));
        if s == 0 {
            if r == 15 {
                k += 16;
                continue;
            }
            break;
        }
        k += r;
        if k > 63 {
            return Err(Corrupt("coefficient past the end of its block"));
        }
        let slot = if k <= kept.last { kept.slot[k] } else { UNUSED };
        if slot == UNUSED {
            bits.skip(s);
        } else {
            ac[usize::from(slot)] = bits.extend(s)? as i16;
        }
        k += 1;
    }
    Ok(diff)
}

/// A progressive DC scan (first or refinement), over some components' DC.
pub(super) fn dc(
    frame: &Frame,
    scan: &Scan,
    data: &[u8],
    dcs: &mut [&mut Vec<i16>],
) -> Result<(), Corrupt> {
    let mut bits = Bits::new(data);
    let mut pred = vec![0i32; scan.comps.len()];
    let al = u32::from(scan.al);
    let first = scan.ah == 0;
    let tables = if first {
        scan.comps
            .iter()
            .map(|sc| table(sc.dc.as_deref()).map(Some))
            .collect::<Result<Vec<_>, Corrupt>>()?
    } else {
        vec![None; scan.comps.len()]
    };
    let reset = Cell::new(false);
    walk(
        frame,
        scan,
        &mut bits,
        |bits, si, block| {
            if reset.replace(false) {
                pred.fill(0);
            }
            let target = &mut dcs[scan.comps[si].index][block];
            match tables[si] {
                Some(t) => {
                    let s = u32::from(bits.decode(t)?);
                    pred[si] = pred[si].wrapping_add(bits.extend(s)?);
                    *target = pred[si].wrapping_shl(al) as i16;
                }
                None => {
                    if bits.bit() {
                        *target |= 1 << al;
                    }
                }
            }
            Ok(())
        },
        || reset.set(true),
    )
}

/// Positions `from..to` (zig-zag) as bits; empty if `from >= to`.
#[inline]
fn span(from: usize, to: usize) -> u64 {
    if from >= to {
        return 0;
    }
    let upto = if to >= 64 { u64::MAX } else { (1u64 << to) - 1 };
    upto & (u64::MAX << from)
}

/// Reads the correction bits of the already non-zero coefficients in
/// `nonzero` (one bit each, in zig-zag order) and applies those of kept ones.
#[inline]
fn correct(bits: &mut Bits, nonzero: u64, kept: &Kept, ac: &mut [i16], p1: i16) {
    let count = nonzero.count_ones();
    if count == 0 {
        return;
    }
    let mine = nonzero & kept.mask;
    if mine == 0 {
        bits.skip(count);
        return;
    }
    // At most 63 bits: read them as one number, high bit first.
    let (hi, lo) = if count > 32 {
        (bits.get(count - 32), bits.get(32))
    } else {
        (0, bits.get(count))
    };
    let all = (u64::from(hi) << 32) | u64::from(lo);
    let mut rest = mine;
    while rest != 0 {
        let k = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        let before = (nonzero & span(0, k)).count_ones();
        if (all >> (count - 1 - before)) & 1 == 1 {
            let c = &mut ac[usize::from(kept.slot[k])];
            if *c & p1 == 0 {
                *c = c.wrapping_add(if *c >= 0 { p1 } else { -p1 });
            }
        }
    }
}

/// A progressive AC scan of one component (first or refinement).
pub(super) fn ac(
    frame: &Frame,
    scan: &Scan,
    data: &[u8],
    coefs: &mut [i16],
    nonzero: &mut [u64],
    kept: &Kept,
) -> Result<(), Corrupt> {
    let mut bits = Bits::new(data);
    let t = table(scan.comps[0].ac.as_deref())?;
    let (ss, se) = (usize::from(scan.ss), usize::from(scan.se));
    let al = u32::from(scan.al);
    let band = span(ss, se + 1);
    let per = kept.per_block;
    let mut eobrun = 0u32;
    let reset = Cell::new(false);
    if scan.ah == 0 {
        walk(
            frame,
            scan,
            &mut bits,
            |bits, _, block| {
                if reset.replace(false) {
                    eobrun = 0;
                }
                if eobrun > 0 {
                    eobrun -= 1;
                    return Ok(());
                }
                let ac = &mut coefs[block * per..(block + 1) * per];
                let nz = &mut nonzero[block];
                let mut k = ss;
                while k <= se {
                    if let Some((r, value)) = bits.fast_ac(t) {
                        k += r;
                        if k > se {
                            return Err(Corrupt("coefficient past the end of its band"));
                        }
                        *nz |= 1 << k;
                        if k <= kept.last && kept.slot[k] != UNUSED {
                            ac[usize::from(kept.slot[k])] = value.wrapping_shl(al) as i16;
                        }
                        k += 1;
                        continue;
                    }
                    let sym = bits.decode(t)?;
                    let (r, s) = (u32::from(sym >> 4), u32::from(sym & 15));
                    if s == 0 {
                        if r == 15 {
                            k += 16;
                            continue;
                        }
                        eobrun = (1 << r) - 1 + bits.get(r);
                        break;
                    }
                    k += r as usize;
                    if k > se {
                        return Err(Corrupt("coefficient past the end of its band"));
                    }
                    *nz |= 1 << k;
                    let slot = if k <= kept.last { kept.slot[k] } else { UNUSED };
                    if slot == UNUSED {
                        bits.skip(s);
                    } else {
                        ac[usize::from(slot)] = bits.extend(s)?.wrapping_shl(al) as i16;
                    }
                    k += 1;
                }
                Ok(())
            },
            || reset.set(true),
        )
    } else {
        let p1 = 1i16 << al;
        walk(
            frame,
            scan,
            &mut bits,
            |bits, _, block| {
                if reset.replace(false) {
                    eobrun = 0;
                }
                let ac = &mut coefs[block * per..(block + 1) * per];
                let nz = &mut nonzero[block];
                let mut k = ss;
                if eobrun == 0 {
                    while k <= se {
                        let sym = bits.decode(t)?;
                        let (r, s) = (u32::from(sym >> 4), u32::from(sym & 15));
                        let mut value = 0;
                        if s != 0 {
                            value = if bits.bit() { p1 } else { -p1 };
                        } else if r != 15 {
                            eobrun = (1 << r) + bits.get(r);
                            break;
                        }
                        // The new coefficient goes to the r-th (from 0) position
                        // still zero; the non-zero ones passed on the way each
                        // take a correction bit.
                        let mut zeros = !*nz & band & (u64::MAX << k);
                        for _ in 0..r {
                            zeros &= zeros.wrapping_sub(1);
                        }
                        let z = if zeros == 0 {
                            se + 1
                        } else {
                            zeros.trailing_zeros() as usize
                        };
                        correct(bits, *nz & span(k, z), kept, ac, p1);
                        if value != 0 && z <= se {
                            *nz |= 1 << z;
                            let slot = kept.slot[z];
                            if slot != UNUSED {
                                ac[usize::from(slot)] = value;
                            }
                        }
                        k = z + 1;
                    }
                }
                if eobrun > 0 {
                    correct(bits, *nz & span(k, se + 1), kept, ac, p1);
                    eobrun -= 1;
                }
                Ok(())
            },
            || reset.set(true),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_positions_are_the_top_left_corner() {
        let k = Kept::new(3, 3);
        // Zig-zag 0,1,2,3,4,5,7,8,12 are (0,0) (0,1) (1,0) (2,0) (1,1) (0,2)
        // (1,2) (2,1) (2,2).
        let kept: Vec<usize> = (0..64).filter(|&z| k.slot[z] != UNUSED).collect();
        assert_eq!(kept, vec![0, 1, 2, 3, 4, 5, 7, 8, 12]);
        assert_eq!(k.last, 12);
        assert_eq!(k.per_block, 9);
        assert_eq!(Kept::new(8, 8).mask, u64::MAX - 1);
        assert_eq!(span(3, 3), 0);
        assert_eq!(span(1, 64), u64::MAX - 1);
        assert_eq!(span(2, 4), 0b1100);
    }
}
