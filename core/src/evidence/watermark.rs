//! The evidence watermark (水印): time, place, coordinates, inspector and shop,
//! burned into the pixels in the bottom-left corner on a dark panel, the way
//! Chinese field apps stamp their photos.
//!
//! The font is Noto Sans CJK SC Bold subset to ASCII and GB 2312 (7,543
//! characters, 1.5 MB; `core/fonts/`, SIL OFL 1.1). A character outside it is
//! drawn as the font's empty box, never dropped.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use chrono::{DateTime, FixedOffset, Utc};
use image::RgbImage;

use crate::model::geo::GeoPoint;

static FONT_BYTES: &[u8] = include_bytes!("../../fonts/watermark-sc.otf");

fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// What the watermark says.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    /// When the photo was taken (the record's time), shown as Beijing time.
    pub at: DateTime<Utc>,
    /// Street and lane (街道 + 巷), or the shop's address.
    pub place: String,
    /// The phone's WGS-84 fix, if it had one.
    pub position: Option<GeoPoint>,
    /// The inspector's or steward's display name.
    pub inspector: String,
    /// The shop's name and code, if the photo is of a shop.
    pub shop: Option<String>,
}

impl Stamp {
    /// The lines burned in, top to bottom.
    pub fn lines(&self) -> Vec<String> {
        let beijing = FixedOffset::east_opt(8 * 3600).map(|o| self.at.with_timezone(&o));
        let mut lines = vec!["门前三包 · 现场取证".to_string()];
        if let Some(t) = beijing {
            lines.push(format!("时间：{}", t.format("%Y-%m-%d %H:%M:%S")));
        }
        if !self.place.trim().is_empty() {
            lines.push(format!("地点：{}", self.place.trim()));
        }
        match self.position {
            Some(p) => lines.push(format!(
                "坐标：{:.6}°{} {:.6}°{}",
                p.lat.abs(),
                if p.lat >= 0.0 { "N" } else { "S" },
                p.lon.abs(),
                if p.lon >= 0.0 { "E" } else { "W" }
            )),
            None => lines.push("坐标：无定位".to_string()),
        }
        if !self.inspector.trim().is_empty() {
            lines.push(format!("巡查员：{}", self.inspector.trim()));
        }
        if let Some(shop) = self.shop.as_deref().filter(|s| !s.trim().is_empty()) {
            lines.push(format!("商户：{}", shop.trim()));
        }
        lines
    }
}

/// Burns the stamp into the image's bottom-left corner.
pub fn burn(img: &mut RgbImage, stamp: &Stamp) {
    let Some(font) = font() else {
        return;
    };
    let (w, h) = img.dimensions();
    let size = (w.min(h) as f32 / 40.0).max(14.0);
    let scaled = font.as_scaled(PxScale::from(size));
    let line_height = (scaled.height() + scaled.line_gap()).ceil() * 1.15;
    let pad = (size * 0.6).round();
    let max_text = w as f32 - 4.0 * pad;
    let lines: Vec<String> = stamp
        .lines()
        .into_iter()
        .map(|l| fit_line(&scaled, &l, max_text))
        .collect();
    let text_w = lines
        .iter()
        .map(|l| line_width(&scaled, l))
        .fold(0.0f32, f32::max);
    let panel_w = (text_w + 2.0 * pad).ceil() as u32;
    let panel_h = (lines.len() as f32 * line_height + 2.0 * pad).ceil() as u32;
    let margin = pad as u32;
    let x0 = margin;
    let y0 = h.saturating_sub(panel_h + margin);
    shade(img, x0, y0, panel_w, panel_h, 0.55);
    for (i, line) in lines.iter().enumerate() {
        let baseline = y0 as f32 + pad + i as f32 * line_height + scaled.ascent();
        draw_line(img, font, &scaled, line, x0 as f32 + pad, baseline);
    }
}

fn line_width<F: Font>(scaled: &ab_glyph::PxScaleFont<&F>, line: &str) -> f32 {
    line.chars()
        .map(|c| scaled.h_advance(scaled.glyph_id(c)))
        .sum()
}

/// Cuts a line that would not fit, ending it with "…".
fn fit_line<F: Font>(scaled: &ab_glyph::PxScaleFont<&F>, line: &str, max: f32) -> String {
    if line_width(scaled, line) <= max {
        return line.to_string();
    }
    let ellipsis = scaled.h_advance(scaled.glyph_id('…'));
    let mut out = String::new();
    let mut used = 0.0;
    for c in line.chars() {
        let a = scaled.h_advance(scaled.glyph_id(c));
        if used + a + ellipsis > max {
            break;
        }
        used += a;
        out.push(c);
    }
    out.push('…');
    out
}

/// Darkens a rectangle by `alpha`.
fn shade(img: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, alpha: f32) {
    let keep = 1.0 - alpha;
    for y in y0..(y0 + h).min(img.height()) {
        for x in x0..(x0 + w).min(img.width()) {
            let p = img.get_pixel_mut(x, y);
            for c in p.0.iter_mut() {
                *c = (f32::from(*c) * keep) as u8;
            }
        }
    }
}

fn draw_line<F: Font>(
    img: &mut RgbImage,
    font: &F,
    scaled: &ab_glyph::PxScaleFont<&F>,
    line: &str,
    x: f32,
    baseline: f32,
) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let mut caret = x;
    for c in line.chars() {
        let mut glyph = scaled.scaled_glyph(c);
        glyph.position = point(caret, baseline);
        caret += scaled.h_advance(glyph.id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let px = bounds.min.x as i64 + i64::from(gx);
            let py = bounds.min.y as i64 + i64::from(gy);
            if (0..w).contains(&px) && (0..h).contains(&py) {
                let p = img.get_pixel_mut(px as u32, py as u32);
                let a = coverage.clamp(0.0, 1.0);
                for ch in p.0.iter_mut() {
                    *ch = (f32::from(*ch) * (1.0 - a) + 255.0 * a) as u8;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_has_every_character_a_stamp_uses() {
        let font = font().expect("embedded font parses");
        let stamp = Stamp {
            at: DateTime::from_timestamp(1_795_000_000, 0).expect("time"),
            place: "右安门街道 富义街东一巷".into(),
            position: Some(GeoPoint::new(39.87, 116.37)),
            inspector: "张伟".into(),
            shop: Some("老王烧饼（FT-000123）".into()),
        };
        for line in stamp.lines() {
            for c in line.chars().filter(|c| *c != ' ') {
                assert_ne!(font.glyph_id(c).0, 0, "no glyph for {c:?} in {line}");
            }
        }
    }
}
