//! A new document's first change, read without building Automerge's op set.
//!
//! Most of what a station merges are new records: a report, an inspection, a
//! patrol, each pushed as the one change that created it ([`super::create`]).
//! Applying that change to an empty document and hydrating it back was about
//! three quarters of a pushed record's merge (docs/benchmarks.md). For a
//! change of the shape this app writes (maps and lists built in order, scalar
//! values, nothing overwritten, no dependencies) the document it makes is
//! plain: every put is the only value at its key and every insert goes after
//! the element inserted before it. Those changes are read here, straight from
//! their operations, into the same [`hydrate::Value`] Automerge would give.
//! Anything else (an overwrite, a delete, a counter, text, a mark, an insert
//! anywhere but at the end, an unknown value type) returns `None` and is
//! merged by Automerge as before, so the result never depends on which path
//! read it. The tests compare both paths on generated changes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use automerge::{Change, ObjType, ScalarValue, hydrate, legacy};

/// The deepest nesting read here; deeper documents go through Automerge.
const MAX_DEPTH: usize = 32;

/// A new document's content, read from its first change.
pub(crate) struct FirstChange {
    /// The document, as `hydrate(ROOT)` of the document would give it.
    pub root: hydrate::Value,
    /// Its operations.
    pub ops: u64,
}

enum Slot {
    Scalar(ScalarValue),
    Object(u64),
}

enum Object {
    Map(HashMap<String, Slot>),
    List {
        /// The counter of the last element inserted.
        last: Option<u64>,
        items: Vec<Slot>,
    },
}

/// Reads `change` as the first change of an empty document, if it has the
/// plain shape described above; `None` otherwise.
pub(crate) fn read(change: &Change) -> Option<FirstChange> {
    if !change.deps().is_empty() || change.seq() != 1 || change.start_op().get() != 1 {
        return None;
    }
    // Automerge panics on a few malformed changes that pass its parser (see
    // `fuzz/`); such a change is left to the ordinary path to refuse.
    let expanded = std::panic::catch_unwind(|| change.decode()).ok()?;
    let actor = &expanded.actor_id;
    let root = u64::MAX;
    let mut objects: HashMap<u64, (Object, usize)> = HashMap::new();
    objects.insert(root, (Object::Map(HashMap::new()), 0));
    for (i, op) in expanded.operations.iter().enumerate() {
        let counter = i as u64 + 1;
        if !op.pred.is_empty() {
            return None;
        }
        let target = match &op.obj {
            legacy::ObjectId::Root => root,
            legacy::ObjectId::Id(id) if id.actor() == actor => id.counter(),
            legacy::ObjectId::Id(_) => return None,
        };
        let slot = match &op.action {
            legacy::OpType::Make(ObjType::Map) => Slot::Object(counter),
            legacy::OpType::Make(ObjType::List) => Slot::Object(counter),
            legacy::OpType::Put(value) if plain(value) => Slot::Scalar(value.clone()),
            _ => return None,
        };
        let (object, depth) = objects.get_mut(&target)?;
        let depth = *depth + 1;
        match (object, &op.key, op.insert) {
            (Object::Map(fields), legacy::Key::Map(name), false) if !name.is_empty() => {
                match fields.entry(name.to_string()) {
                    Entry::Vacant(e) => e.insert(slot),
                    Entry::Occupied(_) => return None,
                };
            }
            (Object::List { last, items }, legacy::Key::Seq(after), true) => {
                let at_end = match (after, *last) {
                    (legacy::ElementId::Head, None) => true,
                    (legacy::ElementId::Id(e), Some(l)) => e.actor() == actor && e.counter() == l,
                    _ => false,
                };
                if !at_end {
                    return None;
                }
                *last = Some(counter);
                items.push(slot);
            }
            _ => return None,
        }
        let made = match &op.action {
            legacy::OpType::Make(ObjType::Map) => Object::Map(HashMap::new()),
            legacy::OpType::Make(_) => Object::List {
                last: None,
                items: Vec::new(),
            },
            _ => continue,
        };
        if depth > MAX_DEPTH {
            return None;
        }
        objects.insert(counter, (made, depth));
    }
    let root = build(&mut objects, root)?;
    Some(FirstChange {
        root,
        ops: expanded.operations.len() as u64,
    })
}

