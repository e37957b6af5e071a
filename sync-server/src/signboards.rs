//! Printable signboards (公示牌) as PDF: a shop's board (300 × 200 mm, or two
//! to an A4 sheet with cut marks) and a lane's board (街巷长公示牌). The text
//! is set in a CJK font embedded as a subset of the glyphs used, so it can be
//! copied out of the file; QR codes are vector squares with a four-module
//! quiet zone at error correction level Q (a quarter of the code may be
//! lost). The file is written as a stream, page by page, and the font at the
//! end: a district's 21,728 boards never sit in memory. What a board says
//! comes from the core (`Store::signboards`).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use menqian_core::{LaneBoard, Signboard};
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Chunk, Content, Filter, Name, Rect as PdfRect, Ref, Str};

/// Fonts tried in turn when none is given: Noto Sans CJK SC (Debian's
/// `fonts-noto-cjk`; index 2 of the collection is Simplified Chinese), then
/// WenQuanYi Micro Hei.
pub const FONT_CANDIDATES: [(&str, u32); 3] = [
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
];

/// How boards are laid out on paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// One board per page, 300 × 200 mm.
    #[default]
    Board,
    /// Two boards (180 × 120 mm) per A4 sheet, with cut marks.
    A4,
}

impl Layout {
    pub fn parse(s: &str) -> Option<Layout> {
        match s {
            "board" => Some(Layout::Board),
            "a4" | "A4" => Some(Layout::A4),
            _ => None,
        }
    }
}

/// A lane's board with what the station knows beyond the registry.
#[derive(Debug, Clone)]
pub struct LaneSign {
    pub board: LaneBoard,
    /// The lane chiefs' names.
    pub chiefs: Vec<String>,
    /// Where a citizen reports a problem or signs up as a steward.
    pub link: String,
}

