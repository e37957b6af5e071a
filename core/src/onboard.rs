//! Onboarding a district from the ledger (台账) it already keeps: the rows of
//! a spreadsheet (the station reads XLSX, XLS and CSV into text cells),
//! matched to the registry's fields by the district's own column names, each
//! row repaired where that is safe, checked, and turned into a shop. Every
//! problem is found before anything is written and named by row and column in
//! Chinese; the import then writes all of it or nothing.
//!
//! What is repaired silently, warned about or refused is listed in the
//! README ("The district's ledger").

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::NaiveDate;

use crate::model::geo::{GeoPoint, Zone};
use crate::model::place::{LocalFrame, bd09_to_wgs84, distance_m, gcj02_to_wgs84};
use crate::model::shop::{Contact, Letter, Shop, ShopCategory, ShopPatch, ShopStatus, ShopTag};
use crate::qr::{QrError, ShopCode};

/// A registry field a ledger column can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Code,
    Name,
    Address,
    Person,
    Phone,
    Subdistrict,
    Community,
    Street,
    Lane,
    Category,
    Lon,
    Lat,
    /// One column with both, `116.35,39.87` (either order).
    Coords,
    CreditCode,
    Letter,
    /// 序号: ignored.
    Serial,
    /// A column the mapping file says to ignore.
    Ignore,
}

impl Field {
    pub const ALL: [Field; 17] = [
        Field::Code,
        Field::Name,
        Field::Address,
        Field::Person,
        Field::Phone,
        Field::Subdistrict,
        Field::Community,
        Field::Street,
        Field::Lane,
        Field::Category,
        Field::Lon,
        Field::Lat,
        Field::Coords,
        Field::CreditCode,
        Field::Letter,
        Field::Serial,
        Field::Ignore,
    ];

    /// The key a mapping file names the field by.
    pub fn key(self) -> &'static str {
        match self {
            Field::Code => "code",
            Field::Name => "name",
            Field::Address => "address",
            Field::Person => "person",
            Field::Phone => "phone",
            Field::Subdistrict => "subdistrict",
            Field::Community => "community",
            Field::Street => "street",
            Field::Lane => "lane",
            Field::Category => "category",
            Field::Lon => "lon",
            Field::Lat => "lat",
            Field::Coords => "coords",
            Field::CreditCode => "credit_code",
            Field::Letter => "letter",
            Field::Serial => "serial",
            Field::Ignore => "ignore",
        }
    }

    pub fn parse(key: &str) -> Option<Field> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }

    /// The name the district's spreadsheets most often give it.
    pub fn label_zh(self) -> &'static str {
        self.synonyms()[0]
    }

    /// Column names that mean this field, as districts write them.
    fn synonyms(self) -> &'static [&'static str] {
        match self {
            Field::Code => &["门前三包编码", "三包编码", "门前编码", "商户编码"],
            Field::Name => &[
                "单位名称",
                "商户名称",
                "店名",
                "名称",
                "门店名称",
                "店铺名称",
                "店招名称",
            ],
            Field::Address => &["地址", "经营地址", "门牌地址", "详细地址", "经营场所"],
            Field::Person => &["负责人", "联系人", "法人", "法定代表人", "责任人"],
            Field::Phone => &["联系电话", "电话", "手机", "手机号", "联系方式", "手机号码"],
            Field::Subdistrict => &["街道", "街乡", "所属街道", "街道乡镇", "所属街乡"],
            Field::Community => &["社区", "所属社区", "社区村"],
            Field::Street => &["街巷", "路段", "所在街巷", "道路", "所在道路", "所在路段"],
            Field::Lane => &["小巷", "胡同", "所在小巷", "所在胡同"],
            Field::Category => &["类别", "业态", "行业", "单位类别", "经营类别", "主体类型"],
            Field::Lon => &["经度"],
            Field::Lat => &["纬度"],
            Field::Coords => &["坐标", "经纬度", "经纬度坐标"],
            Field::CreditCode => &["统一社会信用代码", "信用代码", "社会信用代码"],
            Field::Letter => &["是否签订责任书", "责任书签订情况", "责任书", "签订责任书"],
            Field::Serial => &["序号", "编号"],
            Field::Ignore => &[],
        }
    }
}

/// The coordinate system the district's picker used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Datum {
    /// GPS.
    #[default]
    Wgs84,
    /// AMap, Tencent.
    Gcj02,
    /// Baidu.
    Bd09,
}

impl Datum {
    pub fn parse(s: &str) -> Option<Datum> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "wgs84" | "gps" => Some(Datum::Wgs84),
            "gcj02" | "amap" | "tencent" => Some(Datum::Gcj02),
            "bd09" | "baidu" => Some(Datum::Bd09),
            _ => None,
        }
    }

    fn to_wgs84(self, p: GeoPoint) -> GeoPoint {
        match self {
            Datum::Wgs84 => p,
            Datum::Gcj02 => gcj02_to_wgs84(p),
            Datum::Bd09 => bd09_to_wgs84(p),
        }
    }
}

