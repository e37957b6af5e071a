//! Entities ↔ Automerge documents.
//!
//! An entity is written with serde into JSON and from there into the document:
//! objects become maps (each field merges on its own), arrays become lists,
//! strings become atomic scalars (last writer wins per field, never interleaved
//! characters). Reading hydrates the document and deserialises it back.

use std::num::NonZeroU64;

use automerge::transaction::Transactable;
use automerge::{
    ActorId, AutoCommit, Change, ChangeHash, ExpandedChange, ObjId, ObjType, ROOT, ReadDoc,
    ScalarValue, hydrate, legacy,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};

pub(crate) mod first;
mod hydrated;

/// Reads a whole document as the entity `T`.
pub(crate) fn read<T: DeserializeOwned>(doc: &AutoCommit, id: &str) -> Result<T> {
    read_hydrated(&doc.hydrate(ROOT, None)?, id)
}

/// Reads a hydrated document (its root) as the entity `T`.
pub(crate) fn read_hydrated<T: DeserializeOwned>(root: &hydrate::Value, id: &str) -> Result<T> {
    T::deserialize(hydrated::Hydrated(root)).map_err(|e| Error::corrupt(id, e))
}

/// The document as JSON (used for reading, and to compare replicas in tests).
pub fn to_json(doc: &AutoCommit, id: &str) -> Result<Value> {
    let root = doc.hydrate(ROOT, None)?;
    hydrated_to_json(&root).map_err(|reason| Error::corrupt(id, reason))
}

fn hydrated_to_json(v: &hydrate::Value) -> std::result::Result<Value, String> {
    Ok(match v {
        hydrate::Value::Map(m) => {
            let mut out = Map::new();
            for (k, mv) in m.iter() {
                out.insert(k.clone(), hydrated_to_json(&mv.value)?);
            }
            Value::Object(out)
        }
        hydrate::Value::List(l) => Value::Array(
            l.iter()
                .map(|lv| hydrated_to_json(&lv.value))
                .collect::<std::result::Result<_, _>>()?,
        ),
        hydrate::Value::Text(t) => Value::String(t.to_string()),
        hydrate::Value::Scalar(s) => match s {
            ScalarValue::Str(s) => Value::String(s.to_string()),
            ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Value::Number((*i).into()),
            ScalarValue::Uint(u) => Value::Number((*u).into()),
            ScalarValue::F64(f) => Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| "a number that is not finite".to_string())?,
            ScalarValue::Boolean(b) => Value::Bool(*b),
            ScalarValue::Null => Value::Null,
            ScalarValue::Counter(_) | ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } => {
                return Err("a value type this app does not write".to_string());
            }
        },
    })
}

/// A brand-new document holding `entity`, built as one change and applied at
/// once. Same content as [`write_root`] on an empty document, about four times
/// cheaper: Automerge inserts a whole change's ops faster than one `put` at a
/// time, which matters when a district's registry is imported.
pub(crate) fn create<T: Serialize>(
    actor: &ActorId,
    entity: &T,
) -> Result<(AutoCommit, ChangeHash)> {
    let json = serde_json::to_value(entity).map_err(|e| Error::invalid("record", e.to_string()))?;
    let Value::Object(fields) = json else {
        return Err(Error::invalid(
            "record",
            "an entity serialises to an object",
        ));
    };
    let mut ops = Vec::new();
    for (key, value) in &fields {
        if !value.is_null() {
            emit(
                &mut ops,
                actor,
                legacy::ObjectId::Root,
                legacy::Key::Map(key.as_str().into()),
                false,
                value,
            );
        }
    }
    let change = first_change(actor, ops);
    let hash = change.hash();
    let mut doc = AutoCommit::new().with_actor(actor.clone());
    doc.apply_changes([change])?;
    Ok((doc, hash))
}

/// The first change of a new document by `actor`: `ops`, depending on nothing.
pub(crate) fn first_change(actor: &ActorId, ops: Vec<legacy::Op>) -> Change {
    Change::from(ExpandedChange {
        operations: ops,
        actor_id: actor.clone(),
        hash: None,
        seq: 1,
        start_op: NonZeroU64::MIN,
        time: 0,
        message: None,
        deps: Vec::new(),
        extra_bytes: Vec::new(),
        author: None,
    })
}

