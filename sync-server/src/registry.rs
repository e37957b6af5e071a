//! The district's ledger (台账) as files: an XLSX, XLS or CSV read into text
//! cells for the core's importer (`menqian_core::onboard`), and the registry
//! written back to XLSX with the codes filled in.

use std::path::Path;

use calamine::{Data, Reader as _};
use menqian_core::model::place::{wgs84_to_bd09, wgs84_to_gcj02};
use menqian_core::onboard::Datum;
use menqian_core::{GeoPoint, Shop, ShopTag};

/// The most a ledger may hold: rows, columns and characters in a cell, and
/// the file's size (a district of a few hundred thousand shops fits).
pub const MAX_ROWS: usize = 1_000_000;
pub const MAX_COLUMNS: usize = 200;
pub const MAX_CELL_CHARS: usize = 2_000;
pub const MAX_FILE_BYTES: u64 = 200 * 1024 * 1024;
/// The most a workbook's zip members may inflate to, by its directory.
pub const MAX_INFLATED_BYTES: u64 = 500 * 1024 * 1024;

/// A CSV's character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// A BOM says which; else UTF-8 if the bytes are valid UTF-8, else GB18030.
    #[default]
    Auto,
    Utf8,
    /// GBK, read as its superset GB18030.
    Gbk,
}

impl Charset {
    pub fn parse(s: &str) -> Option<Charset> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "auto" => Some(Charset::Auto),
            "utf8" => Some(Charset::Utf8),
            "gbk" | "gb18030" | "gb2312" => Some(Charset::Gbk),
            _ => None,
        }
    }
}

/// A ledger as read, and how.
#[derive(Debug)]
pub struct Table {
    pub rows: Vec<Vec<String>>,
    /// "XLSX, sheet 台账", "CSV, GB18030" …
    pub read_as: String,
}

/// Reads a ledger file by its extension (`.xlsx`, `.xlsm`, `.xls`, `.ods`,
/// `.csv`, `.txt`); `sheet` picks a workbook's sheet (default the first).
pub fn read_table(path: &Path, sheet: Option<&str>, charset: Charset) -> Result<Table, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "{}: {size} 字节，超过 {} MB 上限",
            path.display(),
            MAX_FILE_BYTES >> 20
        ));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => read_workbook(path, sheet),
        "csv" | "txt" => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            read_csv(&bytes, charset)
        }
        _ => Err(format!(
            "{}: 不认识的文件类型（可用 .xlsx、.xls、.csv）",
            path.display()
        )),
    }
}

/// A zipped workbook (XLSX, ODS) whose members would inflate beyond
/// [`MAX_INFLATED_BYTES`] is refused before any is inflated. (A member
/// inflating past its declared size fails its CRC check in the reader.)
fn check_inflated(path: &Path) -> Result<(), String> {
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(());
    };
    let Ok(mut zip) = zip::ZipArchive::new(file) else {
        return Ok(()); // not a zip: XLS, or calamine names the problem
    };
    let mut total = 0u64;
    for i in 0..zip.len() {
        let member = zip
            .by_index_raw(i)
            .map_err(|e| format!("{}: 文件已损坏（{e}）", path.display()))?;
        total = total.saturating_add(member.size());
        if total > MAX_INFLATED_BYTES {
            return Err(format!(
                "{}: 解压后超过 {} MB，不读",
                path.display(),
                MAX_INFLATED_BYTES >> 20
            ));
        }
    }
    Ok(())
}

