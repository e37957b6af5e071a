//! From coefficients to RGB pixels: a scaled inverse DCT per block (an
//! `n × n`-point IDCT of the block's lowest frequencies, which is what IJG
//! libjpeg's DCT scaling computes), each component resized as a plane to
//! the output size, then YCbCr → RGB.

use std::f32::consts::PI;

use super::super::parallel::halves;
use super::super::resample::resize_plane;
use super::scan::{Coefs, Kept};
use super::{Component, Frame, NATURAL};

/// The 1-D basis at `m` points: `t[x * m + u] = c(u) cos((2x + 1) u π / 2m)`,
/// with c(0) = 1 and c(u > 0) = √2 (the 2-D 1/8 goes on the vertical pass).
fn basis(m: usize) -> Vec<f32> {
    let mut t = vec![0f32; m * m];
    for x in 0..m {
        for u in 0..m {
            let c = if u == 0 {
                1.0
            } else {
                std::f32::consts::SQRT_2
            };
            t[x * m + u] = c * ((2 * x + 1) as f32 * u as f32 * PI / (2 * m) as f32).cos();
        }
    }
    t
}

/// A component's transform: the bases and the dequantisation per slot.
pub(super) struct Kernel {
    tx: Vec<f32>,
    ty: Vec<f32>,
    q: Vec<f32>,
}

impl Kernel {
    pub(super) fn new(c: &Component, kept: &Kept) -> Kernel {
        let mut ty = basis(c.my);
        for w in &mut ty {
            *w /= 8.0;
        }
        // Dequantisation per slot (natural order row * mx + col).
        let mut q = vec![0f32; kept.per_block];
        for (k, &n) in NATURAL.iter().enumerate() {
            let slot = kept.slot[k];
            if slot != super::scan::UNUSED {
                q[usize::from(slot)] = f32::from(c.quant[usize::from(n)]);
            }
        }
        Kernel {
            tx: basis(c.mx),
            ty,
            q,
        }
    }
}

/// Block rows from `first` on, into `out` (whole block rows of samples).
/// The common block sizes get a transform whose loops the compiler unrolls.
pub(super) fn rows(k: &Kernel, c: &Component, coefs: &Coefs, first: usize, out: &mut [u8]) {
    match (c.mx, c.my) {
        (1, 1) => rows_of::<1, 1>(k, c, coefs, first, out),
        (2, 2) => rows_of::<2, 2>(k, c, coefs, first, out),
        (3, 3) => rows_of::<3, 3>(k, c, coefs, first, out),
        (4, 4) => rows_of::<4, 4>(k, c, coefs, first, out),
        (5, 5) => rows_of::<5, 5>(k, c, coefs, first, out),
        (6, 6) => rows_of::<6, 6>(k, c, coefs, first, out),
        (7, 7) => rows_of::<7, 7>(k, c, coefs, first, out),
        (8, 8) => rows_of::<8, 8>(k, c, coefs, first, out),
        (mx, my) => rows_sized(k, c, coefs, first, out, mx, my),
    }
}

fn rows_of<const MX: usize, const MY: usize>(
    k: &Kernel,
    c: &Component,
    coefs: &Coefs,
    first: usize,
    out: &mut [u8],
) {
    rows_sized(k, c, coefs, first, out, MX, MY);
}

/// The transform itself; inlined into `rows_of` so that constant sizes
/// unroll it.
#[inline(always)]
fn rows_sized(
    k: &Kernel,
    c: &Component,
    coefs: &Coefs,
    first: usize,
    out: &mut [u8],
    mx: usize,
    my: usize,
) {
    let per = mx * my;
    let width = c.bw * mx;
    let (tx, ty, q) = (&k.tx[..mx * mx], &k.ty[..my * my], &k.q[..per]);
    let mut f = [0f32; 64];
    let mut tmp = [0f32; 64];
    for (band, by) in out.chunks_exact_mut(width * my).zip(first..c.bh) {
        for bx in 0..c.bw {
            let b = by * c.bw + bx;
            let ac = &coefs.ac[b * per..(b + 1) * per];
            let dc = f32::from(coefs.dc[b]) * q[0];
            let origin = bx * mx;
            if ac.iter().fold(0, |a, &v| a | v) == 0 {
                let v = clamp(dc / 8.0 + 128.0);
                for y in 0..my {
                    band[origin + y * width..origin + y * width + mx].fill(v);
                }
                continue;
            }
            for s in 0..per {
                f[s] = f32::from(ac[s]) * q[s];
            }
            f[0] = dc;
            // Rows: each frequency row v to mx samples.
            for v in 0..my {
                for x in 0..mx {
                    let mut acc = 0.0;
                    for u in 0..mx {
                        acc += f[v * mx + u] * tx[x * mx + u];
                    }
                    tmp[v * mx + x] = acc;
                }
            }
            // Columns.
            for y in 0..my {
                let row = &mut band[origin + y * width..origin + y * width + mx];
                for (x, px) in row.iter_mut().enumerate() {
                    let mut acc = 128.0;
                    for v in 0..my {
                        acc += ty[y * my + v] * tmp[v * mx + x];
                    }
                    *px = clamp(acc);
                }
            }
        }
    }
}