/// How to read a ledger.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    pub datum: Datum,
    /// Column names beyond the common ones (a mapping file), by exact name.
    pub mapping: Vec<(String, Field)>,
    /// The estimated zone: depth from the shop front toward the street, and
    /// width along it (metres).
    pub zone_depth_m: f64,
    pub zone_width_m: f64,
    /// The district's administrative division code for new codes, when the
    /// registry holds none yet.
    pub district: Option<u32>,
    /// The day a letter marked signed without a date counts as signed.
    pub today: NaiveDate,
}

impl LedgerOptions {
    pub fn new(today: NaiveDate) -> Self {
        LedgerOptions {
            datum: Datum::Wgs84,
            mapping: Vec::new(),
            zone_depth_m: 5.0,
            zone_width_m: 8.0,
            district: None,
            today,
        }
    }
}

/// A mapping file: a JSON object from column name to field key, e.g.
/// `{"门店招牌": "name", "备注": "ignore"}`.
pub fn parse_mapping(text: &str) -> Result<Vec<(String, Field)>, String> {
    let map: BTreeMap<String, String> =
        serde_json::from_str(text).map_err(|e| format!("映射文件不是 JSON 对象：{e}"))?;
    map.into_iter()
        .map(|(column, key)| match Field::parse(&key) {
            Some(f) => Ok((column, f)),
            None => Err(format!(
                "映射文件：列“{column}”的字段“{key}”不存在（可用：{}）",
                Field::ALL.map(|f| f.key()).join(", ")
            )),
        })
        .collect()
}

/// One problem in a ledger: a row's field refused (nothing is imported) or
/// repaired with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The spreadsheet's row number (1 = the first row); 0 for the whole file.
    pub row: usize,
    /// The column as the sheet names it.
    pub column: String,
    pub message: String,
    pub refused: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.refused { "" } else { "（已处理）" };
        if self.row == 0 {
            write!(f, "{}{kind}", self.message)
        } else if self.column.is_empty() {
            write!(f, "第 {} 行：{}{kind}", self.row, self.message)
        } else {
            write!(
                f,
                "第 {} 行 {}：{}{kind}",
                self.row, self.column, self.message
            )
        }
    }
}

/// What a row comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAction {
    Create,
    Update,
    Unchanged,
    /// A repeat of an earlier row.
    Skipped,
    Refused,
}

impl RowAction {
    pub fn label_zh(self) -> &'static str {
        match self {
            RowAction::Create => "新建",
            RowAction::Update => "更新",
            RowAction::Unchanged => "无变化",
            RowAction::Skipped => "重复，跳过",
            RowAction::Refused => "有错误",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowPlan {
    pub row: usize,
    pub action: RowAction,
    pub code: String,
    pub name: String,
}

/// What importing a ledger would do; nothing is written until
/// [`crate::Store::import_ledger`].
#[derive(Debug, Clone, Default)]
pub struct LedgerPlan {
    /// The header row, and each column's field (None: not used).
    pub header_row: usize,
    pub columns: Vec<(String, Option<Field>)>,
    pub rows: Vec<RowPlan>,
    pub problems: Vec<Problem>,
    /// The shops to write (created and updated), in row order.
    pub shops: Vec<Shop>,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped: usize,
}

impl LedgerPlan {
    /// Whether a problem stops the import.
    pub fn refused(&self) -> bool {
        self.problems.iter().any(|p| p.refused)
    }

    pub fn refusals(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.refused)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.refused)
    }
}

/// Full-width digits and Latin letters to half-width (Chinese punctuation
/// such as （） stays), the ideographic space to a space, runs of whitespace
/// to one space, trimmed.
pub fn normalize_text(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '０'..='９' | 'Ａ'..='Ｚ' | 'ａ'..='ｚ' | '．' | '－' | '＋' => {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
            c if c.is_whitespace() => ' ',
            c => c,
        })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A shop's identity in a ledger without codes: name and address without
/// any whitespace.
fn identity(name: &str, address: &str) -> String {
    let squeeze = |s: &str| -> String {
        normalize_text(s)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    };
    format!("{}\u{1F}{}", squeeze(name), squeeze(address))
}

fn header_key(s: &str) -> String {
    let t = normalize_text(s);
    // "联系电话（必填）", "*名称": the name without marks and notes.
    let t = match t.find(['(', '（']) {
        Some(i) if i > 0 => t[..i].to_string(),
        _ => t,
    };
    t.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '*' | ':' | '：'))
        .collect()
}

