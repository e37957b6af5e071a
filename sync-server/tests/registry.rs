//! The district's ledger through the station's CLI, on real files made here:
//! an XLSX with a title row and merged cells, a GBK CSV and a UTF-8 CSV with
//! a BOM, points in GCJ-02 and BD-09, bad rows, re-imports, the export.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::path::Path;

use calamine::{Data, Reader as _};
use menqian_core::model::place::{distance_m, wgs84_to_bd09, wgs84_to_gcj02};
use menqian_core::{GeoPoint, Shop, ShopTag};
use menqian_sync_server::{SqliteSyncStore, SyncStore as _};

/// Runs the station's CLI on `dir`: (succeeded, standard output).
fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args(["--data", dir.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap();
    (out.status.success(), text)
}

fn shops_in(dir: &Path) -> Vec<Shop> {
    SqliteSyncStore::open(dir, vec![common::HOST.into()])
        .unwrap()
        .documents()
        .all_shops()
        .unwrap()
}

/// Shops to write ledgers of: the generated district's first `n`.
fn district(n: usize) -> Vec<Shop> {
    menqian_fixtures::registry(n).unwrap()
}

/// Where the ledger's point lies on an imported shop: the middle of the
/// estimated zone's front edge.
fn front_of(s: &Shop) -> GeoPoint {
    let p = s.zone.points();
    GeoPoint::new((p[0].lat + p[1].lat) / 2.0, (p[0].lon + p[1].lon) / 2.0)
}

fn by_name<'a>(shops: &'a [Shop], name: &str) -> &'a Shop {
    shops
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no shop named {name}"))
}

