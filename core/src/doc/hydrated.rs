//! Reading an entity straight from a hydrated document.
//!
//! The same as deserialising the document's JSON ([`super::to_json`]) with
//! `serde_json`, value for value, without building the JSON first: a phone's
//! bootstrap and a station's read model read every document they receive,
//! and the intermediate `serde_json::Value` (its maps, its strings) was a
//! third of that work.

use automerge::{ScalarValue, hydrate};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

type Error = de::value::Error;

/// A hydrated value as a serde deserializer.
pub(super) struct Hydrated<'a>(pub(super) &'a hydrate::Value);

fn unsupported() -> Error {
    de::Error::custom("a value type this app does not write")
}

impl<'de> Deserializer<'de> for Hydrated<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            hydrate::Value::Map(m) => visitor.visit_map(Fields {
                iter: m.iter(),
                value: None,
            }),
            hydrate::Value::List(l) => visitor.visit_seq(Items(l.iter())),
            hydrate::Value::Text(t) => visitor.visit_string(t.to_string()),
            hydrate::Value::Scalar(s) => match s {
                ScalarValue::Str(s) => visitor.visit_str(s),
                ScalarValue::Int(i) | ScalarValue::Timestamp(i) => visitor.visit_i64(*i),
                ScalarValue::Uint(u) => visitor.visit_u64(*u),
                ScalarValue::F64(f) if f.is_finite() => visitor.visit_f64(*f),
                ScalarValue::F64(_) => Err(de::Error::custom("a number that is not finite")),
                ScalarValue::Boolean(b) => visitor.visit_bool(*b),
                ScalarValue::Null => visitor.visit_unit(),
                ScalarValue::Counter(_) | ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } => {
                    Err(unsupported())
                }
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            hydrate::Value::Scalar(ScalarValue::Null) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// As `serde_json` reads an externally tagged enum: a unit variant is its
    /// name, any other a map of its name to its content.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            hydrate::Value::Scalar(ScalarValue::Str(s)) => {
                visitor.visit_enum(s.to_string().into_deserializer())
            }
            hydrate::Value::Text(t) => visitor.visit_enum(t.to_string().into_deserializer()),
            hydrate::Value::Map(m) => {
                let mut entries = m.iter();
                match (entries.next(), entries.next()) {
                    (Some((name, content)), None) => visitor.visit_enum(Variant {
                        name,
                        content: &content.value,
                    }),
                    _ => Err(de::Error::invalid_length(
                        m.iter().count(),
                        &"a map of one entry",
                    )),
                }
            }
            _ => Err(de::Error::custom(
                "an enum is a string or a map of one entry",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

struct Fields<'a, I> {
    iter: I,
    value: Option<&'a hydrate::Value>,
}

impl<'de, 'a, I> MapAccess<'de> for Fields<'a, I>
where
    I: Iterator<Item = (&'a String, &'a hydrate::MapValue)>,
{
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((key, v)) => {
                self.value = Some(&v.value);
                seed.deserialize(key.as_str().into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(Hydrated(v)),
            None => Err(de::Error::custom("a map's value asked for before its key")),
        }
    }
}

struct Items<I>(I);

impl<'de, 'a, I> SeqAccess<'de> for Items<I>
where
    I: Iterator<Item = &'a hydrate::ListValue>,
{
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|item| seed.deserialize(Hydrated(&item.value)))
            .transpose()
    }
}

struct Variant<'a> {
    name: &'a String,
    content: &'a hydrate::Value,
}

impl<'de, 'a> EnumAccess<'de> for Variant<'a> {
    type Error = Error;
    type Variant = Hydrated<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Error> {
        let name = seed.deserialize(self.name.as_str().into_deserializer())?;
        Ok((name, Hydrated(self.content)))
    }
}

impl<'de> VariantAccess<'de> for Hydrated<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.0 {
            hydrate::Value::Scalar(ScalarValue::Null) => Ok(()),
            _ => Err(de::Error::custom("a unit variant with content")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }
}