/// The columns of a header row: each one's field, by the mapping first.
fn match_columns(cells: &[String], mapping: &[(String, Field)]) -> Vec<Option<Field>> {
    cells
        .iter()
        .map(|cell| {
            let key = header_key(cell);
            if key.is_empty() {
                return None;
            }
            mapping
                .iter()
                .find(|(name, _)| header_key(name) == key)
                .map(|(_, f)| *f)
                .or_else(|| {
                    Field::ALL
                        .into_iter()
                        .find(|f| f.synonyms().iter().any(|s| *s == key))
                })
        })
        .collect()
}

/// One row, read.
#[derive(Default)]
struct Row {
    line: usize,
    code: Option<ShopCode>,
    name: String,
    address: String,
    person: Option<String>,
    phone: Option<String>,
    subdistrict: Option<String>,
    street: Option<String>,
    lane: Option<String>,
    category: Option<ShopCategory>,
    point: Option<GeoPoint>,
    letter: Option<LetterCell>,
    refused: bool,
}

enum LetterCell {
    Signed(Option<NaiveDate>),
    NotSigned,
}

/// Reads a ledger against the shops the registry holds.
pub(crate) fn plan(table: &[Vec<String>], existing: Vec<Shop>, opts: &LedgerOptions) -> LedgerPlan {
    let mut plan = LedgerPlan::default();
    // The header: the first of the top rows naming a shop's name and at
    // least two other known fields; rows above it are titles.
    let found = table.iter().take(30).enumerate().find_map(|(i, cells)| {
        let fields = match_columns(cells, &opts.mapping);
        let known = fields
            .iter()
            .flatten()
            .filter(|f| **f != Field::Ignore)
            .count();
        (fields.contains(&Some(Field::Name)) && known >= 3).then_some((i, fields))
    });
    let Some((header, fields)) = found else {
        plan.problems.push(Problem {
            row: 0,
            column: String::new(),
            message: "找不到表头：前 30 行中没有一行含“单位名称”“地址”“联系电话”等列（可用 --mapping 指定列名）"
                .into(),
            refused: true,
        });
        return plan;
    };
    plan.header_row = header + 1;
    plan.columns = table[header]
        .iter()
        .zip(&fields)
        .map(|(c, f)| (normalize_text(c), *f))
        .collect();
    for need in [Field::Name, Field::Address] {
        if !fields.contains(&Some(need)) {
            plan.problems.push(Problem {
                row: header + 1,
                column: need.label_zh().into(),
                message: format!("缺少“{}”列", need.label_zh()),
                refused: true,
            });
        }
    }
    let mut seen: HashMap<Field, usize> = HashMap::new();
    for (k, f) in fields.iter().enumerate() {
        if let Some(f) = f.filter(|f| !matches!(f, Field::Ignore | Field::Serial))
            && let Some(first) = seen.insert(f, k)
        {
            plan.problems.push(Problem {
                row: header + 1,
                column: plan.columns[k].0.clone(),
                message: format!(
                    "与“{}”列同为{}，只读第一列",
                    plan.columns[first].0,
                    f.label_zh()
                ),
                refused: false,
            });
            seen.insert(f, first);
        }
    }
    let column_of = |f: Field| seen.get(&f).copied();
    let label = |f: Field| {
        column_of(f)
            .map(|k| plan.columns[k].0.clone())
            .unwrap_or_else(|| f.label_zh().to_string())
    };

    let by_code: HashMap<String, usize> = existing
        .iter()
        .enumerate()
        .map(|(i, s)| (s.code.clone(), i))
        .collect();
    let by_identity: HashMap<String, usize> = existing
        .iter()
        .enumerate()
        .map(|(i, s)| (identity(&s.name, &s.address), i))
        .collect();
    // The district: the one of the registry's codes, else the option.
    let district = existing
        .first()
        .and_then(|s| s.code.get(..6))
        .and_then(|d| d.parse::<u32>().ok())
        .or(opts.district);

    let mut problems = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    for (i, cells) in table.iter().enumerate().skip(header + 1) {
        let line = i + 1;
        let cell = |f: Field| -> String {
            column_of(f)
                .and_then(|k| cells.get(k))
                .map(|c| normalize_text(c))
                .unwrap_or_default()
        };
        // Blank rows, and rows with nothing but a 序号.
        let filled = cells.iter().enumerate().any(|(k, c)| {
            !c.trim().is_empty()
                && !matches!(fields.get(k), Some(Some(Field::Serial | Field::Ignore)))
        });
        if !filled {
            continue;
        }
        let mut row = Row {
            line,
            ..Row::default()
        };
        let mut refuse = |column: String, message: String| {
            problems.push(Problem {
                row: line,
                column,
                message,
                refused: true,
            });
        };
        let mut warnings: Vec<Problem> = Vec::new();
        let mut warn = |column: String, message: String| {
            warnings.push(Problem {
                row: line,
                column,
                message,
                refused: false,
            });
        };
        let code = cell(Field::Code);
        if !code.is_empty() {
            match ShopCode::parse(&code) {
                Ok(c) if district.is_some_and(|d| c.district() != format!("{d:06}")) => refuse(
                    label(Field::Code),
                    format!(
                        "{code} 不是本区的编码（本区区划代码 {:06}）",
                        district.unwrap_or(0)
                    ),
                ),
                Ok(c) => row.code = Some(c),
                Err(QrError::CheckFailed) => {
                    refuse(label(Field::Code), format!("{code} 校验位不符（可能抄错）"))
                }
                Err(e) => refuse(
                    label(Field::Code),
                    format!("{code} 不是门前三包编码（{e}）"),
                ),
            }
        }
        row.name = cell(Field::Name);
        row.address = cell(Field::Address);
        if row.name.is_empty() {
            refuse(label(Field::Name), "为空".into());
        } else if row.name.chars().count() > 100 {
            refuse(label(Field::Name), "超过 100 字".into());
        }
        if row.address.is_empty() {
            refuse(label(Field::Address), "为空".into());
        } else if row.address.chars().count() > 200 {
            refuse(label(Field::Address), "超过 200 字".into());
        }
        let person = cell(Field::Person);
        if !person.is_empty() {
            if person.chars().count() > 50 {
                refuse(label(Field::Person), "超过 50 字".into());
            }
            row.person = Some(person);
        }
        let phone = cell(Field::Phone);
        if !phone.is_empty() {
            match clean_phone(&phone) {
                Ok((p, more)) => {
                    if more {
                        warn(label(Field::Phone), format!("有多个号码，取第一个 {p}"));
                    }
                    row.phone = Some(p);
                }
                Err(()) => refuse(label(Field::Phone), format!("“{phone}”不是有效的电话号码")),
            }
        }
        for (f, slot) in [
            (Field::Subdistrict, &mut row.subdistrict),
            (Field::Street, &mut row.street),
            (Field::Lane, &mut row.lane),
        ] {
            let v = cell(f);
            if v.chars().count() > 50 {
                refuse(label(f), "超过 50 字".into());
            } else if !v.is_empty() {
                *slot = Some(v);
            }
        }
        // Without a street, one from the address; failing that, a known
        // shop keeps its street and a new one is refused below.
        if row.street.is_none()
            && let Some(s) = street_of(&row.address)
        {
            warn(label(Field::Street), format!("为空，由地址推断为“{s}”"));
            row.street = Some(s);
        }
        let category = cell(Field::Category);
        if !category.is_empty() {
            row.category = Some(category_of(&category));
        }
        let credit = cell(Field::CreditCode);
        if !credit.is_empty() && !credit_code_valid(&credit) {
            warn(
                label(Field::CreditCode),
                format!("“{credit}”校验不符（统一社会信用代码不保存，仅核对）"),
            );
        }
        let letter = cell(Field::Letter);
        if !letter.is_empty() {
            match letter_of(&letter) {
                Some(l) => row.letter = Some(l),
                None => warn(
                    label(Field::Letter),
                    format!("“{letter}”看不出是否签订，按未签订"),
                ),
            }
        }
        match read_point(&cell(Field::Lon), &cell(Field::Lat), &cell(Field::Coords)) {
            Ok(None) => {}
            Ok(Some((p, swapped))) => {
                let column = if column_of(Field::Coords).is_some() {
                    label(Field::Coords)
                } else {
                    format!("{}/{}", label(Field::Lon), label(Field::Lat))
                };
                if swapped {
                    warn(column, "经纬度填反，已交换".into());
                }
                row.point = Some(opts.datum.to_wgs84(p));
            }
            Err(why) => {
                let column = if column_of(Field::Coords).is_some() {
                    label(Field::Coords)
                } else {
                    format!("{}/{}", label(Field::Lon), label(Field::Lat))
                };
                refuse(column, why);
            }
        }
        row.refused = problems.iter().any(|p| p.row == line && p.refused);
        problems.extend(warnings);
        rows.push(row);
    }

    // Repeats: the same code twice is refused; the same name and address
    // twice without codes is one shop.
    let mut first_code: HashMap<String, usize> = HashMap::new();
    let mut first_identity: HashMap<String, usize> = HashMap::new();
    let mut skip = vec![false; rows.len()];
    for (k, row) in rows.iter_mut().enumerate() {
        if let Some(c) = &row.code {
            if let Some(&first) = first_code.get(c.as_str()) {
                problems.push(Problem {
                    row: row.line,
                    column: label(Field::Code),
                    message: format!("{c} 与第 {first} 行重复"),
                    refused: true,
                });
                row.refused = true;
            } else {
                first_code.insert(c.as_str().to_string(), row.line);
            }
        } else if !row.name.is_empty() {
            let id = identity(&row.name, &row.address);
            if let Some(&first) = first_identity.get(&id) {
                problems.push(Problem {
                    row: row.line,
                    column: String::new(),
                    message: format!("与第 {first} 行名称、地址相同，视为重复，跳过"),
                    refused: false,
                });
                skip[k] = true;
            } else {
                first_identity.insert(id, row.line);
            }
        }
    }

    // New codes: after the highest serial the district has issued or the
    // ledger names.
    let prefix = district.map(|d| format!("{d:06}"));
    let mut next_serial = existing
        .iter()
        .map(|s| s.code.as_str())
        .chain(first_code.keys().map(String::as_str))
        .filter(|c| prefix.as_deref().is_some_and(|p| c.starts_with(p)))
        .filter_map(|c| c.get(6..12)?.parse::<u32>().ok())
        .max()
        .unwrap_or(0)
        + 1;

    let axes = street_axes(&rows);
    let mut matched: HashMap<usize, usize> = HashMap::new();
    for (k, row) in rows.iter().enumerate() {
        let line = row.line;
        if skip[k] {
            plan.skipped += 1;
            plan.rows.push(RowPlan {
                row: line,
                action: RowAction::Skipped,
                code: String::new(),
                name: row.name.clone(),
            });
            continue;
        }
        if row.refused {
            plan.rows.push(RowPlan {
                row: line,
                action: RowAction::Refused,
                code: row.code.as_ref().map(|c| c.to_string()).unwrap_or_default(),
                name: row.name.clone(),
            });
            continue;
        }
        let old = match &row.code {
            Some(c) => by_code.get(c.as_str()).copied(),
            None => by_identity.get(&identity(&row.name, &row.address)).copied(),
        };
        if let Some(o) = old
            && let Some(earlier) = matched.insert(o, line)
        {
            problems.push(Problem {
                row: line,
                column: String::new(),
                message: format!("与第 {earlier} 行是同一商户（{}）", existing[o].code),
                refused: true,
            });
            plan.rows.push(RowPlan {
                row: line,
                action: RowAction::Refused,
                code: existing[o].code.clone(),
                name: row.name.clone(),
            });
            continue;
        }
        let zone = |p: GeoPoint| estimated_zone(p, row.street.as_deref(), &axes, opts);
        let result = match old {
            Some(o) => {
                let before = &existing[o];
                let mut s = (*before).clone();
                // What differs only as the ledger is cleaned (spaces,
                // full-width digits, a dash in a phone number) stays as it is.
                if normalize_text(&s.name) != row.name {
                    s.name = row.name.clone();
                }
                if normalize_text(&s.address) != row.address {
                    s.address = row.address.clone();
                }
                if let Some(v) = &row.person
                    && normalize_text(&s.contact.person) != *v
                {
                    s.contact.person = v.clone();
                }
                if let Some(v) = &row.phone
                    && clean_phone(&s.contact.phone).map(|p| p.0).as_ref() != Ok(v)
                {
                    s.contact.phone = v.clone();
                }
                if row.subdistrict.is_some() {
                    s.subdistrict = row.subdistrict.clone();
                }
                if let Some(v) = &row.street {
                    s.street = v.clone();
                }
                if row.lane.is_some() {
                    s.lane = row.lane.clone();
                }
                if let Some(c) = row.category {
                    s.category = c;
                }
                match &row.letter {
                    Some(LetterCell::Signed(Some(d)))
                        if s.letter.as_ref().map(|l| l.signed_on) != Some(*d) =>
                    {
                        s.letter = Some(ledger_letter(*d));
                    }
                    Some(LetterCell::Signed(None)) if s.letter.is_none() => {
                        s.letter = Some(ledger_letter(opts.today));
                    }
                    _ => {}
                }
                // A point the ledger moved by more than a shop front: a new
                // estimate. Otherwise the zone stays (an officer may have
                // drawn it).
                if let Some(p) = row.point
                    && distance_m(p, before.zone.centroid()) > MOVED_M
                {
                    match zone(p) {
                        Ok(z) => {
                            s.zone = z;
                            s.tags.insert(ShopTag::ZoneEstimated);
                        }
                        Err(e) => problems.push(Problem {
                            row: line,
                            column: label(Field::Lon),
                            message: e,
                            refused: true,
                        }),
                    }
                }
                let action = if ShopPatch::between(before, &s).is_empty() {
                    RowAction::Unchanged
                } else {
                    RowAction::Update
                };
                Some((s, action))
            }
            None => {
                let mut missing = Vec::new();
                if row.person.is_none() {
                    missing.push(Field::Person);
                }
                if row.phone.is_none() {
                    missing.push(Field::Phone);
                }
                if row.street.is_none() {
                    missing.push(Field::Street);
                }
                if row.point.is_none() {
                    missing.push(Field::Lon);
                }
                for f in &missing {
                    let (column, message) = match f {
                        Field::Lon => (
                            if column_of(Field::Coords).is_some() {
                                label(Field::Coords)
                            } else {
                                format!("{}/{}", label(Field::Lon), label(Field::Lat))
                            },
                            "新商户缺少坐标，无法估算责任区".to_string(),
                        ),
                        Field::Street => {
                            (label(Field::Street), "为空，且无法从地址推断".to_string())
                        }
                        f => (label(*f), "新商户必填，为空".to_string()),
                    };
                    problems.push(Problem {
                        row: line,
                        column,
                        message,
                        refused: true,
                    });
                }
                let code = match (&row.code, district) {
                    (Some(c), _) => Some(c.clone()),
                    (None, Some(d)) => {
                        let c = ShopCode::new(d, next_serial).ok();
                        next_serial += 1;
                        c
                    }
                    (None, None) => {
                        problems.push(Problem {
                            row: line,
                            column: label(Field::Code),
                            message:
                                "无编码，且登记册为空，不知本区区划代码（用 --district-code 指定）"
                                    .into(),
                            refused: true,
                        });
                        None
                    }
                };
                match (code, row.point, missing.is_empty()) {
                    (Some(code), Some(p), true) => match zone(p) {
                        Ok(z) => {
                            let mut tags = std::collections::BTreeSet::new();
                            tags.insert(ShopTag::ZoneEstimated);
                            Some((
                                Shop {
                                    code: code.to_string(),
                                    name: row.name.clone(),
                                    address: row.address.clone(),
                                    category: row.category.unwrap_or(ShopCategory::Shop),
                                    contact: Contact {
                                        person: row.person.clone().unwrap_or_default(),
                                        phone: row.phone.clone().unwrap_or_default(),
                                    },
                                    zone: z,
                                    letter: match &row.letter {
                                        Some(LetterCell::Signed(d)) => {
                                            Some(ledger_letter(d.unwrap_or(opts.today)))
                                        }
                                        _ => None,
                                    },
                                    subdistrict: row.subdistrict.clone(),
                                    street: row.street.clone().unwrap_or_default(),
                                    lane: row.lane.clone(),
                                    tags,
                                    status: ShopStatus::Active,
                                },
                                RowAction::Create,
                            ))
                        }
                        Err(e) => {
                            problems.push(Problem {
                                row: line,
                                column: label(Field::Lon),
                                message: e,
                                refused: true,
                            });
                            None
                        }
                    },
                    _ => None,
                }
            }
        };
        // The core's own checks, named in the ledger's terms.
        let result = result.and_then(|(s, action)| match s.clone().validated() {
            Ok(clean) => Some((clean, action)),
            Err(e) => {
                problems.push(Problem {
                    row: line,
                    column: String::new(),
                    message: format!("未通过登记册校验：{e}"),
                    refused: true,
                });
                None
            }
        });
        match result {
            Some((s, action)) => {
                match action {
                    RowAction::Create => plan.created += 1,
                    RowAction::Update => plan.updated += 1,
                    _ => plan.unchanged += 1,
                }
                plan.rows.push(RowPlan {
                    row: line,
                    action,
                    code: s.code.clone(),
                    name: s.name.clone(),
                });
                if action != RowAction::Unchanged {
                    plan.shops.push(s);
                }
            }
            None => plan.rows.push(RowPlan {
                row: line,
                action: RowAction::Refused,
                code: row.code.as_ref().map(|c| c.to_string()).unwrap_or_default(),
                name: row.name.clone(),
            }),
        }
    }
    problems.sort_by_key(|p| (p.row, !p.refused));
    plan.problems.extend(problems);
    if rows.is_empty() && !plan.refused() {
        plan.problems.push(Problem {
            row: 0,
            column: String::new(),
            message: "表头之下没有数据行".into(),
            refused: true,
        });
    }
    plan
}

