//! The station's printed reports for supervisors and administrators: the
//! week's or month's ranking per street with the red flag and black list,
//! open rectification items, stewards' points and a lane chief's week. The
//! numbers are the core's; this only lays them out.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use menqian_core::model::template::BEIJING;
use menqian_core::scores::Scoreboard;
use menqian_core::store::ledger::RectificationItem;
use menqian_core::{LaneChiefWeek, StewardScore};

fn beijing(t: DateTime<Utc>) -> String {
    t.with_timezone(&BEIJING).format("%m-%d %H:%M").to_string()
}

/// The scoreboard as text: each street's ranking (the first `top` shops),
/// then the red list (流动红旗) and the black list.
pub fn scoreboard(board: &Scoreboard, top: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} 门前三包考评（{} 家）",
        board.label,
        board.ranked.len()
    );
    let mut street = "";
    let mut shown = 0;
    for r in &board.ranked {
        let s = &r.score;
        if s.street != street {
            street = &s.street;
            shown = 0;
            let _ = writeln!(out, "\n【{street}】 {} 家", r.of);
            let _ = writeln!(out, "名次  得分  检查  投诉  逾期  迟改  商户");
        }
        shown += 1;
        if shown > top {
            continue;
        }
        let flag = if board.red_flag.contains(&s.shop_id) {
            " 🚩流动红旗"
        } else if board.black_list.contains(&s.shop_id) {
            " ⚫黑榜"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:>4}  {:>4}  {:>4}  {:>4}  {:>4}  {:>4}  {} {}{flag}",
            r.rank, s.score, s.inspections, s.reports, s.overdue, s.late, s.code, s.name
        );
    }
    let name = |id: &String| board.shop_label(id);
    if !board.red_flag.is_empty() {
        let _ = writeln!(out, "\n红榜 · 流动红旗（下周免检）：");
        for id in &board.red_flag {
            let _ = writeln!(out, "  {}", name(id));
        }
    }
    let _ = writeln!(out, "\n黑榜：");
    if board.black_list.is_empty() {
        let _ = writeln!(out, "  （无）");
    }
    for id in &board.black_list {
        let _ = writeln!(out, "  {}", name(id));
    }
    out
}

/// Open rectification items, soonest deadline first.
pub fn ledger(items: &[RectificationItem]) -> String {
    let mut out = format!("整改台账：未完成 {} 项\n", items.len());
    for i in items {
        let _ = writeln!(
            out,
            "{}  期限 {}  {}  {}  {}{}",
            i.state.label_zh(),
            beijing(i.deadline),
            i.shop_name,
            i.item,
            i.item_text,
            i.case_id
                .as_ref()
                .map_or(String::new(), |c| format!("  → {c}"))
        );
        for s in &i.steps {
            let _ = writeln!(
                out,
                "    {}  {}  {}",
                beijing(s.at),
                s.kind.label_zh(),
                s.by
            );
        }
    }
    out
}

pub fn stewards(label: &str, scores: &[StewardScore]) -> String {
    let mut out = format!("{label} 小巷管家积分\n积分  有效  办结  并案  不予受理  待审  管家\n");
    for s in scores {
        let _ = writeln!(
            out,
            "{:>4}  {:>4}  {:>4}  {:>4}  {:>8}  {:>4}  {}",
            s.points, s.valid, s.closed, s.linked, s.rejected, s.pending, s.user
        );
    }
    out
}

pub fn lane_chief(w: &LaneChiefWeek) -> String {
    let mut out = format!(
        "{} 街巷长 {}：巡查 {} 次 {:.1} km，覆盖街巷 {}/{}，发现问题 {}，辖区办结 {}，未结 {}\n",
        w.week,
        w.user,
        w.patrols,
        w.patrol_m / 1000.0,
        w.lanes_covered,
        w.lanes.len(),
        w.found,
        w.handled,
        w.open
    );
    for (lane, share) in &w.lanes {
        let _ = writeln!(out, "  {lane}  {:.0}%", share * 100.0);
    }
    out
}
