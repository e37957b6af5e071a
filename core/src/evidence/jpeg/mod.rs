//! Our own JPEG decoder for the photo pipeline, scaled by n/8 as it decodes.
//!
//! libjpeg-turbo decodes a progressive photo's every coefficient of every
//! scan, though a 3/8-scaled decode reads only nine of each block's 64; on a
//! 16 MB progressive photo that entropy decoding is 80 % of the pipeline
//! (docs/benchmarks.md, issue 16). This decoder keeps only the coefficients
//! the scaled IDCT reads, tracks the rest as one bit each (enough to parse
//! refinement scans), and decodes a progressive file's independent scan
//! streams (the DC scans, and each component's AC scans) on two threads.
//!
//! It handles what cameras write: 8-bit Huffman-coded baseline, extended and
//! progressive JPEG with one (grey) or three (YCbCr) components and sampling
//! factors that divide each other. Anything else (arithmetic coding, 12-bit,
//! lossless, CMYK, Adobe RGB transforms, a malformed file) is left to
//! libjpeg-turbo: [`decode_scaled`] answers `Ok(None)` and the pipeline
//! decodes it as before. It is safe Rust; every scan does bounded work per
//! block, and the number of scans is bounded (a file of many scans over the
//! whole picture is a decompression bomb of time).

mod bits;
mod idct;
mod scan;
mod split;

use std::sync::Arc;

use bits::Huffman;
use scan::{Coefs, Kept};

/// Why our decoder gave up on a file (libjpeg-turbo then tries it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Corrupt(pub &'static str);

/// At most this many scans: cameras write 1 (baseline) to 10–12
/// (progressive); each scan may cost a pass over every block.
pub const MAX_SCANS: usize = 64;

/// Zig-zag position → natural (row-major) position.
const NATURAL: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

#[derive(Debug)]
struct Component {
    id: u8,
    /// Sampling factors.
    h: usize,
    v: usize,
    tq: usize,
    /// Dequantisation, natural order (latched at the component's first scan).
    quant: [u16; 64],
    quant_set: bool,
    /// Blocks per row and column, padded to whole MCUs.
    bw: usize,
    bh: usize,
    /// Blocks a non-interleaved scan covers.
    cw: usize,
    ch: usize,
    /// Samples per block row and column after the scaled IDCT.
    mx: usize,
    my: usize,
}

#[derive(Debug)]
struct Frame {
    progressive: bool,
    width: usize,
    height: usize,
    comps: Vec<Component>,
    max_h: usize,
    max_v: usize,
    mcux: usize,
    mcuy: usize,
}

#[derive(Debug)]
struct ScanComp {
    /// Index into `Frame::comps`.
    index: usize,
    dc: Option<Arc<Huffman>>,
    ac: Option<Arc<Huffman>>,
}

#[derive(Debug)]
struct Scan {
    comps: Vec<ScanComp>,
    ss: u8,
    se: u8,
    ah: u8,
    al: u8,
    /// MCUs per restart interval (0: none).
    restart: usize,
    /// The entropy-coded bytes.
    start: usize,
    end: usize,
}

/// What the file holds, before any entropy decoding.
#[derive(Debug)]
struct Parsed {
    frame: Frame,
    scans: Vec<Scan>,
}

/// Why a file is refused outright (not merely left to libjpeg-turbo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    TooManyScans,
}

fn be16(data: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(*data.get(at)?) << 8 | usize::from(*data.get(at + 1)?))
}

/// Where the entropy-coded data that starts at `from` ends: the first
/// marker that is neither stuffing nor a restart.
fn entropy_end(data: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(off) = data.get(at..).and_then(|rest| memchr::memchr(0xFF, rest)) {
        at += off;
        match data.get(at + 1) {
            None => return data.len(),
            Some(0) | Some(0xD0..=0xD7) => at += 2,
            Some(0xFF) => at += 1,
            Some(_) => return at,
        }
    }
    data.len()
}