fn read_workbook(path: &Path, sheet: Option<&str>) -> Result<Table, String> {
    check_inflated(path)?;
    let mut book = calamine::open_workbook_auto(path)
        .map_err(|e| format!("{}: 不是可读的表格文件（{e}）", path.display()))?;
    let names = book.sheet_names();
    let name = match sheet {
        Some(s) => names
            .iter()
            .find(|n| n.as_str() == s)
            .cloned()
            .ok_or_else(|| format!("没有名为“{s}”的工作表（有：{}）", names.join("、")))?,
        None => names
            .first()
            .cloned()
            .ok_or_else(|| "工作簿中没有工作表".to_string())?,
    };
    let range = book
        .worksheet_range(&name)
        .map_err(|e| format!("工作表“{name}”读不出（{e}）"))?;
    let (height, width) = range.get_size();
    bounds(height, width)?;
    // Rows are numbered from the sheet's first row, not the range's.
    let (top, left) = range
        .start()
        .map_or((0, 0), |(r, c)| (r as usize, c as usize));
    let mut rows = vec![Vec::new(); top];
    for r in range.rows() {
        let mut cells = vec![String::new(); left];
        for c in r {
            cells.push(cell_text(c)?);
        }
        rows.push(cells);
    }
    Ok(Table {
        rows,
        read_as: format!("工作表“{name}”"),
    })
}

fn bounds(rows: usize, columns: usize) -> Result<(), String> {
    if rows > MAX_ROWS {
        return Err(format!("{rows} 行，超过 {MAX_ROWS} 行上限"));
    }
    if columns > MAX_COLUMNS {
        return Err(format!("{columns} 列，超过 {MAX_COLUMNS} 列上限"));
    }
    Ok(())
}

fn bounded(s: String) -> Result<String, String> {
    if s.chars().count() > MAX_CELL_CHARS {
        return Err(format!("有单元格超过 {MAX_CELL_CHARS} 字"));
    }
    Ok(s)
}

/// A cell as text: whole numbers without a decimal point (a phone number
/// typed as a number), dates as YYYY-MM-DD.
fn cell_text(c: &Data) -> Result<String, String> {
    let s = match c {
        Data::Empty | Data::Error(_) => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => if *b { "是" } else { "否" }.to_string(),
        Data::DateTime(d) => d
            .as_datetime()
            .map(|t| t.date().to_string())
            .unwrap_or_default(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
    };
    bounded(s)
}

/// Reads CSV bytes: the character set by BOM, by UTF-8 validity or as told;
/// the delimiter (comma, tab or semicolon) from the first line.
pub fn read_csv(bytes: &[u8], charset: Charset) -> Result<Table, String> {
    let (text, how) = decode(bytes, charset)?;
    let first = text.lines().next().unwrap_or("");
    let delimiter = [b',', b'\t', b';']
        .into_iter()
        .max_by_key(|d| first.bytes().filter(|b| b == d).count())
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("第 {} 行读不出（{e}）", i + 1))?;
        bounds(i + 1, record.len())?;
        rows.push(
            record
                .iter()
                .map(|c| bounded(c.to_string()))
                .collect::<Result<_, _>>()?,
        );
    }
    Ok(Table {
        rows,
        read_as: format!("CSV，{how}"),
    })
}

fn decode(bytes: &[u8], charset: Charset) -> Result<(String, &'static str), String> {
    use encoding_rs::{GB18030, UTF_8, UTF_16BE, UTF_16LE};
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _, bad) = enc.decode(&bytes[bom..]);
        let name = if enc == UTF_8 {
            "UTF-8（带 BOM）"
        } else if enc == UTF_16LE || enc == UTF_16BE {
            "UTF-16"
        } else {
            "带 BOM"
        };
        if bad {
            return Err(format!("文件按 {name} 读有乱码"));
        }
        return Ok((text.into_owned(), name));
    }
    let utf8 = std::str::from_utf8(bytes).ok();
    match (charset, utf8) {
        (Charset::Utf8, Some(t)) | (Charset::Auto, Some(t)) => Ok((t.to_string(), "UTF-8")),
        (Charset::Utf8, None) => Err("文件不是 UTF-8（试试 --encoding gbk）".into()),
        (Charset::Gbk, _) | (Charset::Auto, None) => {
            let (text, bad) = GB18030.decode_without_bom_handling(bytes);
            if bad {
                return Err("文件既不是 UTF-8 也不是 GBK/GB18030".into());
            }
            Ok((text.into_owned(), "GBK/GB18030"))
        }
    }
}