/// The scalar types [`super::hydrated`] reads; the rest go through Automerge.
fn plain(value: &ScalarValue) -> bool {
    matches!(
        value,
        ScalarValue::Str(_)
            | ScalarValue::Int(_)
            | ScalarValue::Uint(_)
            | ScalarValue::F64(_)
            | ScalarValue::Boolean(_)
            | ScalarValue::Null
            | ScalarValue::Timestamp(_)
    )
}

/// The object `id` as a hydrated value, taking it (and its children) out of
/// `objects`. Depth is bounded by [`MAX_DEPTH`].
fn build(objects: &mut HashMap<u64, (Object, usize)>, id: u64) -> Option<hydrate::Value> {
    let (object, _) = objects.remove(&id)?;
    let mut value = |slot: Slot| match slot {
        Slot::Scalar(s) => Some(hydrate::Value::Scalar(s)),
        Slot::Object(child) => build(objects, child),
    };
    Some(match object {
        Object::Map(fields) => {
            let mut map = HashMap::with_capacity(fields.len());
            for (key, slot) in fields {
                map.insert(key, value(slot)?);
            }
            hydrate::Value::Map(map.into())
        }
        Object::List { items, .. } => {
            let items = items.into_iter().map(value).collect::<Option<Vec<_>>>()?;
            hydrate::Value::List(items.into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::first_change;
    use super::*;
    use automerge::{ActorId, AutoCommit, ROOT, ReadDoc};
    use proptest::prelude::*;
    use serde_json::Value;

    /// Both paths agree on `change`: when it is read here, Automerge applies
    /// it to an empty document, and loads its bytes as a document, to the same
    /// content.
    fn agree(change: &Change) -> Option<()> {
        let read = read(change)?;
        let mut applied = AutoCommit::new();
        applied
            .apply_changes([change.clone()])
            .unwrap_or_else(|e| panic!("read here, refused by Automerge: {e}"));
        assert!(applied.get_missing_deps(&[]).is_empty());
        assert_eq!(read.root, applied.hydrate(ROOT, None).unwrap());
        assert_eq!(read.ops, applied.stats().num_ops);
        let mut loaded = AutoCommit::load(change.raw_bytes()).unwrap();
        assert_eq!(read.root, loaded.hydrate(ROOT, None).unwrap());
        assert_eq!(loaded.get_heads(), vec![change.hash()]);
        Some(())
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            "[a-z富义街\\n\\u{0}]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z甲乙]{1,4}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn entity() -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-z]{1,5}", json(), 0..8)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// What a phone's store makes ([`super::super::create`]) is read here.
        #[test]
        fn a_created_record_is_read_as_automerge_reads_it(e in entity()) {
            let (doc, hash) = super::super::create(&ActorId::random(), &e).unwrap();
            let change = doc.get_change_by_hash(&hash).unwrap().clone();
            prop_assert!(agree(&change).is_some());
        }

        /// What a transaction of puts and inserts makes is read here too.
        #[test]
        fn a_record_written_field_by_field_is_read_as_automerge_reads_it(e in entity()) {
            let mut doc = AutoCommit::new();
            super::super::write_root(&mut doc, &e).unwrap();
            let Some(hash) = doc.commit() else { return Ok(()) };
            let change = doc.get_change_by_hash(&hash).unwrap().clone();
            prop_assert!(agree(&change).is_some());
        }

        /// A record's change with a few operations changed, moved, dropped
        /// or repeated: whatever is read here, Automerge reads the same.
        #[test]
        fn any_change_read_here_is_read_so_by_automerge(
            e in entity(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), edit()), 1..4),
        ) {
            let actor = ActorId::from(&[7u8; 16][..]);
            let (doc, hash) = super::super::create(&actor, &e).unwrap();
            let mut ops = doc.get_change_by_hash(&hash).unwrap().decode().operations;
            for (at, edit) in edits {
                if ops.is_empty() {
                    break;
                }
                let i = at.index(ops.len());
                edit.apply(&mut ops, i, &actor);
            }
            let change = std::panic::catch_unwind(|| first_change(&actor, ops));
            if let Ok(change) = change {
                agree(&change);
            }
        }
    }

    #[test]
    fn what_is_not_plain_is_left_to_automerge() {
        let actor = ActorId::random();
        let id = |c: u64| legacy::OpId(c, actor.clone());
        let change = |ops: Vec<legacy::Op>| first_change(&actor, ops);
        let put = |obj, key: &str, pred: Vec<legacy::OpId>| legacy::Op {
            action: legacy::OpType::Put(ScalarValue::Str("x".into())),
            obj,
            key: legacy::Key::Map(key.into()),
            pred: pred.into(),
            insert: false,
        };
        let plain = change(vec![put(legacy::ObjectId::Root, "a", vec![])]);
        assert!(agree(&plain).is_some());
        // An overwrite within the change.
        let overwrite = change(vec![
            put(legacy::ObjectId::Root, "a", vec![]),
            put(legacy::ObjectId::Root, "a", vec![id(1)]),
        ]);
        assert!(read(&overwrite).is_none());
        // Two values at one key (a conflict).
        let twice = change(vec![
            put(legacy::ObjectId::Root, "a", vec![]),
            put(legacy::ObjectId::Root, "a", vec![]),
        ]);
        assert!(read(&twice).is_none());
        // A put into an object that is not there.
        let nowhere = change(vec![put(legacy::ObjectId::Id(id(9)), "a", vec![])]);
        assert!(read(&nowhere).is_none());
        // A counter.
        let counter = change(vec![legacy::Op {
            action: legacy::OpType::Put(ScalarValue::counter(1)),
            obj: legacy::ObjectId::Root,
            key: legacy::Key::Map("n".into()),
            pred: Vec::new().into(),
            insert: false,
        }]);
        assert!(read(&counter).is_none());
    }

    /// One change to one operation of a change.
    #[derive(Debug, Clone)]
    enum Edit {
        Action(u8),
        Object(Option<u64>),
        Key(Result<u8, Option<u64>>),
        Pred(u64),
        Insert,
        SwapWithNext,
        Drop,
        Repeat,
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0u8..9).prop_map(Edit::Action),
            prop::option::weighted(0.8, 1u64..40).prop_map(Edit::Object),
            prop_oneof![
                (0u8..3).prop_map(Ok),
                prop::option::of(1u64..40).prop_map(Err)
            ]
            .prop_map(Edit::Key),
            (1u64..40).prop_map(Edit::Pred),
            Just(Edit::Insert),
            Just(Edit::SwapWithNext),
            Just(Edit::Drop),
            Just(Edit::Repeat),
        ]
    }

    impl Edit {
        fn apply(self, ops: &mut Vec<legacy::Op>, i: usize, actor: &ActorId) {
            let id = |c| legacy::OpId(c, actor.clone());
            match self {
                Edit::Action(a) => {
                    ops[i].action = match a {
                        0 => legacy::OpType::Make(ObjType::Map),
                        1 => legacy::OpType::Make(ObjType::List),
                        2 => legacy::OpType::Make(ObjType::Text),
                        3 => legacy::OpType::Put(ScalarValue::Str("字".into())),
                        4 => legacy::OpType::Put(ScalarValue::Int(-1)),
                        5 => legacy::OpType::Put(ScalarValue::Null),
                        6 => legacy::OpType::Put(ScalarValue::counter(2)),
                        7 => legacy::OpType::Delete,
                        _ => legacy::OpType::Increment(1),
                    }
                }
                Edit::Object(obj) => {
                    ops[i].obj = obj.map_or(legacy::ObjectId::Root, |c| legacy::ObjectId::Id(id(c)))
                }
                Edit::Key(key) => {
                    ops[i].key = match key {
                        Ok(k) => legacy::Key::Map(["a", "b", "名"][k as usize].into()),
                        Err(None) => legacy::Key::Seq(legacy::ElementId::Head),
                        Err(Some(c)) => legacy::Key::Seq(legacy::ElementId::Id(id(c))),
                    }
                }
                Edit::Pred(c) => ops[i].pred = vec![id(c)].into(),
                Edit::Insert => ops[i].insert = !ops[i].insert,
                Edit::SwapWithNext if i + 1 < ops.len() => ops.swap(i, i + 1),
                Edit::SwapWithNext => {}
                Edit::Drop => {
                    ops.remove(i);
                }
                Edit::Repeat => {
                    let again = ops[i].clone();
                    ops.insert(i, again);
                }
            }
        }
    }
}
