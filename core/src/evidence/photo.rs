//! The photo pipeline: a camera JPEG in, an evidence JPEG and a thumbnail out.
//!
//! decode (libjpeg-turbo, DCT-scaled to just above the target size) → resize
//! (Catmull-Rom, `resample.rs`) → orient by EXIF → burn in the watermark → encode both →
//! hash both. The output carries no EXIF at all: the camera's make, model,
//! serial and software never leave the phone; the capture time and GPS position
//! are read first and kept in the record.

use std::io::Cursor;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use image::metadata::Orientation;
use image::{DynamicImage, RgbImage};
use turbojpeg::{Compressor, Decompressor, PixelFormat, Subsamp};

use super::time::RecordTime;
use super::watermark::{self, Stamp};
use super::{PhotoError, PhotoMeta, sha256_hex};
use crate::model::geo::{GeoPoint, GpsFix};

/// Long edge of the evidence image, in pixels.
pub const EVIDENCE_LONG_EDGE: u32 = 1600;
/// Long edge of the thumbnail, in pixels.
pub const THUMB_LONG_EDGE: u32 = 320;
/// JPEG quality of both outputs.
pub const QUALITY: i32 = 80;

/// What a photo may be before it is refused unread: a phone camera makes
/// 12–50 MP files of 2–20 MB; a decompression bomb claims far more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoLimits {
    pub max_file_bytes: u64,
    pub max_pixels: u64,
    pub max_side: u32,
}

impl Default for PhotoLimits {
    fn default() -> Self {
        PhotoLimits {
            max_file_bytes: 40 * 1024 * 1024,
            max_pixels: 64_000_000,
            max_side: 16_384,
        }
    }
}

/// One processed photo: both JPEGs in memory with their hashes, and what the
/// camera said about where and when.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedPhoto {
    pub evidence: Vec<u8>,
    pub evidence_hash: String,
    pub width: u32,
    pub height: u32,
    pub thumb: Vec<u8>,
    pub thumb_hash: String,
    /// EXIF DateTimeOriginal, with its offset if the camera wrote one, else
    /// read as Beijing time (UTC+8).
    pub taken_at: Option<DateTime<Utc>>,
    /// EXIF GPS position (WGS-84), if the camera wrote one.
    pub exif_position: Option<GeoPoint>,
    /// The EXIF orientation that was applied (1 = upright).
    pub orientation: u8,
}

impl ProcessedPhoto {
    /// What a record keeps about this photo, taken at `time` (with the
    /// phone's fix, if any); `thumb` and `bytes` are filled in when it is
    /// registered.
    pub fn meta(&self, fix: Option<GpsFix>, time: RecordTime) -> PhotoMeta {
        PhotoMeta {
            thumb: self.thumb_hash.clone(),
            width: self.width,
            height: self.height,
            bytes: self.evidence.len() as u64,
            taken_at: self.taken_at,
            exif_lat: self.exif_position.map(|p| p.lat),
            exif_lon: self.exif_position.map(|p| p.lon),
            fix,
            time,
        }
    }
}

