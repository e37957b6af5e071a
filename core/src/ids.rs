//! The grammar of document ids, one per kind. Every change a store accepts,
//! from its own user or from the network, names a document this way, so an id
//! is never a path, never empty after its kind and never carries a character
//! a screen or terminal would act on.
//!
//! ```text
//! shop/<signboard code>     pub/<signboard code>    13 characters, check digit valid
//! tmpl/<id>@<version>       id: 1–40 of [A-Za-z0-9_-], version: 1–9 digits
//! cat/<code>                1–16 of [A-Za-z0-9-]
//! insp/<uuid>  patrol/<uuid>  case/<uuid>            uuid: 32 lower-case hex digits
//! case/rect-<uuid>-<item>   the escalation of an inspection's item (the station's)
//! rules/district
//! ```

use crate::qr::ShopCode;

/// Why `id` is not a document id, or `Ok`.
pub fn check_doc_id(id: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "{:?} is not a document id: {why}",
            id.escape_debug().to_string()
        ))
    };
    let Some((kind, key)) = id.split_once('/') else {
        return bad("no kind");
    };
    let ok = match kind {
        "shop" | "pub" => ShopCode::parse(key).is_ok_and(|c| c.as_str() == key),
        "tmpl" => key.split_once('@').is_some_and(|(t, v)| {
            (1..=40).contains(&t.len())
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && (1..=9).contains(&v.len())
                && v.bytes().all(|b| b.is_ascii_digit())
        }),
        "cat" => {
            (1..=16).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }
        "insp" | "patrol" => is_uuid(key),
        "case" => is_uuid(key) || is_escalation(key),
        "rules" => key == "district",
        _ => return bad("unknown kind"),
    };
    if ok {
        Ok(())
    } else {
        bad("its key does not fit its kind")
    }
}

/// 32 lower-case hex digits: a UUID as `new_id` writes it.
fn is_uuid(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `rect-<uuid>-<item code>`.
pub(crate) fn is_escalation(key: &str) -> bool {
    key.strip_prefix("rect-")
        .and_then(|rest| rest.split_at_checked(32))
        .is_some_and(|(inspection, item)| {
            is_uuid(inspection)
                && item.strip_prefix('-').is_some_and(|code| {
                    (1..=32).contains(&code.len())
                        && code
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ids_stores_make_pass() {
        for id in [
            "shop/110106000001X",
            "pub/110106000001X",
            "tmpl/fengtai-food@3",
            "cat/0101",
            "insp/0123456789abcdef0123456789abcdef",
            "case/0123456789abcdef0123456789abcdef",
            "case/rect-0123456789abcdef0123456789abcdef-A1.2",
            "patrol/0123456789abcdef0123456789abcdef",
            "rules/district",
        ] {
            let code = ShopCode::new(110_106, 1).map(|c| c.as_str().to_string());
            let id = id.replace("110106000001X", code.as_deref().unwrap_or(""));
            assert_eq!(check_doc_id(&id), Ok(()), "{id}");
        }
    }

    #[test]
    fn clones_paths_and_control_characters_are_refused() {
        for id in [
            "case/../../etc/passwd",
            "case/",
            "case",
            "case/0123456789ABCDEF0123456789ABCDEF",
            "case/0123456789abcdef0123456789abcdef\n",
            "insp/0123456789abcdef0123456789abcdef\u{1b}[2J",
            "shop/110106000001",
            "shop/110106000001x",
            "rules/other",
            "tmpl/a@",
            "tmpl/a b@1",
            "cat/",
            "record/x",
            "case/rect-0123456789abcdef0123456789abcdef-",
        ] {
            assert!(check_doc_id(id).is_err(), "{id:?} passed");
        }
    }
}