/// Reads the markers. `Ok(None)`: a kind of JPEG this decoder leaves alone.
fn parse(data: &[u8], n: usize, max_pixels: u64) -> Result<Option<Parsed>, Refused> {
    let mut pos = 2usize;
    let mut frame: Option<Frame> = None;
    let mut quant = [[0u16; 64]; 4];
    let mut dc_tables: [Option<Arc<Huffman>>; 4] = Default::default();
    let mut ac_tables: [Option<Arc<Huffman>>; 4] = Default::default();
    let mut restart = 0usize;
    let mut scans = Vec::new();
    loop {
        // Next marker (fill bytes allowed). Bytes between segments, or a
        // file that ends before EOI, is damaged: libjpeg-turbo decides.
        if data.get(pos) != Some(&0xFF) {
            return Ok(None);
        }
        while data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = data.get(pos + 1) else {
            return Ok(None);
        };
        pos += 2;
        if marker == 0xD9 {
            break;
        }
        if matches!(marker, 0x01 | 0xD0..=0xD8) {
            continue;
        }
        let Some(len) = be16(data, pos).filter(|&l| l >= 2) else {
            return Ok(None);
        };
        let Some(seg) = data.get(pos + 2..pos + len) else {
            return Ok(None);
        };
        pos += len;
        match marker {
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return Ok(None);
                }
                match read_frame(seg, marker == 0xC2, n, max_pixels) {
                    Some(f) => frame = Some(f),
                    None => return Ok(None),
                }
            }
            0xC3 | 0xC5..=0xC7 | 0xC8..=0xCF => return Ok(None),
            0xC4 => {
                let mut s = seg;
                while !s.is_empty() {
                    let (class, id) = (s[0] >> 4, usize::from(s[0] & 15));
                    let Some(counts) = s.get(1..17) else {
                        return Ok(None);
                    };
                    let mut c = [0u8; 16];
                    c.copy_from_slice(counts);
                    let total: usize = c.iter().map(|&x| usize::from(x)).sum();
                    let Some(values) = s.get(17..17 + total) else {
                        return Ok(None);
                    };
                    let Ok(table) = Huffman::new(&c, values) else {
                        return Ok(None);
                    };
                    match (class, id) {
                        (0, 0..=3) => dc_tables[id] = Some(Arc::new(table)),
                        (1, 0..=3) => ac_tables[id] = Some(Arc::new(table)),
                        _ => return Ok(None),
                    }
                    s = &s[17 + total..];
                }
            }
            0xDB => {
                let mut s = seg;
                while !s.is_empty() {
                    let (precision, id) = (s[0] >> 4, usize::from(s[0] & 15));
                    if precision != 0 || id > 3 {
                        return Ok(None);
                    }
                    let Some(values) = s.get(1..65) else {
                        return Ok(None);
                    };
                    for (k, &v) in values.iter().enumerate() {
                        quant[id][usize::from(NATURAL[k])] = u16::from(v);
                    }
                    s = &s[65..];
                }
            }
            0xDD => restart = be16(seg, 0).unwrap_or(0),
            // Adobe: transform 0 means the three components are RGB.
            0xEE if seg.starts_with(b"Adobe") && seg.get(11) == Some(&0) => return Ok(None),
            0xDA => {
                let Some(f) = frame.as_mut() else {
                    return Ok(None);
                };
                if scans.len() == MAX_SCANS {
                    return Err(Refused::TooManyScans);
                }
                let Some(mut scan) = read_scan(seg, f, &quant, &dc_tables, &ac_tables) else {
                    return Ok(None);
                };
                scan.restart = restart;
                scan.start = pos;
                scan.end = entropy_end(data, pos);
                pos = scan.end;
                scans.push(scan);
            }
            _ => {}
        }
    }
    match frame {
        Some(frame) if !scans.is_empty() => Ok(Some(Parsed { frame, scans })),
        _ => Ok(None),
    }
}

