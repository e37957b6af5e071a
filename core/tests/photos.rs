//! The photo pipeline on real camera photos (Debian's mate-backgrounds and
//! lomiri-wallpapers; `scripts/test.sh` installs them) and on generated JPEGs
//! carrying each EXIF orientation.
#![cfg(feature = "photos")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use chrono::{DateTime, TimeZone, Utc};
use image::metadata::Orientation;
use image::{DynamicImage, Rgb, RgbImage};
use menqian_core::GeoPoint;
use menqian_core::evidence::photo::{self, PhotoLimits};
use menqian_core::evidence::watermark::Stamp;
use menqian_core::evidence::{PhotoError, sha256_hex};

const ELEPHANTS: &str = "/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg";
const SEEDING: &str = "/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg";

fn stamp() -> Stamp {
    Stamp {
        at: Utc
            .with_ymd_and_hms(2026, 11, 23, 6, 5, 9)
            .single()
            .expect("time"),
        place: "右安门街道 富义街东一巷".into(),
        position: Some(GeoPoint::new(39.871234, 116.371234)),
        inspector: "王磊".into(),
        shop: Some("老王烧饼（FT-000123）".into()),
    }
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run scripts/test.sh, which installs it)"))
}

fn decode(jpeg: &[u8]) -> RgbImage {
    let img = turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::RGB).expect("output decodes");
    RgbImage::from_raw(img.width as u32, img.height as u32, img.pixels).expect("rgb")
}

fn has_app1_exif(jpeg: &[u8]) -> bool {
    jpeg.windows(6).any(|w| w == b"Exif\0\0")
}

#[test]
fn a_sony_rx100_photo_becomes_evidence_without_its_camera_identity() {
    let input = read(ELEPHANTS);
    assert!(
        input.windows(11).any(|w| w == b"DSC-RX100M4"),
        "the input names its camera"
    );
    let out = photo::process(&input, &stamp(), &PhotoLimits::default()).expect("processed");
    assert_eq!((out.width, out.height), (1600, 900));
    let thumb = decode(&out.thumb);
    assert_eq!(thumb.dimensions(), (320, 180));
    assert_eq!(decode(&out.evidence).dimensions(), (1600, 900));
    assert_eq!(out.evidence_hash, sha256_hex(&out.evidence));
    assert_eq!(out.thumb_hash, sha256_hex(&out.thumb));
    for jpeg in [&out.evidence, &out.thumb] {
        assert!(!has_app1_exif(jpeg), "EXIF stripped");
        assert!(!jpeg.windows(5).any(|w| w == b"SONY"), "no maker left");
        assert!(!jpeg.windows(7).any(|w| w == b"DSC-RX1"), "no model left");
    }
    // The capture time is kept in the record: 2020:02:19 16:35:05 on the
    // camera, with no offset written, read as Beijing time.
    let expected: DateTime<Utc> = Utc
        .with_ymd_and_hms(2020, 2, 19, 8, 35, 5)
        .single()
        .expect("t");
    assert_eq!(out.taken_at, Some(expected));
    assert!(
        out.evidence.len() < 1_000_000,
        "{} bytes",
        out.evidence.len()
    );
}

#[test]
fn the_watermark_is_burned_into_the_bottom_left_corner() {
    let input = read(SEEDING);
    let out = photo::process(&input, &stamp(), &PhotoLimits::default()).expect("processed");
    let img = decode(&out.evidence);
    let (w, h) = img.dimensions();
    // The panel: the corner region has near-white text pixels on a dark panel,
    // and the same region on the top-right has neither pattern.
    let count = |x0: u32, y0: u32, pred: &dyn Fn(&Rgb<u8>) -> bool| {
        let mut n = 0;
        for y in y0..y0 + 120 {
            for x in x0..x0 + 300 {
                if pred(img.get_pixel(x, y)) {
                    n += 1;
                }
            }
        }
        n
    };
    let white = |p: &Rgb<u8>| p.0.iter().all(|c| *c > 225);
    let dark = |p: &Rgb<u8>| p.0.iter().all(|c| *c < 90);
    let corner_white = count(30, h - 150, &white);
    let corner_dark = count(30, h - 150, &dark);
    assert!(
        corner_white > 1_500,
        "text pixels in the corner: {corner_white}"
    );
    assert!(
        corner_dark > 10_000,
        "panel pixels in the corner: {corner_dark}"
    );
    assert!(count(w - 330, 30, &white) < corner_white / 4);
}