#[test]
fn an_xlsx_ledger_imports_repairs_what_is_safe_and_reimports_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("station");
    let shops = district(40);
    let file = dir.path().join("台账.xlsx");
    {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        let title = rust_xlsxwriter::Format::new().set_bold();
        sheet
            .merge_range(0, 0, 0, 11, "丰台区门前三包责任单位台账（2026 年）", &title)
            .unwrap();
        let header = [
            "序号",
            "商户名称",
            "经营地址",
            "联系人",
            "手机",
            "所属街道",
            "路段",
            "业态",
            "经度",
            "纬度",
            "统一社会信用代码",
            "责任书签订情况",
        ];
        for (c, h) in header.iter().enumerate() {
            sheet.write_string(2, c as u16, *h).unwrap();
        }
        let mut row = 3u32;
        for (i, s) in shops.iter().enumerate() {
            if i == 20 {
                row += 1; // a blank row in the middle
            }
            let p = s.zone.centroid();
            let phone = match i {
                1 => "138 0013 8001".to_string(),
                2 => "１３８００１３８００２".to_string(),
                4 => "010-6325-1234 / 13800138004".to_string(),
                _ => format!("1380013{:04}", 8000 + i),
            };
            sheet.write_number(row, 0, (i + 1) as f64).unwrap();
            let name = if i == 6 {
                format!("  {}  ", s.name)
            } else {
                s.name.clone()
            };
            sheet.write_string(row, 1, &name).unwrap();
            sheet.write_string(row, 2, &s.address).unwrap();
            sheet.write_string(row, 3, &s.contact.person).unwrap();
            if i == 0 {
                // A phone typed as a number.
                sheet.write_number(row, 4, 13_800_138_000.0).unwrap();
            } else {
                sheet.write_string(row, 4, &phone).unwrap();
            }
            sheet
                .write_string(row, 5, s.subdistrict.as_deref().unwrap_or(""))
                .unwrap();
            sheet.write_string(row, 6, &s.street).unwrap();
            sheet.write_string(row, 7, "餐饮").unwrap();
            let (x, y) = if i == 3 {
                (p.lat, p.lon)
            } else {
                (p.lon, p.lat)
            };
            sheet.write_number(row, 8, x).unwrap();
            sheet.write_number(row, 9, y).unwrap();
            if i == 7 {
                sheet.write_string(row, 10, "91350100M000100Y44").unwrap();
            }
            let letter = match i % 3 {
                0 => "是",
                1 => "2025-03-01",
                _ => "否",
            };
            sheet.write_string(row, 11, letter).unwrap();
            row += 1;
        }
        // The same shop again, differing only in spaces.
        let s = &shops[5];
        sheet.write_number(row, 0, 41.0).unwrap();
        sheet
            .write_string(row, 1, format!("{} ", s.name.replace("", " ").trim()))
            .unwrap();
        sheet.write_string(row, 2, &s.address).unwrap();
        book.save(&file).unwrap();
    }
    let file_arg = file.to_str().unwrap();

    let (ok, out) = cli(
        &data,
        &[
            "registry",
            "import",
            file_arg,
            "--dry-run",
            "--district-code",
            "110106",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("表头在第 3 行"), "{out}");
    assert!(
        out.contains("将新建 40 家，更新 0 家，无变化 0 家，跳过重复 1 行；错误 0 处"),
        "{out}"
    );
    assert!(
        out.contains("第 7 行 经度/纬度：经纬度填反，已交换（已处理）"),
        "{out}"
    );
    assert!(
        out.contains("第 8 行 手机：有多个号码，取第一个 01063251234"),
        "{out}"
    );
    assert!(out.contains("第 11 行 统一社会信用代码："), "{out}");
    assert!(out.contains("第 45 行：与第 9 行名称、地址相同"), "{out}");
    assert!(out.contains("试运行：未写入"), "{out}");
    assert!(shops_in(&data).is_empty(), "a dry run writes nothing");

    let (ok, out) = cli(
        &data,
        &["registry", "import", file_arg, "--district-code", "110106"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("已导入：新建 40 家，更新 0 家，无变化 0 家"),
        "{out}"
    );
    let imported = shops_in(&data);
    assert_eq!(imported.len(), 40);
    // New codes in row order after the district's prefix, each valid.
    let mut codes: Vec<&str> = imported.iter().map(|s| s.code.as_str()).collect();
    codes.sort();
    assert_eq!(
        codes[0],
        menqian_core::ShopCode::new(110_106, 1).unwrap().as_str()
    );
    assert_eq!(
        codes[39],
        menqian_core::ShopCode::new(110_106, 40).unwrap().as_str()
    );
    for (i, s) in shops.iter().enumerate() {
        let got = by_name(&imported, &s.name);
        assert_eq!(got.address, s.address);
        assert!(got.tags.contains(&ShopTag::ZoneEstimated));
        assert!(
            distance_m(front_of(got), s.zone.centroid()) < 0.05,
            "shop {i} placed {} m off",
            distance_m(front_of(got), s.zone.centroid())
        );
        assert_eq!(got.letter.is_some(), i % 3 != 2, "shop {i}");
    }
    assert_eq!(
        by_name(&imported, &shops[0].name).contact.phone,
        "13800138000"
    );
    assert_eq!(
        by_name(&imported, &shops[1].name).contact.phone,
        "13800138001"
    );
    assert_eq!(
        by_name(&imported, &shops[2].name).contact.phone,
        "13800138002"
    );
    assert_eq!(
        by_name(&imported, &shops[1].name)
            .letter
            .as_ref()
            .unwrap()
            .signed_on,
        chrono::NaiveDate::from_ymd_opt(2025, 3, 1).unwrap()
    );

    // The same file again changes nothing.
    let (ok, out) = cli(&data, &["registry", "import", file_arg]);
    assert!(ok, "{out}");
    assert!(
        out.contains("已导入：新建 0 家，更新 0 家，无变化 40 家"),
        "{out}"
    );

    // The export, with the codes, reads back unchanged.
    let export = dir.path().join("导出.xlsx");
    let (ok, out) = cli(
        &data,
        &["registry", "export", "--out", export.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let mut book = calamine::open_workbook_auto(&export).unwrap();
    let range = book.worksheet_range("门前三包台账").unwrap();
    let rows: Vec<&[Data]> = range.rows().collect();
    assert_eq!(rows.len(), 41);
    assert_eq!(rows[0][0].to_string(), "门前三包编码");
    let first = by_name(&imported, &rows[1][1].to_string());
    assert_eq!(rows[1][0].to_string(), first.code);
    assert!(
        rows[1][14]
            .to_string()
            .ends_with(&format!("/s/{}", first.code))
    );
    let (ok, out) = cli(&data, &["registry", "import", export.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("已导入：新建 0 家，更新 0 家，无变化 40 家"),
        "{out}"
    );
    assert_eq!(shops_in(&data), imported);
}

/// Ledger text for `shops` with a point column per the ledger's picker.
fn csv_rows(shops: &[Shop], point: impl Fn(GeoPoint) -> GeoPoint, one_column: bool) -> String {
    let mut out = if one_column {
        "单位名称,地址,负责人,联系电话,街道,街巷,坐标\n".to_string()
    } else {
        "单位名称,地址,负责人,联系电话,街道,街巷,经度,纬度\n".to_string()
    };
    for s in shops {
        let p = point(s.zone.centroid());
        let coords = if one_column {
            format!("\"{:.7},{:.7}\"", p.lon, p.lat)
        } else {
            format!("{:.7},{:.7}", p.lon, p.lat)
        };
        out += &format!(
            "{},{},{},{},{},{},{coords}\n",
            s.name,
            s.address,
            s.contact.person,
            s.contact.phone,
            s.subdistrict.as_deref().unwrap_or(""),
            s.street
        );
    }
    out
}

#[test]
fn gbk_and_bom_csvs_with_gcj02_and_bd09_points_land_within_a_metre() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("station");
    let shops = district(20);
    let (amap, baidu) = shops.split_at(10);

    let gbk = dir.path().join("高德.csv");
    let text = csv_rows(amap, wgs84_to_gcj02, false);
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "really GBK, not UTF-8"
    );
    std::fs::write(&gbk, &bytes).unwrap();
    let (ok, out) = cli(
        &data,
        &[
            "registry",
            "import",
            gbk.to_str().unwrap(),
            "--coords",
            "gcj02",
            "--district-code",
            "110106",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("CSV，GBK/GB18030"), "{out}");
    assert!(out.contains("新建 10 家"), "{out}");

    let bom = dir.path().join("百度.csv");
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(csv_rows(baidu, wgs84_to_bd09, true).as_bytes());
    std::fs::write(&bom, &bytes).unwrap();
    let (ok, out) = cli(
        &data,
        &[
            "registry",
            "import",
            bom.to_str().unwrap(),
            "--coords",
            "bd09",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("CSV，UTF-8（带 BOM）"), "{out}");
    assert!(out.contains("新建 10 家"), "{out}");

    let imported = shops_in(&data);
    assert_eq!(imported.len(), 20);
    for s in &shops {
        let got = by_name(&imported, &s.name);
        let off = distance_m(front_of(got), s.zone.centroid());
        assert!(off < 1.0, "{} landed {off} m from its WGS-84 point", s.name);
    }
    // The registry's district decides new codes: no --district-code needed
    // the second time, and no serial is issued twice.
    let mut codes: Vec<&str> = imported.iter().map(|s| s.code.as_str()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 20);
}

#[test]
fn bad_rows_are_named_by_row_and_column_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("station");
    let good = district(3);
    // A registry already holding the first shop, by its code.
    {
        let mut s = SqliteSyncStore::open(&data, vec![common::HOST.into()]).unwrap();
        s.documents().import_registry(good[..1].to_vec()).unwrap();
    }
    let p = |s: &Shop| s.zone.centroid();
    let row = |code: &str, name: &str, phone: &str, lon: String, lat: String| {
        format!(
            "{code},{name},{},{},{phone},{},{lon},{lat}\n",
            good[1].address, good[1].contact.person, good[1].street
        )
    };
    let (lon, lat) = (p(&good[1]).lon.to_string(), p(&good[1]).lat.to_string());
    let known = &good[0];
    let mut text = "门前三包编码,单位名称,地址,负责人,联系电话,街巷,经度,纬度\n".to_string();
    // Row 2: the known shop with a new phone: an update.
    text += &format!(
        "{},{},{},{},13912345678,{},{},{}\n",
        known.code,
        known.name,
        known.address,
        known.contact.person,
        known.street,
        p(known).lon,
        p(known).lat
    );
    text += &row("", "", "13800138000", lon.clone(), lat.clone()); // 3: no name
    text += &row("", "甲店", "12ab", lon.clone(), lat.clone()); // 4: bad phone
    text += &row("", "乙店", "13800138000", "0".into(), "0".into()); // 5: not in China
    text += &row(
        "1101060000019",
        "丙店",
        "13800138000",
        lon.clone(),
        lat.clone(),
    ); // 6: check
    text += &row("", "丁店", "13800138000", String::new(), String::new()); // 7: no point
    text += &row("", "戊店", "13800138000", lon.clone(), String::new()); // 8: lon only
    text += &row(&known.code, "己店", "13800138000", lon.clone(), lat.clone()); // 9: code again
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, &text).unwrap();
    let (ok, out) = cli(&data, &["registry", "import", file.to_str().unwrap()]);
    assert!(!ok, "{out}");
    for expected in [
        "第 3 行 单位名称：为空",
        "第 4 行 联系电话：“12ab”不是有效的电话号码",
        "第 5 行 经度/纬度：(0, 0) 不在中国境内",
        "第 6 行 门前三包编码：1101060000019 校验位不符（可能抄错）",
        "第 7 行 经度/纬度：新商户缺少坐标，无法估算责任区",
        "第 8 行 经度/纬度：经度、纬度只填了一个",
        &format!("第 9 行 门前三包编码：{} 与第 2 行重复", known.code),
        "错误 7 处",
        "未导入任何商户",
    ] {
        assert!(out.contains(expected), "missing “{expected}” in:\n{out}");
    }
    assert_eq!(shops_in(&data), good[..1].to_vec(), "nothing was written");

    // The update alone goes through.
    let fixed: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, &fixed).unwrap();
    let (ok, out) = cli(&data, &["registry", "import", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("已导入：新建 0 家，更新 1 家，无变化 0 家"),
        "{out}"
    );
    let after = shops_in(&data);
    assert_eq!(after[0].contact.phone, "13912345678");
    assert_eq!(after[0].zone, known.zone, "a drawn zone stays");

    // Columns the importer does not know, named by a mapping file.
    let mapped = dir.path().join("mapped.csv");
    let g = &good[2];
    std::fs::write(
        &mapped,
        format!(
            "门店招牌,门牌,店长,电话,路名,经度,纬度,备注\n{},{},{},{},{},{},{},老店\n",
            g.name,
            g.address,
            g.contact.person,
            g.contact.phone,
            g.street,
            p(g).lon,
            p(g).lat
        ),
    )
    .unwrap();
    let mapping = dir.path().join("columns.json");
    std::fs::write(
        &mapping,
        r#"{"门店招牌": "name", "门牌": "address", "店长": "person", "路名": "street", "备注": "ignore"}"#,
    )
    .unwrap();
    let (ok, out) = cli(
        &data,
        &[
            "registry",
            "import",
            mapped.to_str().unwrap(),
            "--mapping",
            mapping.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("已导入：新建 1 家"), "{out}");
    std::fs::write(&mapping, r#"{"门店招牌": "shop_name"}"#).unwrap();
    let (ok, out) = cli(
        &data,
        &[
            "registry",
            "import",
            mapped.to_str().unwrap(),
            "--mapping",
            mapping.to_str().unwrap(),
        ],
    );
    assert!(!ok && out.contains("字段“shop_name”不存在"), "{out}");

    // A file that is no ledger at all.
    std::fs::write(&file, "a,b,c\n1,2,3\n").unwrap();
    let (ok, out) = cli(&data, &["registry", "import", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("找不到表头"), "{out}");
}

/// A station data directory holding `n` open shops of the district and the
/// demo checklists.
fn station_with(n: usize) -> (tempfile::TempDir, Vec<Shop>) {
    let dir = tempfile::tempdir().unwrap();
    let mut shops: Vec<Shop> = district(2 * n)
        .into_iter()
        .filter(|s| s.status == menqian_core::ShopStatus::Active)
        .take(n)
        .collect();
    assert_eq!(shops.len(), n);
    // Three of them on a lane, for the lane's board.
    for s in shops.iter_mut().take(3) {
        s.lane = Some("富义街东一巷".into());
    }
    let mut s = SqliteSyncStore::open(dir.path(), vec![common::HOST.into()]).unwrap();
    let docs = s.documents();
    docs.import_templates(menqian_fixtures::templates().unwrap())
        .unwrap();
    docs.import_categories(menqian_fixtures::categories().unwrap())
        .unwrap();
    docs.import_registry(shops.clone()).unwrap();
    (dir, shops)
}

/// Renders `pdf` with pdftoppm at `dpi` and decodes every QR code on each
/// page: the texts, page by page.
fn qr_codes_on_pages(pdf: &Path, dpi: u32) -> Vec<Vec<String>> {
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new("pdftoppm")
        .args(["-r", &dpi.to_string(), "-gray", "-png"])
        .arg(pdf)
        .arg(out.path().join("page"))
        .output()
        .expect("pdftoppm (poppler-utils) is installed by scripts/system-deps.sh");
    assert!(run.status.success(), "{run:?}");
    let mut pages: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    pages
        .iter()
        .map(|p| {
            let img = image::open(p).unwrap().to_luma8();
            let mut prepared = rqrr::PreparedImage::prepare(img);
            // A grid that does not decode is a false find in the text (the
            // comparisons below fail if a board's own code is missing).
            prepared
                .detect_grids()
                .into_iter()
                .filter_map(|g| g.decode().ok().map(|d| d.1))
                .collect()
        })
        .collect()
}

fn poppler(tool: &str, pdf: &Path) -> String {
    let out = std::process::Command::new(tool).arg(pdf).arg("-").output();
    let out = match out {
        Ok(o) if tool == "pdffonts" => std::process::Command::new(tool)
            .arg(pdf)
            .output()
            .unwrap_or(o),
        Ok(o) => o,
        Err(e) => panic!("{tool}: {e}"),
    };
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn fifty_boards_scan_to_their_shops_and_carry_their_names_in_a_subset_font() {
    let (dir, shops) = station_with(50);
    let pdf = dir.path().join("boards.pdf");
    let (ok, out) = cli(dir.path(), &["signboards", "--out", pdf.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("50 块公示牌已写入"), "{out}");
    assert!(!dir.path().join("boards.pdf.part").exists());

    // One board a page, each page's one QR code its shop's link.
    let pages = qr_codes_on_pages(&pdf, 100);
    assert_eq!(pages.len(), 50);
    let mut codes: Vec<String> = shops.iter().map(|s| s.code.clone()).collect();
    codes.sort();
    for (page, code) in pages.iter().zip(&codes) {
        let link = menqian_core::ShopCode::parse(code)
            .unwrap()
            .link(common::HOST);
        assert_eq!(page, &vec![link], "boards are in code order");
    }
    let text = poppler("pdftotext", &pdf);
    for s in &shops {
        assert!(text.contains(&s.name), "{} is not in the text", s.name);
    }
    assert!(text.contains("门前三包责任公示牌") && text.contains("监督电话：12345"));
    assert!(text.contains("包环境有序"));
    // The font: embedded, a subset (a six-letter tag before its name).
    let fonts = poppler("pdffonts", &pdf);
    let line = fonts
        .lines()
        .find(|l| l.contains("NotoSansCJK"))
        .unwrap_or_else(|| panic!("no CJK font in:\n{fonts}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert!(cols[0].len() > 7 && cols[0].as_bytes()[6] == b'+', "{line}");
    assert!(
        line.contains("yes yes yes"),
        "embedded, subset, with a Unicode map: {line}"
    );
    let size = std::fs::metadata(&pdf).unwrap().len();
    assert!(size < 50 * 20_000, "{size} bytes for 50 boards");

    // Two to an A4 sheet: both codes on each sheet scan.
    let a4 = dir.path().join("a4.pdf");
    let (ok, out) = cli(
        dir.path(),
        &[
            "signboards",
            "--layout",
            "a4",
            "--out",
            a4.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    let sheets = qr_codes_on_pages(&a4, 200);
    assert_eq!(sheets.len(), 25);
    let mut scanned: Vec<String> = sheets.into_iter().flatten().collect();
    scanned.sort();
    let mut links: Vec<String> = codes
        .iter()
        .map(|c| menqian_core::ShopCode::parse(c).unwrap().link(common::HOST))
        .collect();
    links.sort();
    assert_eq!(scanned, links);

    // One shop, and a lane's board with its link.
    let one = dir.path().join("one.pdf");
    let (ok, out) = cli(
        dir.path(),
        &[
            "signboards",
            "--shop",
            &codes[7],
            "--out",
            one.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(qr_codes_on_pages(&one, 100).len(), 1);
    let lanes = dir.path().join("lanes.pdf");
    let (ok, out) = cli(
        dir.path(),
        &["signboards", "--lanes", "--out", lanes.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let lane = shops.iter().find_map(|s| s.lane.clone()).unwrap();
    let scanned: Vec<String> = qr_codes_on_pages(&lanes, 100)
        .into_iter()
        .flatten()
        .collect();
    assert!(
        scanned.contains(&menqian_sync_server::signboards::lane_link(
            common::HOST,
            &lane
        )),
        "{scanned:?}"
    );
    assert!(poppler("pdftotext", &lanes).contains(&lane));
}