fn read_frame(seg: &[u8], progressive: bool, n: usize, max_pixels: u64) -> Option<Frame> {
    if *seg.first()? != 8 {
        return None;
    }
    let height = be16(seg, 1)?;
    let width = be16(seg, 3)?;
    let count = usize::from(*seg.get(5)?);
    if width == 0 || height == 0 || (width as u64) * (height as u64) > max_pixels {
        return None;
    }
    if count != 1 && count != 3 {
        return None;
    }
    let mut comps = Vec::with_capacity(count);
    for i in 0..count {
        let c = seg.get(6 + 3 * i..9 + 3 * i)?;
        let (h, v) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
            return None;
        }
        if comps.iter().any(|k: &Component| k.id == c[0]) {
            return None;
        }
        comps.push(Component {
            id: c[0],
            h,
            v,
            tq: usize::from(c[2]),
            quant: [0; 64],
            quant_set: false,
            bw: 0,
            bh: 0,
            cw: 0,
            ch: 0,
            mx: 0,
            my: 0,
        });
    }
    if count == 3 && comps.iter().map(|c| c.id).eq(*b"RGB") {
        return None;
    }
    if count == 1 {
        // A single component is never interleaved: its MCU is one block.
        comps[0].h = 1;
        comps[0].v = 1;
    }
    let max_h = comps.iter().map(|c| c.h).max()?;
    let max_v = comps.iter().map(|c| c.v).max()?;
    let mcux = width.div_ceil(8 * max_h);
    let mcuy = height.div_ceil(8 * max_v);
    for c in &mut comps {
        if max_h % c.h != 0 || max_v % c.v != 0 {
            return None;
        }
        c.bw = mcux * c.h;
        c.bh = mcuy * c.v;
        c.cw = (width * c.h).div_ceil(max_h).div_ceil(8);
        c.ch = (height * c.v).div_ceil(max_v).div_ceil(8);
        // Every component at n/8 of its own resolution: a subsampled chroma
        // plane stays subsampled (the evidence JPEG is 4:2:0 again anyway)
        // and is read nearest-neighbour when converting to RGB.
        c.mx = n;
        c.my = n;
    }
    Some(Frame {
        progressive,
        width,
        height,
        comps,
        max_h,
        max_v,
        mcux,
        mcuy,
    })
}

fn read_scan(
    seg: &[u8],
    frame: &mut Frame,
    quant: &[[u16; 64]; 4],
    dc_tables: &[Option<Arc<Huffman>>; 4],
    ac_tables: &[Option<Arc<Huffman>>; 4],
) -> Option<Scan> {
    let count = usize::from(*seg.first()?);
    if count == 0 || count > frame.comps.len() || seg.len() != 4 + 2 * count {
        return None;
    }
    let mut comps = Vec::with_capacity(count);
    for i in 0..count {
        let (id, tables) = (seg[1 + 2 * i], seg[2 + 2 * i]);
        let index = frame.comps.iter().position(|c| c.id == id)?;
        if comps.iter().any(|c: &ScanComp| c.index == index) {
            return None;
        }
        let c = &mut frame.comps[index];
        if !c.quant_set {
            c.quant = quant[c.tq];
            c.quant_set = true;
        }
        comps.push(ScanComp {
            index,
            dc: dc_tables[usize::from(tables >> 4) & 3].clone(),
            ac: ac_tables[usize::from(tables & 15) & 3].clone(),
        });
    }
    let (ss, se, a) = (seg[1 + 2 * count], seg[2 + 2 * count], seg[3 + 2 * count]);
    let (ah, al) = (a >> 4, a & 15);
    if frame.progressive {
        let dc = ss == 0 && se == 0;
        let ac = (1..=se).contains(&ss) && se <= 63 && count == 1;
        if !(dc || ac) || ah > 13 || al > 13 {
            return None;
        }
    } else if ss != 0 || se != 63 || a != 0 {
        return None;
    }
    // Interleaved scans hold at most 10 blocks per MCU (T.81 B.2.3).
    if count > 1
        && comps
            .iter()
            .map(|c| frame.comps[c.index].h * frame.comps[c.index].v)
            .sum::<usize>()
            > 10
    {
        return None;
    }
    Some(Scan {
        comps,
        ss,
        se,
        ah,
        al,
        restart: 0,
        start: 0,
        end: 0,
    })
}