/// An 800 × 600 picture whose quadrants are red, green, blue and white, stored
/// the way a camera stores it for `orientation`.
fn camera_jpeg(orientation: u8) -> Vec<u8> {
    let mut upright = RgbImage::new(800, 600);
    for (x, y, p) in upright.enumerate_pixels_mut() {
        *p = match (x < 400, y < 300) {
            (true, true) => Rgb([220, 20, 20]),
            (false, true) => Rgb([20, 200, 20]),
            (true, false) => Rgb([20, 20, 220]),
            (false, false) => Rgb([250, 250, 250]),
        };
    }
    // What the sensor held is the upright picture under the inverse transform.
    let inverse = [1, 2, 3, 4, 5, 8, 7, 6][usize::from(orientation - 1)];
    let mut stored = DynamicImage::ImageRgb8(upright);
    stored.apply_orientation(Orientation::from_exif(inverse).expect("orientation"));
    let stored = stored.to_rgb8();
    let jpeg = turbojpeg::compress(
        turbojpeg::Image {
            pixels: stored.as_raw().as_slice(),
            width: stored.width() as usize,
            pitch: stored.width() as usize * 3,
            height: stored.height() as usize,
            format: turbojpeg::PixelFormat::RGB,
        },
        92,
        turbojpeg::Subsamp::None,
    )
    .expect("compress");
    // APP1 Exif with one IFD entry: Orientation (0x0112), SHORT, 1.
    let mut tiff = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    tiff.extend_from_slice(&[0, orientation, 0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn every_exif_orientation_comes_out_upright() {
    for o in 1..=8u8 {
        let input = camera_jpeg(o);
        let out = photo::process(&input, &stamp(), &PhotoLimits::default())
            .unwrap_or_else(|e| panic!("orientation {o}: {e}"));
        assert_eq!(out.orientation, o);
        let img = decode(&out.evidence);
        assert_eq!(img.dimensions(), (800, 600), "orientation {o}");
        // The watermark sits bottom-left; the top quadrants and bottom-right are clear.
        let near = |x, y, rgb: [u8; 3]| {
            let p = img.get_pixel(x, y).0;
            p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) < 40)
        };
        assert!(near(200, 150, [220, 20, 20]), "orientation {o}: top-left");
        assert!(near(600, 150, [20, 200, 20]), "orientation {o}: top-right");
        assert!(
            near(700, 550, [250, 250, 250]),
            "orientation {o}: bottom-right"
        );
        assert_eq!(decode(&out.thumb).dimensions(), (320, 240));
    }
}

#[test]
fn bad_files_get_a_typed_error() {
    let limits = PhotoLimits::default();
    let elephants = read(ELEPHANTS);
    let png = read("/usr/share/backgrounds/mate/abstract/Flow.png");
    assert_eq!(
        photo::process(&png, &stamp(), &limits),
        Err(PhotoError::NotJpeg)
    );
    assert_eq!(
        photo::process(b"", &stamp(), &limits),
        Err(PhotoError::NotJpeg)
    );

    let truncated = &elephants[..elephants.len() / 2];
    assert!(matches!(
        photo::process(truncated, &stamp(), &limits),
        Err(PhotoError::Corrupt { .. })
    ));
    let header_only = &elephants[..4096];
    let r = photo::process(header_only, &stamp(), &limits);
    assert!(matches!(r, Err(PhotoError::Corrupt { .. })), "{r:?}");

    // A decompression bomb: a small file whose frame header claims 60000 × 60000.
    let mut bomb = camera_jpeg(1);
    let sof = bomb
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF0");
    bomb[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    assert!(matches!(
        photo::process(&bomb, &stamp(), &limits),
        Err(PhotoError::TooManyPixels {
            width: 60_000,
            height: 60_000,
            ..
        })
    ));

    let small = PhotoLimits {
        max_file_bytes: 1_000_000,
        ..limits
    };
    assert!(matches!(
        photo::process(&elephants, &stamp(), &small),
        Err(PhotoError::TooLarge { .. })
    ));
}