/// The export's columns: the names the importer reads back.
pub const EXPORT_COLUMNS: [&str; 15] = [
    "门前三包编码",
    "单位名称",
    "地址",
    "负责人",
    "联系电话",
    "街道",
    "街巷",
    "小巷",
    "类别",
    "经度",
    "纬度",
    "是否签订责任书",
    "状态",
    "责任区",
    "二维码链接",
];

/// Writes the registry to an XLSX file the importer reads back unchanged:
/// codes filled in, the zone's centre in `datum`. Written with rows spilled
/// to a temporary file (constant memory).
pub fn export_xlsx(
    shops: &[Shop],
    datum: Datum,
    link_host: &str,
    path: &Path,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet_with_constant_memory()?;
    sheet.set_name("门前三包台账")?;
    for (c, h) in EXPORT_COLUMNS.iter().enumerate() {
        sheet.write_string(0, c as u16, *h)?;
    }
    for (i, s) in shops.iter().enumerate() {
        let row = (i + 1) as u32;
        let centre = s.zone.centroid();
        let p: GeoPoint = match datum {
            Datum::Wgs84 => centre,
            Datum::Gcj02 => wgs84_to_gcj02(centre),
            Datum::Bd09 => wgs84_to_bd09(centre),
        };
        let text = [
            s.code.clone(),
            s.name.clone(),
            s.address.clone(),
            s.contact.person.clone(),
            s.contact.phone.clone(),
            s.subdistrict.clone().unwrap_or_default(),
            s.street.clone(),
            s.lane.clone().unwrap_or_default(),
            s.category.label_zh().to_string(),
        ];
        for (c, v) in text.iter().enumerate() {
            sheet.write_string(row, c as u16, v)?;
        }
        sheet.write_number(row, 9, (p.lon * 1e7).round() / 1e7)?;
        sheet.write_number(row, 10, (p.lat * 1e7).round() / 1e7)?;
        let letter = s
            .letter
            .as_ref()
            .map_or("否".to_string(), |l| l.signed_on.to_string());
        sheet.write_string(row, 11, &letter)?;
        sheet.write_string(
            row,
            12,
            match s.status {
                menqian_core::ShopStatus::Active => "在营",
                menqian_core::ShopStatus::Closed => "已关闭",
            },
        )?;
        sheet.write_string(
            row,
            13,
            if s.tags.contains(&ShopTag::ZoneEstimated) {
                "估算，待核定"
            } else {
                "已核定"
            },
        )?;
        if let Ok(code) = menqian_core::ShopCode::parse(&s.code) {
            sheet.write_string(row, 14, code.link(link_host))?;
        }
    }
    book.save(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_workbook_claiming_to_inflate_too_far_is_refused_unread() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.xlsx");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("xl/worksheets/sheet1.xml", stored).unwrap();
        zip.write_all(b"<worksheet/>").unwrap();
        zip.finish().unwrap();
        // The central directory now says the member inflates to 4 GB.
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes
            .windows(4)
            .position(|w| w == [0x50, 0x4b, 0x01, 0x02])
            .unwrap();
        bytes[at + 24..at + 28].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = read_table(&path, None, Charset::Auto).unwrap_err();
        assert!(err.contains("解压后超过 500 MB"), "{err}");
    }

    #[test]
    fn csv_charsets_are_told_apart() {
        let text = "单位名称,地址\n富义小吃,富义街1号\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        assert_eq!(
            read_csv(&gbk, Charset::Auto).unwrap().read_as,
            "CSV，GBK/GB18030"
        );
        assert_eq!(
            read_csv(&gbk, Charset::Auto).unwrap().rows[1][0],
            "富义小吃"
        );
        assert!(read_csv(&gbk, Charset::Utf8).is_err());
        let tab = "单位名称\t地址\n富义小吃\t富义街1号\n";
        assert_eq!(
            read_csv(tab.as_bytes(), Charset::Auto).unwrap().rows[1][1],
            "富义街1号"
        );
    }
}