/// A point this far (m) from a shop's zone is a move, not the same front.
const MOVED_M: f64 = 15.0;

fn ledger_letter(signed_on: NaiveDate) -> Letter {
    Letter {
        version: "台账".into(),
        signed_on,
    }
}

/// A phone number with spaces, dashes and brackets removed; the first of
/// several; whether there were several.
fn clean_phone(s: &str) -> Result<(String, bool), ()> {
    let parts: Vec<&str> = s
        .split(['/', '、', ',', ';', '，', '；', '|'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let first = parts.first().ok_or(())?;
    // Two numbers separated by a space: "138 0000 0000" is one, "63251234
    // 13800000000" two.
    let words: Vec<&str> = first.split_whitespace().collect();
    let (first, more_in_words) = if words.len() > 1 && words.iter().all(|w| w.len() >= 7) {
        (words[0].to_string(), true)
    } else {
        (first.to_string(), false)
    };
    let plus = first.starts_with('+');
    let digits: String = first
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '—' | '(' | ')' | '（' | '）' | '+' | '.'))
        .collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || !(7..=15).contains(&digits.len()) {
        return Err(());
    }
    let out = if plus { format!("+{digits}") } else { digits };
    Ok((out, parts.len() > 1 || more_in_words))
}

/// The street in an address: what comes before the house number, less the
/// city, district and subdistrict in front.
fn street_of(address: &str) -> Option<String> {
    let end = address
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit())
        .map(|(i, _)| i)?;
    let mut head = &address[..end];
    for mark in ["省", "市", "区", "县", "街道", "乡", "镇"] {
        if let Some(i) = head.rfind(mark) {
            let rest = &head[i + mark.len()..];
            if !rest.is_empty() {
                head = rest;
            }
        }
    }
    let head = head.trim();
    let ends = ["路", "街", "巷", "道", "胡同", "里", "条", "大街"];
    (ends.iter().any(|e| head.ends_with(e)) && head.chars().count() >= 2).then(|| head.to_string())
}