/// What goes on one board.
#[derive(Debug)]
pub enum Board<'a> {
    Shop(&'a Signboard),
    Lane(&'a LaneSign),
}

/// A font file and the face in it that boards are set in.
#[derive(Debug)]
pub struct FontFile {
    data: Vec<u8>,
    index: u32,
    pub path: std::path::PathBuf,
}

/// Loads the font at `path` (collection index `index`), or the first of
/// [`FONT_CANDIDATES`] present.
pub fn load_font(path: Option<(&Path, u32)>) -> Result<FontFile, String> {
    let (path, index) = match path {
        Some((p, i)) => (p.to_path_buf(), i),
        None => FONT_CANDIDATES
            .iter()
            .map(|(p, i)| (Path::new(p).to_path_buf(), *i))
            .find(|(p, _)| p.exists())
            .ok_or_else(|| {
                format!(
                    "找不到中文字体（试过 {}）：安装 fonts-noto-cjk，或用 --font 指定",
                    FONT_CANDIDATES.map(|(p, _)| p).join("、")
                )
            })?,
    };
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let face = ttf_parser::Face::parse(&data, index)
        .map_err(|e| format!("{}: 不是可用的字体（{e}）", path.display()))?;
    if face.tables().cff.is_none() && face.tables().glyf.is_none() {
        return Err(format!("{}: 字体没有字形轮廓", path.display()));
    }
    if face.glyph_index('门').is_none() {
        return Err(format!("{}: 字体不含中文", path.display()));
    }
    Ok(FontFile { data, index, path })
}

const MM: f32 = 72.0 / 25.4;
const BOARD_W: f32 = 300.0;
const BOARD_H: f32 = 200.0;
const A4_W: f32 = 210.0;
const A4_H: f32 = 297.0;
/// A board on A4: 180 × 120 mm.
const A4_SCALE: f32 = 0.6;

/// Writes `boards` to a PDF at `out` (through `out.part`, renamed when
/// done). `progress(done, total)` after each board; `false` stops it and
/// leaves nothing behind. Returns the file's size.
pub fn write_pdf(
    boards: &[Board<'_>],
    font: &FontFile,
    layout: Layout,
    out: &Path,
    mut progress: impl FnMut(u64, u64) -> bool,
) -> Result<u64, String> {
    if boards.is_empty() {
        return Err("没有要打印的公示牌".into());
    }
    let mut part = out.as_os_str().to_os_string();
    part.push(".part");
    let part = std::path::PathBuf::from(part);
    let result = (|| -> Result<u64, String> {
        let file = std::fs::File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
        let mut pdf = PdfStream::new(BufWriter::new(file), font)?;
        let total = boards.len() as u64;
        let per_page = match layout {
            Layout::Board => 1,
            Layout::A4 => 2,
        };
        let (w, h) = match layout {
            Layout::Board => (BOARD_W, BOARD_H),
            Layout::A4 => (A4_W, A4_H),
        };
        for (k, chunk) in boards.chunks(per_page).enumerate() {
            let mut page = pdf.page(w, h);
            for (j, board) in chunk.iter().enumerate() {
                let (x, y, scale) = match layout {
                    Layout::Board => (0.0, 0.0, 1.0),
                    Layout::A4 => (15.0, 18.0 + j as f32 * 141.0, A4_SCALE),
                };
                if layout == Layout::A4 {
                    page.cut_marks(x, y, BOARD_W * scale, BOARD_H * scale);
                }
                page.origin = (x, y, scale);
                match board {
                    Board::Shop(s) => draw_shop(&mut page, s),
                    Board::Lane(l) => draw_lane(&mut page, l),
                }
                let done = (k * per_page + j + 1) as u64;
                if !progress(done, total) {
                    return Err("已取消：未写入文件".into());
                }
            }
            page.finish()?;
        }
        pdf.finish()
    })();
    match result {
        Ok(size) => {
            std::fs::rename(&part, out).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(size)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

/// A PDF written object by object to a file: pages as they are finished,
/// the page tree and the font (a subset of the glyphs used) at the end.
struct PdfStream<'f, W: std::io::Write> {
    out: W,
    written: u64,
    /// Each object's byte offset, by number (1-based; 0 unused).
    offsets: Vec<u64>,
    pages: Vec<Ref>,
    face: ttf_parser::Face<'f>,
    font: &'f FontFile,
    glyphs: subsetter::GlyphRemapper,
    /// New glyph id → (advance in 1/1000 em, the text it shows).
    used: BTreeMap<u16, (f32, char)>,
    /// The subset's name: a tag and the font's PostScript name.
    font_name: Vec<u8>,
}

const CATALOG: Ref = Ref::new(1);
const PAGE_TREE: Ref = Ref::new(2);
const TYPE0: Ref = Ref::new(3);
const CID_FONT: Ref = Ref::new(4);
const DESCRIPTOR: Ref = Ref::new(5);
const FONT_DATA: Ref = Ref::new(6);
const TO_UNICODE: Ref = Ref::new(7);
const FIRST_FREE: i32 = 8;

impl<'f, W: std::io::Write> PdfStream<'f, W> {
    fn new(mut out: W, font: &'f FontFile) -> Result<Self, String> {
        let face = ttf_parser::Face::parse(&font.data, font.index).map_err(|e| e.to_string())?;
        let postscript: String = face
            .names()
            .into_iter()
            .find(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
            .and_then(|n| n.to_string())
            .unwrap_or_else(|| "CJK".into())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(60)
            .collect();
        let font_name = format!("MQSUBS+{postscript}").into_bytes();
        let header = b"%PDF-1.7\n%\x80\x80\x80\x80\n";
        out.write_all(header).map_err(|e| e.to_string())?;
        Ok(PdfStream {
            out,
            written: header.len() as u64,
            offsets: vec![0; FIRST_FREE as usize],
            pages: Vec::new(),
            face,
            font,
            glyphs: subsetter::GlyphRemapper::new(),
            used: BTreeMap::new(),
            font_name,
        })
    }

    fn next_ref(&mut self) -> Ref {
        self.offsets.push(0);
        Ref::new((self.offsets.len() - 1) as i32)
    }

    /// Writes one object's chunk, noting where it starts.
    fn emit(&mut self, id: Ref, chunk: &Chunk) -> Result<(), String> {
        let n = id.get() as usize;
        if n >= self.offsets.len() {
            self.offsets.resize(n + 1, 0);
        }
        self.offsets[n] = self.written;
        self.out
            .write_all(chunk.as_bytes())
            .map_err(|e| e.to_string())?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    fn page(&mut self, w_mm: f32, h_mm: f32) -> Canvas<'_, 'f, W> {
        Canvas {
            content: Content::new(),
            page_h: h_mm,
            page_w: w_mm,
            origin: (0.0, 0.0, 1.0),
            pdf: self,
        }
    }

    fn finish_page(&mut self, w: f32, h: f32, raw: &[u8]) -> Result<(), String> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        z.write_all(raw).map_err(|e| e.to_string())?;
        let data = z.finish().map_err(|e| e.to_string())?;
        let (page_id, content_id) = (self.next_ref(), self.next_ref());
        let mut chunk = Chunk::new();
        chunk.stream(content_id, &data).filter(Filter::FlateDecode);
        self.emit(content_id, &chunk)?;
        let mut chunk = Chunk::new();
        {
            let mut page = chunk.page(page_id);
            page.parent(PAGE_TREE)
                .media_box(PdfRect::new(0.0, 0.0, w * MM, h * MM))
                .contents(content_id);
            page.resources().fonts().pair(Name(b"F1"), TYPE0);
        }
        self.emit(page_id, &chunk)?;
        self.pages.push(page_id);
        Ok(())
    }

    /// The glyphs of `text` as the font's new (subset) ids, noted for the
    /// subset, the widths and the text layer; and its width in em.
    fn encode(&mut self, text: &str) -> (Vec<u8>, f32) {
        let upem = f32::from(self.face.units_per_em());
        let mut bytes = Vec::with_capacity(text.len() * 2);
        let mut width = 0.0;
        for c in text.chars() {
            let gid = self.face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
            let advance = f32::from(self.face.glyph_hor_advance(gid).unwrap_or(0)) / upem;
            let new = self.glyphs.remap(gid.0);
            self.used.entry(new).or_insert((advance * 1000.0, c));
            bytes.extend_from_slice(&new.to_be_bytes());
            width += advance;
        }
        (bytes, width)
    }

    fn width(&self, text: &str) -> f32 {
        let upem = f32::from(self.face.units_per_em());
        text.chars()
            .map(|c| {
                let gid = self.face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
                f32::from(self.face.glyph_hor_advance(gid).unwrap_or(0)) / upem
            })
            .sum()
    }

    /// The page tree, the font subset, the catalogue and the cross-reference
    /// table. Returns the file's size.
    fn finish(mut self) -> Result<u64, String> {
        let mut chunk = Chunk::new();
        chunk
            .pages(PAGE_TREE)
            .kids(self.pages.iter().copied())
            .count(self.pages.len() as i32);
        self.emit(PAGE_TREE, &chunk)?;

        // The subset: for a CFF font, its bare CFF program (CIDFontType0C).
        let subset = subsetter::subset(&self.font.data, self.font.index, &self.glyphs)
            .map_err(|e| format!("字体子集失败：{e:?}"))?;
        let cff = ttf_parser::RawFace::parse(&subset, 0)
            .ok()
            .and_then(|f| f.table(ttf_parser::Tag::from_bytes(b"CFF ")))
            .map(<[u8]>::to_vec);
        let is_cff = cff.is_some();
        let program = cff.unwrap_or_else(|| subset.clone());
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        z.write_all(&program).map_err(|e| e.to_string())?;
        let program = z.finish().map_err(|e| e.to_string())?;
        let mut chunk = Chunk::new();
        {
            let mut stream = chunk.stream(FONT_DATA, &program);
            stream.filter(Filter::FlateDecode);
            if is_cff {
                stream.pair(Name(b"Subtype"), Name(b"CIDFontType0C"));
            }
        }
        self.emit(FONT_DATA, &chunk)?;

        let upem = f32::from(self.face.units_per_em());
        let em = |v: i16| f32::from(v) / upem * 1000.0;
        let b = self.face.global_bounding_box();
        let mut chunk = Chunk::new();
        {
            let mut d = chunk.font_descriptor(DESCRIPTOR);
            d.name(Name(&self.font_name))
                .flags(FontFlags::SYMBOLIC)
                .bbox(PdfRect::new(
                    em(b.x_min),
                    em(b.y_min),
                    em(b.x_max),
                    em(b.y_max),
                ))
                .italic_angle(0.0)
                .ascent(em(self.face.ascender()))
                .descent(em(self.face.descender()))
                .cap_height(em(self
                    .face
                    .capital_height()
                    .unwrap_or(self.face.ascender())))
                .stem_v(80.0);
            if is_cff {
                d.font_file3(FONT_DATA);
            } else {
                d.font_file2(FONT_DATA);
            }
        }
        self.emit(DESCRIPTOR, &chunk)?;

        let mut chunk = Chunk::new();
        {
            let mut cid = chunk.cid_font(CID_FONT);
            cid.subtype(if is_cff {
                CidFontType::Type0
            } else {
                CidFontType::Type2
            })
            .base_font(Name(&self.font_name))
            .system_info(SystemInfo {
                registry: Str(b"Adobe"),
                ordering: Str(b"Identity"),
                supplement: 0,
            })
            .font_descriptor(DESCRIPTOR)
            .default_width(1000.0);
            if !is_cff {
                cid.cid_to_gid_map_predefined(Name(b"Identity"));
            }
            let mut widths = cid.widths();
            for (gid, (w, _)) in &self.used {
                widths.consecutive(*gid, [*w]);
            }
        }
        self.emit(CID_FONT, &chunk)?;

        let mut cmap = UnicodeCmap::new(
            Name(b"Adobe-Identity-UCS"),
            SystemInfo {
                registry: Str(b"Adobe"),
                ordering: Str(b"UCS"),
                supplement: 0,
            },
        );
        for (gid, (_, c)) in &self.used {
            cmap.pair(*gid, *c);
        }
        let cmap = cmap.finish();
        let mut chunk = Chunk::new();
        chunk.cmap(TO_UNICODE, &cmap);
        self.emit(TO_UNICODE, &chunk)?;

        let mut chunk = Chunk::new();
        chunk
            .type0_font(TYPE0)
            .base_font(Name(&self.font_name))
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(CID_FONT)
            .to_unicode(TO_UNICODE);
        self.emit(TYPE0, &chunk)?;

        let mut chunk = Chunk::new();
        chunk
            .indirect(CATALOG)
            .dict()
            .pair(Name(b"Type"), Name(b"Catalog"))
            .pair(Name(b"Pages"), PAGE_TREE);
        self.emit(CATALOG, &chunk)?;

        let xref_at = self.written;
        let mut xref = format!("xref\n0 {}\n0000000000 65535 f \n", self.offsets.len());
        for off in &self.offsets[1..] {
            xref.push_str(&format!("{off:010} 00000 n \n"));
        }
        xref.push_str(&format!(
            "trailer\n<< /Size {} /Root {} 0 R >>\nstartxref\n{xref_at}\n%%EOF\n",
            self.offsets.len(),
            CATALOG.get()
        ));
        self.out
            .write_all(xref.as_bytes())
            .map_err(|e| e.to_string())?;
        self.written += xref.len() as u64;
        self.out.flush().map_err(|e| e.to_string())?;
        Ok(self.written)
    }
}

/// One page being drawn, in millimetres from the top left of the board at
/// `origin` (x, y, scale on the page).
struct Canvas<'p, 'f, W: std::io::Write> {
    content: Content,
    page_w: f32,
    page_h: f32,
    origin: (f32, f32, f32),
    pdf: &'p mut PdfStream<'f, W>,
}

type Rgb = (u8, u8, u8);
const BLACK: Rgb = (0, 0, 0);
const WHITE: Rgb = (255, 255, 255);
const RED: Rgb = (176, 24, 32);

impl<W: std::io::Write> Canvas<'_, '_, W> {
    /// Writes the page out.
    fn finish(self) -> Result<(), String> {
        let raw = self.content.finish();
        self.pdf.finish_page(self.page_w, self.page_h, &raw)
    }

    /// A board point on the page, in PDF points (y up).
    fn at(&self, x: f32, y: f32) -> (f32, f32) {
        let (ox, oy, s) = self.origin;
        ((ox + x * s) * MM, (self.page_h - (oy + y * s)) * MM)
    }

    fn fill(&mut self, (r, g, b): Rgb) {
        self.content.set_fill_rgb(
            f32::from(r) / 255.0,
            f32::from(g) / 255.0,
            f32::from(b) / 255.0,
        );
    }

    fn width_of(&self, text: &str, size: f32) -> f32 {
        self.pdf.width(text) * size
    }

    fn text(&mut self, x: f32, baseline: f32, size: f32, text: &str, colour: Rgb) {
        let (bytes, _) = self.pdf.encode(text);
        let (px, py) = self.at(x, baseline);
        let pt = size * self.origin.2 * MM;
        self.fill(colour);
        self.content
            .begin_text()
            .set_font(Name(b"F1"), pt)
            .set_text_matrix([1.0, 0.0, 0.0, 1.0, px, py])
            .show(Str(&bytes))
            .end_text();
    }

    /// `text` wrapped to `width`, from `baseline` down, no lower than
    /// `bottom` (the rest cut with …); returns the next baseline.
    fn para(
        &mut self,
        x: f32,
        baseline: f32,
        width: f32,
        bottom: f32,
        size: f32,
        text: &str,
    ) -> f32 {
        let mut y = baseline;
        let mut line = String::new();
        let chars: Vec<char> = text.chars().collect();
        let mut k = 0;
        while k < chars.len() {
            line.push(chars[k]);
            k += 1;
            let full = self.width_of(&line, size) > width;
            if full || k == chars.len() {
                let mut shown = line.clone();
                if full {
                    // The character that overflowed starts the next line.
                    shown.pop();
                    k -= 1;
                }
                let last = y + size * 1.45 > bottom && k < chars.len();
                if last {
                    shown.pop();
                    shown.push('…');
                }
                self.text(x, y, size, &shown, BLACK);
                y += size * 1.45;
                line.clear();
                if last {
                    break;
                }
            }
        }
        y
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, colour: Rgb) {
        let s = self.origin.2;
        let (px, py) = self.at(x, y + h);
        self.fill(colour);
        self.content
            .rect(px, py, w * s * MM, h * s * MM)
            .fill_nonzero();
    }

    fn frame(&mut self, title: &str) {
        let s = self.origin.2;
        let (px, py) = self.at(4.0, BOARD_H - 4.0);
        self.content
            .set_stroke_rgb(
                f32::from(RED.0) / 255.0,
                f32::from(RED.1) / 255.0,
                f32::from(RED.2) / 255.0,
            )
            .set_line_width(1.2 * s * MM)
            .rect(px, py, (BOARD_W - 8.0) * s * MM, (BOARD_H - 8.0) * s * MM)
            .stroke();
        self.rect(4.0, 4.0, BOARD_W - 8.0, 24.0, RED);
        let size = 13.0;
        let x = (BOARD_W - self.width_of(title, size)) / 2.0;
        self.text(x, 21.0, size, title, WHITE);
    }

    /// The QR code of `link`, `side` mm square including its quiet zone,
    /// its top-left corner at (x, y).
    fn qr(&mut self, link: &str, x: f32, y: f32, side: f32) {
        let Ok(code) =
            qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::Q)
        else {
            return;
        };
        let n = code.width();
        let quiet = 4;
        let module = side / (n + 2 * quiet) as f32;
        let colors = code.to_colors();
        self.fill(BLACK);
        let s = self.origin.2;
        for row in 0..n {
            let mut col = 0;
            while col < n {
                if colors[row * n + col] == qrcode::Color::Dark {
                    let start = col;
                    while col < n && colors[row * n + col] == qrcode::Color::Dark {
                        col += 1;
                    }
                    // A hair taller, so rows join without seams.
                    let h = module * 1.02;
                    let (px, py) = self.at(
                        x + (quiet + start) as f32 * module,
                        y + (quiet + row) as f32 * module + h,
                    );
                    self.content
                        .rect(px, py, (col - start) as f32 * module * s * MM, h * s * MM);
                } else {
                    col += 1;
                }
            }
        }
        self.content.fill_nonzero();
    }

    fn footer(&mut self, hotline: &str, issuer: &str) {
        self.rect(4.0, 178.0, BOARD_W - 8.0, 0.6, RED);
        self.text(12.0, 190.0, 7.0, &format!("监督电话：{hotline}"), BLACK);
        let size = 5.5;
        let x = BOARD_W - 12.0 - self.width_of(issuer, size);
        self.text(x, 190.0, size, issuer, BLACK);
    }

    /// Thin marks at a board's corners (page millimetres), outside it, to
    /// cut along.
    fn cut_marks(&mut self, x: f32, y: f32, w: f32, h: f32) {
        let (len, gap) = (5.0, 1.5);
        let page = |px: f32, py: f32| (px * MM, (self.page_h - py) * MM);
        let mut lines = Vec::new();
        for (cx, cy, dx, dy) in [
            (x, y, -1.0, -1.0),
            (x + w, y, 1.0, -1.0),
            (x, y + h, -1.0, 1.0),
            (x + w, y + h, 1.0, 1.0),
        ] {
            lines.push((page(cx + dx * gap, cy), page(cx + dx * (gap + len), cy)));
            lines.push((page(cx, cy + dy * gap), page(cx, cy + dy * (gap + len))));
        }
        self.content
            .set_stroke_rgb(0.0, 0.0, 0.0)
            .set_line_width(0.3);
        for ((x1, y1), (x2, y2)) in lines {
            self.content.move_to(x1, y1).line_to(x2, y2);
        }
        self.content.stroke();
    }
}

fn draw_shop<W: std::io::Write>(pen: &mut Canvas<'_, '_, W>, s: &Signboard) {
    pen.frame(&s.title);
    let (left, width) = (12.0, 182.0);
    let y = pen.para(left, 46.0, width, 62.0, 12.0, &s.name);
    let y = pen.para(
        left,
        y + 1.0,
        width,
        80.0,
        6.0,
        &format!("地址：{}", s.address),
    );
    let y = pen.para(
        left,
        y + 1.0,
        width,
        108.0,
        5.4,
        &format!("责任区：{}", s.zone_words),
    );
    let mut y = y + 2.0;
    for (duty, items) in &s.duties {
        let text = if items.is_empty() {
            format!("■ {duty}")
        } else {
            format!("■ {duty}：{}", items.join("；"))
        };
        y = pen.para(left, y, width, 174.0, 5.4, &text) + 0.8;
        if y > 174.0 {
            break;
        }
    }
    pen.qr(&s.link, 204.0, 34.0, 84.0);
    let caption = "扫码查看 · 反映问题";
    let w = pen.width_of(caption, 5.0);
    pen.text(246.0 - w / 2.0, 126.0, 5.0, caption, BLACK);
    let code = format!("编码 {}", s.code);
    let w = pen.width_of(&code, 5.5);
    pen.text(246.0 - w / 2.0, 136.0, 5.5, &code, BLACK);
    pen.footer(&s.hotline, &s.issuer);
}

fn draw_lane<W: std::io::Write>(pen: &mut Canvas<'_, '_, W>, l: &LaneSign) {
    pen.frame("街巷长公示牌");
    let b = &l.board;
    let (left, width) = (12.0, 180.0);
    let y = pen.para(left, 48.0, width, 66.0, 12.0, &b.lane);
    let place = match &b.subdistrict {
        Some(s) => format!("{s} · {}", b.street),
        None => b.street.clone(),
    };
    let y = pen.para(left, y + 2.0, width, 80.0, 5.5, &place);
    let chiefs = if l.chiefs.is_empty() {
        "街巷长：待定".to_string()
    } else {
        format!("街巷长：{}", l.chiefs.join("、"))
    };
    let y = pen.para(left, y + 4.0, width, 110.0, 7.0, &chiefs);
    let y = pen.para(
        left,
        y + 2.0,
        width,
        130.0,
        4.8,
        &format!("本巷沿街商户 {} 家，落实门前责任，共建整洁街巷。", b.shops),
    );
    pen.para(
        left,
        y + 2.0,
        width,
        174.0,
        4.8,
        "发现问题请扫码反映，或报名成为小巷管家；街巷长负责巡查、协调、督促整改。",
    );
    pen.qr(&l.link, 204.0, 34.0, 84.0);
    let caption = "扫码反映问题 · 报名小巷管家";
    let w = pen.width_of(caption, 5.0);
    pen.text(246.0 - w / 2.0, 126.0, 5.0, caption, BLACK);
    pen.footer(&b.hotline, &b.issuer);
}

/// Where a lane board's QR code leads: the public page to report a problem
/// on the lane or sign up as its steward.
pub fn lane_link(host: &str, lane: &str) -> String {
    let lane: String = url::form_urlencoded::byte_serialize(lane.as_bytes()).collect();
    format!("https://{host}/l/{lane}")
}

/// Lane boards with their chiefs (lane chiefs whose area names the lane)
/// and links.
pub fn lane_signs(boards: Vec<LaneBoard>, users: &[crate::User], host: &str) -> Vec<LaneSign> {
    boards
        .into_iter()
        .map(|board| {
            let chiefs = users
                .iter()
                .filter(|u| u.role == menqian_core::Role::LaneChief)
                .filter(
                    |u| matches!(&u.area, menqian_core::Area::Lanes(l) if l.contains(&board.lane)),
                )
                .map(|u| u.name.clone())
                .collect();
            LaneSign {
                link: lane_link(host, &board.lane),
                chiefs,
                board,
            }
        })
        .collect()
}

/// Which boards to print.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// One shop, by its code.
    pub shop: Option<String>,
    /// One street (within `subdistrict` when given).
    pub street: Option<String>,
    pub subdistrict: Option<String>,
    /// The lanes' boards (of `subdistrict`, or all) instead of shops'.
    pub lanes: bool,
    /// The checklist whose duties shops' boards list (default the first).
    pub checklist: Option<String>,
}

/// How boards are printed: the font, the layout, and the host of the QR
/// links.
#[derive(Debug, Clone, Copy)]
pub struct Press<'a> {
    pub font: &'a FontFile,
    pub layout: Layout,
    pub host: &'a str,
}

/// Prints the selected boards from `docs` to `out`: (boards, bytes).
pub fn print(
    docs: &menqian_core::Store,
    users: &[crate::User],
    selection: &Selection,
    press: Press<'_>,
    out: &Path,
    progress: impl FnMut(u64, u64) -> bool,
) -> Result<(usize, u64), String> {
    use menqian_core::store::ledger::Scope;
    let Press { font, layout, host } = press;
    let text = |e: menqian_core::Error| e.to_string();
    if selection.lanes {
        let lanes = docs
            .lane_boards(selection.subdistrict.as_deref())
            .map_err(text)?;
        let signs = lane_signs(lanes, users, host);
        let boards: Vec<Board<'_>> = signs.iter().map(Board::Lane).collect();
        return Ok((
            boards.len(),
            write_pdf(&boards, font, layout, out, progress)?,
        ));
    }
    let shop = selection
        .shop
        .as_deref()
        .map(|c| menqian_core::ShopCode::parse(c).map(|c| menqian_core::Shop::id_for(&c)))
        .transpose()
        .map_err(|e| format!("商户编码：{e}"))?;
    let scope = match (&shop, &selection.street, &selection.subdistrict) {
        (Some(id), _, _) => Scope::Shop(id),
        (None, Some(street), sub) => Scope::Street {
            street,
            subdistrict: sub.as_deref(),
        },
        (None, None, Some(sub)) => Scope::Subdistrict(sub),
        (None, None, None) => Scope::All,
    };
    let list = docs
        .signboards(scope, selection.checklist.as_deref(), host)
        .map_err(text)?;
    let boards: Vec<Board<'_>> = list.iter().map(Board::Shop).collect();
    Ok((
        boards.len(),
        write_pdf(&boards, font, layout, out, progress)?,
    ))
}
