//! Resizing of packed RGB pixels and of single planes: a separable
//! Catmull-Rom filter, widened by the scale factor so a large reduction
//! averages (antialiases) instead of skipping pixels, in 14-bit fixed point,
//! each pass on two threads. Written here rather than taken from a SIMD
//! crate: the one that is faster adds 2.9 MiB of code to the phone
//! library for pixel formats we never use (docs/benchmarks.md, issue 5).

use super::parallel::halves;

const BITS: u32 = 14;
const ONE: i32 = 1 << BITS;

/// For each output position: the first input index and the fixed-point
/// weights of the inputs from there (all rows padded to `taps`).
struct Kernel {
    starts: Vec<usize>,
    taps: usize,
    weights: Vec<i32>,
}

fn catmull_rom(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.5 * x * x * x - 2.5 * x * x + 1.0
    } else if x < 2.0 {
        -0.5 * x * x * x + 2.5 * x * x - 4.0 * x + 2.0
    } else {
        0.0
    }
}

fn kernel(input: usize, output: usize) -> Kernel {
    let scale = input as f64 / output as f64;
    let stretch = scale.max(1.0);
    let support = 2.0 * stretch;
    let taps = (support * 2.0).ceil() as usize + 1;
    let mut starts = Vec::with_capacity(output);
    let mut weights = vec![0i32; output * taps];
    let mut raw = vec![0f64; taps];
    for i in 0..output {
        let centre = (i as f64 + 0.5) * scale;
        let lo = ((centre - support).floor().max(0.0)) as usize;
        let hi = ((centre + support).ceil() as usize).min(input);
        let n = (hi - lo).min(taps);
        let mut sum = 0.0;
        for (k, r) in raw.iter_mut().enumerate().take(n) {
            *r = catmull_rom(((lo + k) as f64 + 0.5 - centre) / stretch);
            sum += *r;
        }
        let row = &mut weights[i * taps..(i + 1) * taps];
        let mut total = 0;
        for k in 0..n {
            row[k] = (raw[k] / sum * f64::from(ONE)).round() as i32;
            total += row[k];
        }
        // Put the rounding remainder on the centre tap: weights sum to exactly one.
        let mid = ((centre - lo as f64) as usize).min(n.saturating_sub(1));
        row[mid] += ONE - total;
        // Keep every tap inside the input (the loops then need no bounds
        // clamping): near the end, start earlier and shift the weights right.
        let start = lo.min(input.saturating_sub(taps));
        let shift = lo - start;
        if shift > 0 {
            row.rotate_right(shift);
        }
        starts.push(start);
    }
    Kernel {
        starts,
        taps,
        weights,
    }
}

fn clamp(acc: i32) -> u8 {
    (acc >> BITS).clamp(0, 255) as u8
}

/// Resizes packed RGB `src` (`w` × `h`) to `dw` × `dh`.
pub fn resize_rgb(src: &[u8], w: usize, h: usize, dw: usize, dh: usize) -> Vec<u8> {
    resize::<3>(src, w * 3, w, h, dw, dh)
}

/// Resizes one channel of `w` × `h` samples whose rows are `stride` bytes
/// apart to `dw` × `dh` (up or down: a chroma plane goes straight to the
/// output size).
pub fn resize_plane(
    src: &[u8],
    stride: usize,
    w: usize,
    h: usize,
    dw: usize,
    dh: usize,
) -> Vec<u8> {
    resize::<1>(src, stride, w, h, dw, dh)
}

/// `C` interleaved channels, rows `stride` bytes apart.
fn resize<const C: usize>(
    src: &[u8],
    stride: usize,
    w: usize,
    h: usize,
    dw: usize,
    dh: usize,
) -> Vec<u8> {
    // Vertical pass first: it runs over whole rows (vectorised), and leaves the
    // scalar horizontal pass fewer rows.
    let line = w * C;
    let mid = if h == dh {
        let mut mid = vec![0u8; dh * line];
        for (out, row) in mid.chunks_exact_mut(line).zip(src.chunks(stride)) {
            out.copy_from_slice(&row[..line]);
        }
        mid
    } else {
        let ky = kernel(h, dh);
        let mut mid = vec![0u8; dh * line];
        halves(&mut mid, line, |first, part| {
            let mut acc = vec![0i32; line];
            for (out, y) in part.chunks_exact_mut(line).zip(first..) {
                acc.fill(ONE / 2);
                let start = ky.starts[y];
                let ws = &ky.weights[y * ky.taps..(y + 1) * ky.taps];
                for (k, &wt) in ws.iter().enumerate() {
                    if wt == 0 || start + k >= h {
                        continue;
                    }
                    let row = &src[(start + k) * stride..(start + k) * stride + line];
                    for (a, &p) in acc.iter_mut().zip(row) {
                        *a += i32::from(p) * wt;
                    }
                }
                for (d, &a) in out.iter_mut().zip(&acc) {
                    *d = clamp(a);
                }
            }
        });
        mid
    };
    if w == dw {
        return mid;
    }
    // Horizontal pass: each of the `dh` rows to `dw` pixels.
    let kx = kernel(w, dw);
    let taps = kx.taps.min(w);
    let mut dst = vec![0u8; dh * dw * C];
    halves(&mut dst, dw * C, |first, part| {
        for (out, y) in part.chunks_exact_mut(dw * C).zip(first..) {
            let row = &mid[y * line..(y + 1) * line];
            horizontal::<C>(row, out, &kx, taps);
        }
    });
    dst
}

/// One row of the horizontal pass.
fn horizontal<const C: usize>(row: &[u8], out: &mut [u8], kx: &Kernel, taps: usize) {
    for (x, px) in out.chunks_exact_mut(C).enumerate() {
        let start = kx.starts[x];
        let ws = &kx.weights[x * kx.taps..x * kx.taps + taps];
        let window = &row[start * C..(start + taps) * C];
        let mut acc = [ONE / 2; C];
        for (p, &wt) in window.chunks_exact(C).zip(ws) {
            for (a, &v) in acc.iter_mut().zip(p) {
                *a += i32::from(v) * wt;
            }
        }
        for (p, &a) in px.iter_mut().zip(&acc) {
            *p = clamp(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_flat_colour_stays_flat() {
        for (i, o) in [(2115, 1600), (1600, 320), (5, 5), (7, 2), (100, 1)] {
            let k = kernel(i, o);
            for x in 0..o {
                let s: i32 = k.weights[x * k.taps..(x + 1) * k.taps].iter().sum();
                assert_eq!(s, ONE, "{i}→{o} at {x}");
            }
        }
        let src: Vec<u8> = [37u8, 150, 222].repeat(211 * 119);
        let out = resize_rgb(&src, 211, 119, 160, 90);
        assert!(out.chunks(3).all(|p| p == [37, 150, 222]));
    }

    #[test]
    fn a_gradient_stays_a_gradient() {
        let (w, h) = (400usize, 10usize);
        let mut src = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let v = (x * 255 / (w - 1)) as u8;
                src[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[v, v, v]);
            }
        }
        let out = resize_rgb(&src, w, h, 100, 5);
        let row: Vec<u8> = out[..300].chunks(3).map(|p| p[0]).collect();
        assert!(row.windows(2).all(|p| p[0] <= p[1]), "{row:?}");
        assert!(row[0] < 4 && row[99] > 251, "{} {}", row[0], row[99]);
    }
}