fn category_of(s: &str) -> ShopCategory {
    if s.contains("单车") {
        ShopCategory::SharedBikeOperator
    } else if s.contains("外卖") || s.contains("配送") {
        ShopCategory::DeliveryPlatform
    } else if ["机关", "单位", "学校", "医院", "事业", "政府", "银行"]
        .iter()
        .any(|w| s.contains(w))
    {
        ShopCategory::Institution
    } else {
        ShopCategory::Shop
    }
}

fn letter_of(s: &str) -> Option<LetterCell> {
    let t = s.trim();
    if let Some(d) = date_of(t) {
        return Some(LetterCell::Signed(Some(d)));
    }
    let yes = [
        "是",
        "已签",
        "已签订",
        "签订",
        "已签署",
        "有",
        "√",
        "✓",
        "Y",
        "y",
        "YES",
        "yes",
        "1",
    ];
    let no = [
        "否",
        "未签",
        "未签订",
        "无",
        "没有",
        "×",
        "N",
        "n",
        "NO",
        "no",
        "0",
    ];
    if yes.contains(&t) {
        Some(LetterCell::Signed(None))
    } else if no.contains(&t) {
        Some(LetterCell::NotSigned)
    } else {
        None
    }
}

fn date_of(s: &str) -> Option<NaiveDate> {
    let t = s.replace(['年', '月', '/', '.'], "-").replace('日', "");
    let t = t.split_whitespace().next().unwrap_or("");
    NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()
}