/// Appends the ops that create `value` at `key` of `obj`; returns the op's id.
fn emit(
    ops: &mut Vec<legacy::Op>,
    actor: &ActorId,
    obj: legacy::ObjectId,
    key: legacy::Key,
    insert: bool,
    value: &Value,
) -> legacy::OpId {
    let id = legacy::OpId(ops.len() as u64 + 1, actor.clone());
    let op = |action| legacy::Op {
        action,
        obj,
        key,
        pred: legacy::SortedVec::new(),
        insert,
    };
    match value {
        Value::Object(fields) => {
            ops.push(op(legacy::OpType::Make(ObjType::Map)));
            for (k, v) in fields.iter().filter(|(_, v)| !v.is_null()) {
                let child = legacy::ObjectId::Id(id.clone());
                emit(
                    ops,
                    actor,
                    child,
                    legacy::Key::Map(k.as_str().into()),
                    false,
                    v,
                );
            }
        }
        Value::Array(items) => {
            ops.push(op(legacy::OpType::Make(ObjType::List)));
            let mut prev = legacy::ElementId::Head;
            for v in items {
                let child = legacy::ObjectId::Id(id.clone());
                let elem = emit(ops, actor, child, legacy::Key::Seq(prev), true, v);
                prev = legacy::ElementId::Id(elem);
            }
        }
        scalar => ops.push(op(legacy::OpType::Put(to_scalar(scalar)))),
    }
    id
}

/// Writes every field of `entity` at the root; absent (`None`) fields are removed.
pub(crate) fn write_root<T: Serialize>(doc: &mut AutoCommit, entity: &T) -> Result<()> {
    let json = serde_json::to_value(entity).map_err(|e| Error::invalid("record", e.to_string()))?;
    let Value::Object(fields) = json else {
        return Err(Error::invalid(
            "record",
            "an entity serialises to an object",
        ));
    };
    for (key, value) in &fields {
        put(doc, &ROOT, key, value)?;
    }
    Ok(())
}

/// Serialises `value` and puts it under `key` of `obj`.
pub(crate) fn put_field<T: Serialize>(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: &T,
) -> Result<()> {
    let json = serde_json::to_value(value).map_err(|e| Error::invalid(key, e.to_string()))?;
    put(doc, obj, key, &json)
}

/// Puts a JSON value under `key`; `null` deletes the key.
pub(crate) fn put(doc: &mut AutoCommit, obj: &ObjId, key: &str, value: &Value) -> Result<()> {
    match value {
        Value::Null => {
            if doc.get(obj, key)?.is_some() {
                doc.delete(obj, key)?;
            }
        }
        Value::Object(fields) => {
            let child = doc.put_object(obj, key, ObjType::Map)?;
            for (k, v) in fields {
                put(doc, &child, k, v)?;
            }
        }
        Value::Array(items) => {
            let child = doc.put_object(obj, key, ObjType::List)?;
            for (i, v) in items.iter().enumerate() {
                insert(doc, &child, i, v)?;
            }
        }
        scalar => {
            doc.put(obj, key, to_scalar(scalar))?;
        }
    }
    Ok(())
}

/// Inserts a JSON value at `index` of the list `obj`.
pub(crate) fn insert(
    doc: &mut AutoCommit,
    list: &ObjId,
    index: usize,
    value: &Value,
) -> Result<()> {
    match value {
        Value::Object(fields) => {
            let child = doc.insert_object(list, index, ObjType::Map)?;
            for (k, v) in fields {
                put(doc, &child, k, v)?;
            }
        }
        Value::Array(items) => {
            let child = doc.insert_object(list, index, ObjType::List)?;
            for (i, v) in items.iter().enumerate() {
                insert(doc, &child, i, v)?;
            }
        }
        scalar => {
            doc.insert(list, index, to_scalar(scalar))?;
        }
    }
    Ok(())
}

/// Appends a serialised value to the list at `key` of the root, creating the list
/// if this document has none yet.
pub(crate) fn append<T: Serialize>(doc: &mut AutoCommit, key: &str, value: &T) -> Result<()> {
    let json = serde_json::to_value(value).map_err(|e| Error::invalid(key, e.to_string()))?;
    let list = match doc.get(ROOT, key)? {
        Some((automerge::Value::Object(ObjType::List), id)) => id,
        _ => doc.put_object(ROOT, key, ObjType::List)?,
    };
    let len = doc.length(&list);
    insert(doc, &list, len, &json)
}

/// The map at `key` of the root, created if missing.
pub(crate) fn map_at(doc: &mut AutoCommit, key: &str) -> Result<ObjId> {
    Ok(match doc.get(ROOT, key)? {
        Some((automerge::Value::Object(ObjType::Map), id)) => id,
        _ => doc.put_object(ROOT, key, ObjType::Map)?,
    })
}