/// Decodes `data` at scale `n`/8 (1..=8) to packed RGB of
/// `ceil(w·n/8) × ceil(h·n/8)`. `Ok(None)`: leave this file to libjpeg-turbo.
pub fn decode_scaled(data: &[u8], n: usize, max_pixels: u64) -> Result<Option<Vec<u8>>, Refused> {
    decode_to(data, n, max_pixels, None)
}

/// Decodes `data` at scale `n`/8 and resizes it to `size` (default: the
/// scaled size) as packed RGB. `Ok(None)`: leave this file to libjpeg-turbo.
pub fn decode_to(
    data: &[u8],
    n: usize,
    max_pixels: u64,
    size: Option<(usize, usize)>,
) -> Result<Option<Vec<u8>>, Refused> {
    if !(1..=8).contains(&n) {
        return Ok(None);
    }
    let Some(parsed) = parse(data, n, max_pixels)? else {
        return Ok(None);
    };
    let Parsed { frame, scans } = parsed;
    let Some(planes) = planes(&frame, &scans, data) else {
        return Ok(None);
    };
    let (dw, dh) = size.unwrap_or((
        (frame.width * n).div_ceil(8),
        (frame.height * n).div_ceil(8),
    ));
    if dw == 0 || dh == 0 {
        return Ok(None);
    }
    Ok(Some(idct::render(&frame, &planes, n, dw, dh)))
}

/// Every component's samples after the scaled IDCT, `None` if the scans are
/// damaged. A baseline image in one scan streams into its planes
/// (`split.rs`); anything else is decoded into whole-image coefficients
/// first.
fn planes(frame: &Frame, scans: &[Scan], data: &[u8]) -> Option<Vec<Vec<u8>>> {
    let kept: Vec<Kept> = frame.comps.iter().map(|c| Kept::new(c.mx, c.my)).collect();
    if !frame.progressive && scans.len() == 1 && scans[0].comps.len() == frame.comps.len() {
        let s = &scans[0];
        let mut planes: Vec<Vec<u8>> = frame
            .comps
            .iter()
            .map(|c| vec![0u8; c.bw * c.mx * c.bh * c.my])
            .collect();
        split::baseline(frame, s, &data[s.start..s.end], &kept, &mut planes).ok()?;
        return Some(planes);
    }
    let mut coefs: Vec<Coefs> = frame
        .comps
        .iter()
        .zip(kept)
        .map(|(c, kept)| {
            let blocks = c.bw * c.bh;
            Coefs {
                dc: vec![0; blocks],
                ac: vec![0; blocks * kept.per_block],
                nonzero: if frame.progressive {
                    vec![0; blocks]
                } else {
                    Vec::new()
                },
                kept,
            }
        })
        .collect();
    let decoded = if frame.progressive {
        progressive(frame, scans, data, &mut coefs)
    } else {
        scans
            .iter()
            .try_for_each(|s| scan::sequential(frame, s, &data[s.start..s.end], &mut coefs))
    };
    decoded.ok()?;
    Some(idct::planes(frame, &coefs))
}