#[inline]
fn clamp(v: f32) -> u8 {
    (v + 0.5) as u8
}

/// The chroma terms of red, green and blue (ITU-R BT.601 as JFIF uses it),
/// in 16-bit fixed point with rounding.
#[inline]
fn chroma(cb: u8, cr: u8) -> (i32, i32, i32) {
    let (cb, cr) = (i32::from(cb) - 128, i32::from(cr) - 128);
    (
        (91_881 * cr + 32_768) >> 16,
        (-22_554 * cb - 46_802 * cr + 32_768) >> 16,
        (116_130 * cb + 32_768) >> 16,
    )
}

/// One component's samples after the scaled IDCT: `bw × mx` by `bh × my`,
/// the block rows split between two threads.
fn plane(c: &Component, coefs: &Coefs) -> Vec<u8> {
    let width = c.bw * c.mx;
    let mut out = vec![0u8; width * c.bh * c.my];
    let kernel = Kernel::new(c, &coefs.kept);
    halves(&mut out, width * c.my, |first, part| {
        rows(&kernel, c, coefs, first, part);
    });
    out
}

/// Every component's samples after the scaled IDCT.
pub(super) fn planes(frame: &Frame, coefs: &[Coefs]) -> Vec<Vec<u8>> {
    frame
        .comps
        .iter()
        .zip(coefs)
        .map(|(c, k)| plane(c, k))
        .collect()
}

/// The planes of an image decoded at DCT scale `n`/8, resized to `dw × dh`
/// as packed RGB. Each component is resized as a plane of its own (a
/// subsampled chroma plane straight from its own size, which interpolates
/// it), and only then converted: the colour conversion runs at the output
/// size, and the chroma planes cost a quarter or half of the luma's to
/// resize.
pub(super) fn render(frame: &Frame, planes: &[Vec<u8>], n: usize, dw: usize, dh: usize) -> Vec<u8> {
    let resized: Vec<Vec<u8>> = frame
        .comps
        .iter()
        .zip(planes)
        .map(|(c, samples)| {
            // The component's own size at this scale (as libjpeg computes it).
            let w = ((frame.width * c.h).div_ceil(frame.max_h) * n).div_ceil(8);
            let h = ((frame.height * c.v).div_ceil(frame.max_v) * n).div_ceil(8);
            resize_plane(samples, c.bw * c.mx, w, h, dw, dh)
        })
        .collect();
    let mut rgb = vec![0u8; dw * dh * 3];
    halves(&mut rgb, dw * 3, |first, part| {
        let start = first * dw;
        let end = start + part.len() / 3;
        if resized.len() == 1 {
            for (px, &l) in part.chunks_exact_mut(3).zip(&resized[0][start..end]) {
                px.fill(l);
            }
            return;
        }
        let (y, cb, cr) = (
            &resized[0][start..end],
            &resized[1][start..end],
            &resized[2][start..end],
        );
        for (px, ((&l, &b), &r)) in part.chunks_exact_mut(3).zip(y.iter().zip(cb).zip(cr)) {
            let (tr, tg, tb) = chroma(b, r);
            let l = i32::from(l);
            px[0] = (l + tr).clamp(0, 255) as u8;
            px[1] = (l + tg).clamp(0, 255) as u8;
            px[2] = (l + tb).clamp(0, 255) as u8;
        }
    });
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_basis_at_eight_points_is_the_jpeg_idct() {
        // A lone DC of 8·v decodes to v everywhere; the 8-point basis is
        // orthogonal with ∑ₓ t(x,u)² = 8.
        let t = basis(8);
        for u in 0..8 {
            let norm: f32 = (0..8).map(|x| t[x * 8 + u] * t[x * 8 + u]).sum();
            assert!((norm - 8.0).abs() < 1e-3, "{u}: {norm}");
        }
        assert!((t[0] - 1.0).abs() < 1e-6);
    }
}