/// GB 32100-2015: 18 characters, the last a check over the first 17.
fn credit_code_valid(s: &str) -> bool {
    const CHARS: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [u32; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let s = s.to_ascii_uppercase();
    if s.chars().count() != 18 {
        return false;
    }
    let values: Option<Vec<u32>> = s.chars().map(|c| CHARS.find(c).map(|i| i as u32)).collect();
    let Some(v) = values else {
        return false;
    };
    let sum: u32 = v[..17].iter().zip(WEIGHTS).map(|(a, w)| a * w).sum();
    (31 - sum % 31) % 31 == v[17]
}

/// (point, swapped) from 经度/纬度 cells or one 坐标 cell.
fn read_point(lon: &str, lat: &str, both: &str) -> Result<Option<(GeoPoint, bool)>, String> {
    let num = |s: &str| -> Result<f64, String> {
        s.trim()
            .trim_end_matches('°')
            .parse::<f64>()
            .map_err(|_| format!("“{s}”不是数字"))
    };
    let (a, b) = if !lon.is_empty() || !lat.is_empty() {
        if lon.is_empty() || lat.is_empty() {
            return Err("经度、纬度只填了一个".into());
        }
        (num(lon)?, num(lat)?)
    } else if !both.is_empty() {
        let parts: Vec<&str> = both
            .split([',', ' ', ';', '，', '；'])
            .filter(|p| !p.is_empty())
            .collect();
        let [x, y] = parts.as_slice() else {
            return Err(format!("“{both}”不是“经度,纬度”"));
        };
        (num(x)?, num(y)?)
    } else {
        return Ok(None);
    };
    let china_lon = |v: f64| (73.0..=136.0).contains(&v);
    let china_lat = |v: f64| (3.0..=54.0).contains(&v);
    if china_lon(a) && china_lat(b) {
        Ok(Some((GeoPoint::new(b, a), false)))
    } else if china_lon(b) && china_lat(a) {
        Ok(Some((GeoPoint::new(a, b), true)))
    } else {
        Err(format!("({a}, {b}) 不在中国境内"))
    }
}

/// Each street's direction from its shops' points: (centre, unit vector
/// along the street, in the centre's local frame).
type Axis = (GeoPoint, (f64, f64));

fn street_axes(rows: &[Row]) -> HashMap<String, Axis> {
    let mut points: HashMap<&str, Vec<GeoPoint>> = HashMap::new();
    for r in rows {
        if let (Some(s), Some(p)) = (&r.street, r.point) {
            points.entry(s.as_str()).or_default().push(p);
        }
    }
    let mut out = HashMap::new();
    for (street, ps) in points {
        let n = ps.len() as f64;
        let centre = GeoPoint::new(
            ps.iter().map(|p| p.lat).sum::<f64>() / n,
            ps.iter().map(|p| p.lon).sum::<f64>() / n,
        );
        let frame = LocalFrame::new(centre);
        let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
        for p in &ps {
            let c = frame.project(*p);
            sxx += c.x * c.x;
            syy += c.y * c.y;
            sxy += c.x * c.y;
        }
        // The principal axis of the points; east-west when they give none.
        let direction = if sxx + syy < 100.0 {
            (1.0, 0.0)
        } else {
            let angle = 0.5 * (2.0 * sxy).atan2(sxx - syy);
            (angle.cos(), angle.sin())
        };
        out.insert(street.to_string(), (centre, direction));
    }
    out
}

/// A frontage strip: `zone_width_m` along the street centred on the point,
/// `zone_depth_m` deep toward the street's centre line (the side facing the
/// other shops of the street; for a street with one row of shops, a guess
/// the officer confirms).
fn estimated_zone(
    p: GeoPoint,
    street: Option<&str>,
    axes: &HashMap<String, Axis>,
    opts: &LedgerOptions,
) -> Result<Zone, String> {
    let (centre, (ux, uy)) = street
        .and_then(|s| axes.get(s))
        .copied()
        .unwrap_or((p, (1.0, 0.0)));
    let frame = LocalFrame::new(centre);
    let at = frame.project(p);
    // The normal, pointed from the shop toward the centre line.
    let (mut nx, mut ny) = (-uy, ux);
    let offset = at.x * nx + at.y * ny;
    if offset > 0.0 {
        nx = -nx;
        ny = -ny;
    }
    let (w, d) = (opts.zone_width_m / 2.0, opts.zone_depth_m);
    let corner = |along: f64, deep: f64| {
        frame.unproject(geo::Coord {
            x: at.x + along * ux + deep * nx,
            y: at.y + along * uy + deep * ny,
        })
    };
    let ring = vec![
        corner(-w, 0.0),
        corner(w, 0.0),
        corner(w, d),
        corner(-w, d),
        corner(-w, 0.0),
    ];
    Zone::new(ring).map_err(|e| format!("无法估算责任区：{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_cleaned_or_refused() {
        assert_eq!(
            clean_phone("138 0013 8000"),
            Ok(("13800138000".into(), false))
        );
        assert_eq!(
            clean_phone("010-6325 1234"),
            Ok(("01063251234".into(), false))
        );
        assert_eq!(
            clean_phone("13800138000/63251234"),
            Ok(("13800138000".into(), true))
        );
        assert_eq!(
            clean_phone("63251234 13800138000"),
            Ok(("63251234".into(), true))
        );
        assert_eq!(clean_phone("无"), Err(()));
        assert_eq!(clean_phone("12345"), Err(()));
    }

    #[test]
    fn streets_come_from_addresses() {
        assert_eq!(
            street_of("北京市丰台区右安门街道富义街12号").as_deref(),
            Some("富义街")
        );
        assert_eq!(
            street_of("右安门内大街 8 号").as_deref(),
            Some("右安门内大街")
        );
        assert_eq!(street_of("某某大厦一层"), None);
    }

    #[test]
    fn credit_codes_are_checked() {
        // A published example code (GB 32100-2015's check scheme).
        assert!(credit_code_valid("91350100M000100Y43"));
        assert!(!credit_code_valid("91350100M000100Y44"));
        assert!(!credit_code_valid("123"));
    }

    #[test]
    fn headers_match_their_synonyms_and_notes() {
        let cells: Vec<String> = ["序号", "* 商户名称", "经营地址", "联系电话（必填）", "备注"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            match_columns(&cells, &[]),
            vec![
                Some(Field::Serial),
                Some(Field::Name),
                Some(Field::Address),
                Some(Field::Phone),
                None
            ]
        );
        assert_eq!(
            match_columns(&cells, &[("备注".into(), Field::Ignore)])[4],
            Some(Field::Ignore)
        );
    }

    #[test]
    fn full_width_text_is_made_half_width() {
        assert_eq!(
            normalize_text("　１３８ ００１３\t８０００ "),
            "138 0013 8000"
        );
        assert_eq!(
            normalize_text("服务站（富义街站）１号"),
            "服务站（富义街站）1号"
        );
        assert_eq!(
            identity("张记 小吃", "富义街 1号"),
            identity("张记小吃", "富义街1号")
        );
    }
}