/// Runs the whole pipeline on the bytes of a camera JPEG.
pub fn process(
    jpeg: &[u8],
    stamp: &Stamp,
    limits: &PhotoLimits,
) -> Result<ProcessedPhoto, PhotoError> {
    if jpeg.len() as u64 > limits.max_file_bytes {
        return Err(PhotoError::TooLarge {
            bytes: jpeg.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(PhotoError::NotJpeg);
    }
    let mut decoder = Decompressor::new().map_err(PhotoError::decoder)?;
    let header = decoder.read_header(jpeg).map_err(PhotoError::corrupt)?;
    let (w, h) = (header.width as u64, header.height as u64);
    if w == 0 || h == 0 {
        return Err(PhotoError::Corrupt {
            reason: "no picture frame (the file is cut off before it)".into(),
        });
    }
    if w > u64::from(limits.max_side) || h > u64::from(limits.max_side) || w * h > limits.max_pixels
    {
        return Err(PhotoError::TooManyPixels {
            width: w,
            height: h,
            limit: limits.max_pixels,
        });
    }
    let meta = read_exif(jpeg);

    // Decode scaled by the smallest n/8 that keeps the long edge at or above
    // the target: most of the inverse DCT work is skipped. Our decoder
    // (jpeg/) also skips most of the entropy decoding of a progressive file;
    // what it leaves alone, libjpeg-turbo decodes.
    let (n, sw, sh) = dct_scale(header.width, header.height, EVIDENCE_LONG_EDGE as usize);
    let (ew, eh) = fit(sw as u32, sh as u32, EVIDENCE_LONG_EDGE);
    let target = Some((ew as usize, eh as usize));
    let scaled = match super::jpeg::decode_to(jpeg, n, limits.max_pixels, target) {
        Ok(Some(pixels)) => resize(pixels, ew, eh, ew, eh)?,
        Ok(None) => {
            let mut pixels = vec![0u8; sw * sh * 3];
            decoder
                .decompress(
                    jpeg,
                    turbojpeg::Image {
                        pixels: pixels.as_mut_slice(),
                        width: sw,
                        pitch: sw * 3,
                        height: sh,
                        format: PixelFormat::RGB,
                    },
                )
                .map_err(PhotoError::corrupt)?;
            resize(pixels, sw as u32, sh as u32, ew, eh)?
        }
        Err(super::jpeg::Refused::TooManyScans) => {
            return Err(PhotoError::Corrupt {
                reason: format!(
                    "more than {} scans (a camera writes at most a dozen)",
                    super::jpeg::MAX_SCANS
                ),
            });
        }
    };
    drop(decoder);
    let mut upright = DynamicImage::ImageRgb8(scaled);
    if let Some(o) = Orientation::from_exif(meta.orientation) {
        upright.apply_orientation(o);
    }
    let DynamicImage::ImageRgb8(upright) = upright else {
        return Err(PhotoError::Corrupt {
            reason: "orientation changed the pixel format".into(),
        });
    };

    // The thumbnail (from the unmarked image) and the watermarked evidence
    // are made and encoded side by side.
    let (tw, th) = fit(upright.width(), upright.height(), THUMB_LONG_EDGE);
    let (evidence, thumb) = std::thread::scope(|s| {
        let thumb = s.spawn(|| {
            let (w, h) = (upright.width() as usize, upright.height() as usize);
            let pixels = if (tw, th) == (upright.width(), upright.height()) {
                upright.as_raw().clone()
            } else {
                super::resample::resize_rgb(upright.as_raw(), w, h, tw as usize, th as usize)
            };
            encode(&mut compressor()?, &resize(pixels, tw, th, tw, th)?)
        });
        let mut marked = upright.clone();
        watermark::burn(&mut marked, stamp);
        let evidence = encode(&mut compressor()?, &marked)?;
        let thumb = thumb.join().map_err(|_| PhotoError::Corrupt {
            reason: "the thumbnail could not be made".into(),
        })??;
        Ok::<_, PhotoError>((evidence, thumb))
    })?;
    Ok(ProcessedPhoto {
        evidence_hash: sha256_hex(&evidence),
        width: upright.width(),
        height: upright.height(),
        evidence,
        thumb_hash: sha256_hex(&thumb),
        thumb,
        taken_at: meta.taken_at,
        exif_position: meta.position,
        orientation: meta.orientation,
    })
}

/// A synthetic street-front picture as a camera JPEG (sky, a shop front with
/// a door and a signboard, pavement): what the demo district's inspections
/// and the tests photograph when no camera is at hand.
pub fn sample_jpeg(width: u32, height: u32) -> Result<Vec<u8>, PhotoError> {
    let (w, h) = (width.max(16) as usize, height.max(16) as usize);
    let mut pixels = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let rgb = if fy < 0.3 {
                [120, 170, (230.0 - fy * 100.0) as u8]
            } else if fy > 0.85 {
                [150, 150, 145]
            } else if (0.38..0.62).contains(&fx) && fy > 0.5 {
                [70, 50, 40]
            } else if fy < 0.42 && (0.15..0.85).contains(&fx) {
                [190, 30, 30]
            } else {
                [(200.0 - fx * 40.0) as u8, 190, 170]
            };
            pixels[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&rgb);
        }
    }
    let jpeg = turbojpeg::compress(
        turbojpeg::Image {
            pixels: pixels.as_slice(),
            width: w,
            pitch: w * 3,
            height: h,
            format: PixelFormat::RGB,
        },
        90,
        Subsamp::Sub2x2,
    )
    .map_err(PhotoError::decoder)?;
    Ok(jpeg.to_vec())
}

/// The DCT scale n/8 (n = 1..8) whose size is closest above `target` on the
/// long edge, and that size, computed the way libjpeg-turbo rounds
/// (`TJSCALED`: ceiling).
fn dct_scale(w: usize, h: usize, target: usize) -> (usize, usize, usize) {
    let long = w.max(h);
    for n in 1..=8 {
        let scaled = (long * n).div_ceil(8);
        if scaled >= target {
            return (n, (w * n).div_ceil(8), (h * n).div_ceil(8));
        }
    }
    (8, w, h)
}