/// A progressive file's scans as independent streams: the DC scans (which
/// may interleave components) and each component's AC scans touch disjoint
/// coefficients, so they decode in parallel; within a stream, in file order.
/// The component with the most AC bytes gets a thread of its own.
fn progressive(
    frame: &Frame,
    scans: &[Scan],
    data: &[u8],
    coefs: &mut [Coefs],
) -> Result<(), Corrupt> {
    let ac_bytes = |c: usize| -> usize {
        scans
            .iter()
            .filter(|s| s.ss > 0 && s.comps[0].index == c)
            .map(|s| s.end - s.start)
            .sum()
    };
    let biggest = (0..coefs.len()).max_by_key(|&c| ac_bytes(c)).unwrap_or(0);
    let run_ac = |c: usize, ac: &mut Vec<i16>, nonzero: &mut Vec<u64>, kept: &Kept| {
        scans
            .iter()
            .filter(|s| s.ss > 0 && s.comps[0].index == c)
            .try_for_each(|s| scan::ac(frame, s, &data[s.start..s.end], ac, nonzero, kept))
    };
    let mut dcs: Vec<&mut Vec<i16>> = Vec::with_capacity(coefs.len());
    let mut acs: Vec<(usize, &mut Vec<i16>, &mut Vec<u64>, &Kept)> =
        Vec::with_capacity(coefs.len());
    for (i, c) in coefs.iter_mut().enumerate() {
        dcs.push(&mut c.dc);
        acs.push((i, &mut c.ac, &mut c.nonzero, &c.kept));
    }
    let (mut mine, theirs): (Vec<_>, Vec<_>) = acs.into_iter().partition(|a| a.0 != biggest);
    std::thread::scope(|s| {
        let other = s.spawn(move || {
            theirs
                .into_iter()
                .try_for_each(|(c, ac, nz, kept)| run_ac(c, ac, nz, kept))
        });
        let here = scans
            .iter()
            .filter(|s| s.ss == 0)
            .try_for_each(|s| scan::dc(frame, s, &data[s.start..s.end], &mut dcs))
            .and_then(|()| {
                mine.iter_mut()
                    .try_for_each(|(c, ac, nz, kept)| run_ac(*c, ac, nz, kept))
            });
        let there = other
            .join()
            .unwrap_or(Err(Corrupt("decoder thread failed")));
        here.and(there)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMERA: &[&str] = &[
        "/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg",
        "/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg",
        "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
    ];

    /// libjpeg-turbo's decode of `data` at scale `n`/8.
    fn reference(data: &[u8], n: usize) -> (usize, usize, Vec<u8>) {
        let mut d = turbojpeg::Decompressor::new().expect("decompressor");
        let h = d.read_header(data).expect("header");
        let (w, hh) = ((h.width * n).div_ceil(8), (h.height * n).div_ceil(8));
        let mut px = vec![0u8; w * hh * 3];
        d.decompress(
            data,
            turbojpeg::Image {
                pixels: px.as_mut_slice(),
                width: w,
                pitch: w * 3,
                height: hh,
                format: turbojpeg::PixelFormat::RGB,
            },
        )
        .expect("decompress");
        (w, hh, px)
    }

    /// Mean and 99.9th-percentile absolute difference from libjpeg-turbo.
    fn difference(data: &[u8], n: usize) -> (f64, u8) {
        let ours = decode_scaled(data, n, u64::MAX)
            .expect("not refused")
            .expect("decoded by ours");
        let (_, _, theirs) = reference(data, n);
        assert_eq!(ours.len(), theirs.len());
        let mut hist = [0usize; 256];
        let mut sum = 0u64;
        for (a, b) in ours.iter().zip(&theirs) {
            let d = a.abs_diff(*b);
            hist[usize::from(d)] += 1;
            sum += u64::from(d);
        }
        let mut seen = 0;
        let mut p999 = 0u8;
        for (d, &c) in hist.iter().enumerate() {
            seen += c;
            if seen as f64 >= ours.len() as f64 * 0.999 {
                p999 = d as u8;
                break;
            }
        }
        (sum as f64 / ours.len() as f64, p999)
    }

    /// Asserts that ours decodes `data` at every scale as libjpeg-turbo
    /// does, up to rounding and chroma upsampling (ours resizes the chroma
    /// plane with Catmull-Rom, libjpeg-turbo interpolates linearly or
    /// repeats samples). At 2/8 and 4/8 libjpeg-turbo keeps libjpeg 6b's reduced
    /// transforms, which fold in the higher frequencies, where ours (like
    /// IJG libjpeg 7 and later) is the 2- and 4-point inverse DCT: the two
    /// differ by a level or two on average there.
    fn matches(what: &str, data: &[u8], scales: &[usize]) {
        for &n in scales {
            let (mean, p999) = difference(data, n);
            let most = if n == 2 || n == 4 { 2.5 } else { 1.5 };
            let worst = 24;
            assert!(
                mean < most && p999 <= worst,
                "{what} at {n}/8: mean {mean:.3}, p99.9 {p999}"
            );
        }
    }

    fn jpegtran(args: &[&str], input: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = std::process::Command::new("jpegtran")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("jpegtran (libjpeg-turbo-progs, scripts/system-deps.sh)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
        let out = child.wait_with_output().expect("jpegtran output");
        assert!(out.status.success(), "jpegtran {args:?}");
        out.stdout
    }

    /// A picture with detail everywhere (so every coefficient band is busy),
    /// compressed by libjpeg-turbo with the given subsampling.
    fn busy(w: usize, h: usize, sub: turbojpeg::Subsamp) -> Vec<u8> {
        let mut px = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                // Fine luma texture over a smooth colour: like a photo, where
                // colour changes slowly and detail is in brightness.
                let texture = ((x * 7 + y * 3) % 23 + ((x ^ y) * 5) % 17) as i32 - 20;
                let base = [
                    60 + (x * 120 / w) as i32,
                    90 + (y * 100 / h) as i32,
                    140 - ((x + y) * 80 / (w + h)) as i32,
                ];
                for (c, b) in base.iter().enumerate() {
                    px[(y * w + x) * 3 + c] = (b + texture).clamp(0, 255) as u8;
                }
            }
        }
        let (pixels, format) = if sub == turbojpeg::Subsamp::Gray {
            (
                px.chunks(3).map(|p| p[0]).collect(),
                turbojpeg::PixelFormat::GRAY,
            )
        } else {
            (px, turbojpeg::PixelFormat::RGB)
        };
        let pitch = w * format.size();
        turbojpeg::compress(
            turbojpeg::Image {
                pixels: pixels.as_slice(),
                width: w,
                pitch,
                height: h,
                format,
            },
            92,
            sub,
        )
        .expect("compress")
        .to_vec()
    }

    #[test]
    fn every_layout_decodes_as_libjpeg_turbo_decodes_it() {
        use turbojpeg::Subsamp;
        for (name, sub) in [
            ("4:2:0", Subsamp::Sub2x2),
            ("4:2:2", Subsamp::Sub2x1),
            ("4:4:4", Subsamp::None),
            ("grey", Subsamp::Gray),
        ] {
            // Odd sizes: partial MCUs at the right and bottom edges.
            let base = busy(301, 203, sub);
            matches(&format!("baseline {name}"), &base, &[1, 2, 3, 4, 5, 8]);
            let prog = jpegtran(&["-progressive"], &base);
            matches(&format!("progressive {name}"), &prog, &[1, 3, 4, 8]);
            let rst = jpegtran(&["-restart", "1"], &base);
            matches(
                &format!("baseline {name}, a restart every MCU row"),
                &rst,
                &[3, 8],
            );
            let rst = jpegtran(&["-restart", "7B"], &prog);
            matches(
                &format!("progressive {name}, restarts every 7 blocks"),
                &rst,
                &[3, 8],
            );
            if sub != Subsamp::Gray {
                // Sequential, one scan per component (not interleaved): the
                // whole-image coefficient path rather than the streamed one.
                let script = std::env::temp_dir().join(format!("seq-{}.txt", std::process::id()));
                std::fs::write(&script, "0: 0 63 0 0;\n1: 0 63 0 0;\n2: 0 63 0 0;\n")
                    .expect("scan script");
                let path = script.to_string_lossy().to_string();
                let three = jpegtran(&["-scans", &path], &base);
                let _ = std::fs::remove_file(&script);
                matches(
                    &format!("baseline {name}, a scan per component"),
                    &three,
                    &[3, 8],
                );
            }
        }
    }

    #[test]
    fn what_ours_leaves_alone_goes_to_libjpeg_turbo() {
        let base = busy(64, 64, turbojpeg::Subsamp::Sub2x2);
        let arithmetic = jpegtran(&["-arithmetic"], &base);
        assert_eq!(decode_scaled(&arithmetic, 3, u64::MAX), Ok(None));
        assert_eq!(
            decode_scaled(&base, 3, 100),
            Ok(None),
            "over the pixel limit"
        );
        assert_eq!(decode_scaled(b"\xFF\xD8\xFF\xD9", 3, u64::MAX), Ok(None));
        // Cut short, it is damaged (libjpeg-turbo refuses it), also when the
        // scan is long enough to be split between two threads.
        assert_eq!(
            decode_scaled(&base[..base.len() / 2], 3, u64::MAX),
            Ok(None)
        );
        let big = busy(1600, 1200, turbojpeg::Subsamp::Sub2x1);
        assert!(big.len() > split::MIN_BYTES);
        assert_eq!(
            decode_scaled(&big[..big.len() * 3 / 4], 3, u64::MAX),
            Ok(None)
        );
        let mut no_eoi = big.clone();
        no_eoi.truncate(big.len() - 2);
        assert_eq!(decode_scaled(&no_eoi, 3, u64::MAX), Ok(None));
        // A progressive file of more scans than any camera writes: its last
        // scan repeated.
        let prog = jpegtran(&["-progressive"], &base);
        let last = prog
            .windows(2)
            .rposition(|w| w == [0xFF, 0xDA])
            .expect("a scan");
        let mut many = prog[..prog.len() - 2].to_vec();
        for _ in 0..MAX_SCANS {
            many.extend_from_slice(&prog[last..prog.len() - 2]);
        }
        many.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(
            decode_scaled(&many, 3, u64::MAX),
            Err(Refused::TooManyScans)
        );
        assert!(
            decode_scaled(&prog, 3, u64::MAX)
                .expect("not refused")
                .is_some()
        );
    }

    #[test]
    fn a_split_baseline_decode_equals_the_serial_one() {
        // Big enough for the second thread (MIN_BYTES); 4:2:2 and grey.
        for sub in [turbojpeg::Subsamp::Sub2x1, turbojpeg::Subsamp::Gray] {
            let data = busy(1600, 1200, sub);
            assert!(data.len() > split::MIN_BYTES, "{}", data.len());
            let parsed = parse(&data, 3, u64::MAX).expect("parsed").expect("ours");
            let (frame, s) = (&parsed.frame, &parsed.scans[0]);
            let bytes = &data[s.start..s.end];
            let kept: Vec<Kept> = frame.comps.iter().map(|c| Kept::new(c.mx, c.my)).collect();
            // Serial: whole-image coefficients, then the IDCT.
            let mut coefs: Vec<Coefs> = frame
                .comps
                .iter()
                .zip(&kept)
                .map(|(c, kept)| Coefs {
                    dc: vec![0; c.bw * c.bh],
                    ac: vec![0; c.bw * c.bh * kept.per_block],
                    nonzero: Vec::new(),
                    kept: kept.clone(),
                })
                .collect();
            scan::sequential(frame, s, bytes, &mut coefs).expect("serial");
            let serial = idct::planes(frame, &coefs);
            // Streamed, the second half by the speculating thread.
            let mut streamed: Vec<Vec<u8>> = frame
                .comps
                .iter()
                .map(|c| vec![0u8; c.bw * c.mx * c.bh * c.my])
                .collect();
            split::baseline(frame, s, bytes, &kept, &mut streamed).expect("split");
            assert!(serial == streamed, "{sub:?}");
        }
    }

    #[test]
    fn damaged_files_neither_panic_nor_run_away() {
        let base = busy(200, 150, turbojpeg::Subsamp::Sub2x2);
        let prog = jpegtran(&["-progressive"], &base);
        for original in [&base, &prog] {
            // Cut short at many places.
            for cut in (2..original.len()).step_by(97) {
                let _ = decode_scaled(&original[..cut], 3, u64::MAX);
            }
            // Bytes overwritten (a fixed pseudo-random sequence).
            let mut state = 0x2545_F491_4F6C_DD1Du64;
            for _ in 0..400 {
                let mut bad = original.clone();
                for _ in 0..4 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let at = (state as usize) % bad.len();
                    bad[at] = (state >> 32) as u8;
                }
                if let Ok(Some(px)) = decode_scaled(&bad, 3, u64::MAX) {
                    assert!(!px.is_empty());
                }
            }
        }
    }

    #[test]
    fn camera_photos_decode_as_libjpeg_turbo_decodes_them() {
        for path in CAMERA {
            let data = std::fs::read(path).expect("camera photo (scripts/system-deps.sh)");
            matches(path, &data, &[2, 3, 4, 8]);
        }
    }
}