fn to_scalar(v: &Value) -> ScalarValue {
    match v {
        Value::Bool(b) => ScalarValue::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => ScalarValue::Int(i),
            (None, Some(u), _) => ScalarValue::Uint(u),
            (None, None, Some(f)) => ScalarValue::F64(f),
            _ => ScalarValue::Null,
        },
        Value::String(s) => ScalarValue::Str(s.as_str().into()),
        Value::Null | Value::Array(_) | Value::Object(_) => ScalarValue::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        name: String,
        n: i64,
        x: f64,
        on: bool,
        tags: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        maybe: Option<String>,
    }

    #[test]
    fn an_entity_round_trips_and_none_removes_a_field() -> Result<()> {
        let mut doc = AutoCommit::new();
        let mut s = Sample {
            name: "富义街".into(),
            n: -3,
            x: 39.5,
            on: true,
            tags: vec!["a".into(), "b".into()],
            maybe: Some("有".into()),
        };
        write_root(&mut doc, &s)?;
        doc.commit();
        assert_eq!(read::<Sample>(&doc, "t")?, s);
        put(&mut doc, &ROOT, "maybe", &Value::Null)?;
        s.maybe = None;
        assert_eq!(read::<Sample>(&doc, "t")?, s);
        Ok(())
    }

    /// Every shape serde reads from a document, through both paths.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Shape {
        Unit,
        Newtype(u32),
        Tuple(i64, String),
        Struct { at: f64, note: Option<String> },
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Wrapper(String);

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Everything {
        shapes: Vec<Shape>,
        wrapped: Wrapper,
        small: u8,
        big: u64,
        negative: i32,
        whole_as_float: f64,
        absent: Option<u32>,
        present: Option<Vec<bool>>,
        map: std::collections::BTreeMap<String, Option<f64>>,
        tuple: (char, String),
        #[serde(default)]
        defaulted: String,
        any: serde_json::Value,
    }

    #[test]
    fn reading_straight_from_the_document_equals_reading_its_json() -> Result<()> {
        let entity = serde_json::json!({
            "shapes": ["Unit", {"Newtype": 7}, {"Tuple": [-2, "乙"]},
                       {"Struct": {"at": 39.9, "note": null}}],
            "wrapped": "包", "small": 255, "big": 18_000_000_000_000_000_000u64,
            "negative": -40, "whole_as_float": 3, "absent": null, "present": [true, false],
            "map": {"甲": 1.5, "乙": null}, "tuple": ["字", "z"], "ignored": {"x": [1]},
            "any": {"n": [1, -1, 2.5, "s", null, true, {}]},
        });
        let (doc, _) = create(&ActorId::random(), &entity)?;
        let via_json: Everything =
            serde_json::from_value(to_json(&doc, "t")?).map_err(|e| Error::corrupt("t", e))?;
        assert_eq!(read::<Everything>(&doc, "t")?, via_json);
        assert_eq!(read::<serde_json::Value>(&doc, "t")?, to_json(&doc, "t")?);
        // What one path refuses, so does the other.
        for (field, value) in [
            ("small", serde_json::json!(256)),
            ("shapes", serde_json::json!([{"Unit": 1, "Newtype": 1}])),
            ("shapes", serde_json::json!(["Nothing"])),
            ("shapes", serde_json::json!([{"Unit": 1}])),
            ("negative", serde_json::json!("一")),
            ("tuple", serde_json::json!(["字"])),
        ] {
            let mut wrong = entity.clone();
            wrong[field] = value;
            let (doc, _) = create(&ActorId::random(), &wrong)?;
            assert!(read::<Everything>(&doc, "t").is_err(), "{wrong}");
            assert!(serde_json::from_value::<Everything>(to_json(&doc, "t")?).is_err());
        }
        Ok(())
    }

    #[test]
    fn a_document_built_as_one_change_equals_one_built_by_puts() -> Result<()> {
        let entity = serde_json::json!({
            "name": "富义街 1 号", "n": -3, "x": 39.5, "on": true, "none": null,
            "nested": {"a": "甲", "deeper": {"b": [1, 2.5, "三", null, {"c": false}]}},
            "empty_map": {}, "empty_list": [],
        });
        let actor = ActorId::random();
        let (mut built, hash) = create(&actor, &entity)?;
        let mut by_puts = AutoCommit::new().with_actor(actor);
        write_root(&mut by_puts, &entity)?;
        by_puts.commit();
        assert_eq!(to_json(&built, "t")?, to_json(&by_puts, "t")?);
        assert_eq!(built.get_heads(), vec![hash]);
        // Further local edits continue the same actor's sequence.
        put(&mut built, &ROOT, "name", &Value::String("改".into()))?;
        assert!(built.commit().is_some());
        let reloaded = AutoCommit::load(&built.save())?;
        assert_eq!(to_json(&reloaded, "t")?["name"], "改");
        Ok(())
    }

    #[test]
    fn concurrent_field_edits_both_survive() -> Result<()> {
        let mut a = AutoCommit::new();
        write_root(&mut a, &serde_json::json!({"name": "甲", "phone": "1"}))?;
        a.commit();
        let mut b = a.fork();
        put(&mut a, &ROOT, "name", &Value::String("乙".into()))?;
        put(&mut b, &ROOT, "phone", &Value::String("2".into()))?;
        a.merge(&mut b)?;
        assert_eq!(
            to_json(&a, "t")?,
            serde_json::json!({"name": "乙", "phone": "2"})
        );
        Ok(())
    }
}