/// Fits `(w, h)` into a square of `long_edge`, never enlarging.
fn fit(w: u32, h: u32, long_edge: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= long_edge {
        return (w, h);
    }
    let scale = f64::from(long_edge) / f64::from(long);
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    (side(w), side(h))
}

fn resize(pixels: Vec<u8>, w: u32, h: u32, dw: u32, dh: u32) -> Result<RgbImage, PhotoError> {
    let out = if (w, h) == (dw, dh) {
        pixels
    } else {
        super::resample::resize_rgb(&pixels, w as usize, h as usize, dw as usize, dh as usize)
    };
    RgbImage::from_raw(dw, dh, out).ok_or_else(|| PhotoError::Corrupt {
        reason: "decoded buffer has the wrong size".into(),
    })
}

/// A JPEG encoder at the outputs' quality and 4:2:0.
fn compressor() -> Result<Compressor, PhotoError> {
    let mut encoder = Compressor::new().map_err(PhotoError::decoder)?;
    encoder.set_quality(QUALITY);
    encoder.set_subsamp(Subsamp::Sub2x2);
    Ok(encoder)
}

fn encode(encoder: &mut Compressor, img: &RgbImage) -> Result<Vec<u8>, PhotoError> {
    encoder
        .compress_to_vec(turbojpeg::Image {
            pixels: img.as_raw().as_slice(),
            width: img.width() as usize,
            pitch: img.width() as usize * 3,
            height: img.height() as usize,
            format: PixelFormat::RGB,
        })
        .map_err(PhotoError::decoder)
}

struct ExifMeta {
    orientation: u8,
    taken_at: Option<DateTime<Utc>>,
    position: Option<GeoPoint>,
}

/// What the camera wrote. Damaged or missing EXIF is not an error: the photo
/// is upright as stored and has no camera time or position.
fn read_exif(jpeg: &[u8]) -> ExifMeta {
    use exif::{In, Tag, Value};
    let mut meta = ExifMeta {
        orientation: 1,
        taken_at: None,
        position: None,
    };
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(jpeg)) else {
        return meta;
    };
    if let Some(o) = exif
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        && (1..=8).contains(&o)
    {
        meta.orientation = o as u8;
    }
    let ascii = |tag| match exif.get_field(tag, In::PRIMARY).map(|f| &f.value) {
        Some(Value::Ascii(v)) => v
            .first()
            .and_then(|s| std::str::from_utf8(s).ok())
            .map(str::to_string),
        _ => None,
    };
    if let Some(local) = ascii(Tag::DateTimeOriginal)
        .and_then(|s| NaiveDateTime::parse_from_str(s.trim(), "%Y:%m:%d %H:%M:%S").ok())
    {
        let offset = ascii(Tag::OffsetTimeOriginal)
            .and_then(|s| DateTime::parse_from_str(&format!("2000-01-01T00:00:00{s}"), "%+").ok())
            .map(|d| *d.offset())
            .or_else(|| FixedOffset::east_opt(8 * 3600));
        meta.taken_at = offset
            .and_then(|o| o.from_local_datetime(&local).single())
            .map(|d| d.with_timezone(&Utc));
    }
    let degrees = |tag, ref_tag, negative: u8| -> Option<f64> {
        let Value::Rational(r) = &exif.get_field(tag, In::PRIMARY)?.value else {
            return None;
        };
        if r.len() < 3 || r.iter().take(3).any(|x| x.denom == 0) {
            return None;
        }
        let v = r[0].to_f64() + r[1].to_f64() / 60.0 + r[2].to_f64() / 3600.0;
        let sign = match &exif.get_field(ref_tag, In::PRIMARY)?.value {
            Value::Ascii(a) if a.first().and_then(|s| s.first()) == Some(&negative) => -1.0,
            _ => 1.0,
        };
        Some(sign * v)
    };
    if let (Some(lat), Some(lon)) = (
        degrees(Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S'),
        degrees(Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W'),
    ) {
        let p = GeoPoint::new(lat, lon);
        if p.validate("exif").is_ok() {
            meta.position = Some(p);
        }
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_scale_stays_at_or_above_the_target() {
        // 5640 × 3/8 = 2115 ≥ 1600, 5640 × 2/8 = 1410 < 1600.
        assert_eq!(dct_scale(5640, 3172, 1600), (3, 2115, 1190));
        assert_eq!(dct_scale(1200, 900, 1600), (8, 1200, 900));
        assert_eq!(dct_scale(3172, 5640, 1600), (3, 1190, 2115));
    }

    #[test]
    fn fit_never_enlarges() {
        assert_eq!(fit(2115, 1190, 1600), (1600, 900));
        assert_eq!(fit(800, 600, 1600), (800, 600));
        assert_eq!(fit(1600, 900, 320), (320, 180));
    }
}
