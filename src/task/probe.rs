//! Checking a config against its task type before any run exists.
//!
//! At load time some config values are templates over upstream results, which only exist at
//! run time. A [`Probe`] is the config with those values marked [`Probe::Unknown`]; the
//! [`ProbeDeserializer`] answers any request for an unknown value with a neutral value of the
//! requested type, so every *other* key is still checked against the task's real config type:
//! unknown keys, missing keys and wrong types are all caught when the DAG loads.

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer, StrDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde_path_to_error::{Path, Segment};

/// A config value as far as it is known at load time.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Known(serde_json::Value),
    /// Decided only at run time (a template over an upstream result).
    Unknown,
    Array(Vec<Probe>),
    Object(Vec<(String, Probe)>),
}

impl Probe {
    /// Removes top-level key `key` of an object; false when there is no such key.
    pub fn remove_key(&mut self, key: &str) -> bool {
        match self {
            Probe::Object(entries) => {
                let before = entries.len();
                entries.retain(|(k, _)| k != key);
                entries.len() != before
            }
            Probe::Known(serde_json::Value::Object(map)) => map.remove(key).is_some(),
            _ => false,
        }
    }

    /// True when some value in this subtree is not known before the run.
    pub fn has_unknown(&self) -> bool {
        match self {
            Probe::Known(_) => false,
            Probe::Unknown => true,
            Probe::Array(items) => items.iter().any(Probe::has_unknown),
            Probe::Object(entries) => entries.iter().any(|(_, v)| v.has_unknown()),
        }
    }

    /// True when the dotted `key` (`a.b`) leads into a value not known before the run.
    pub fn is_unknown_key(&self, key: &str) -> bool {
        let mut node = self;
        for part in key.split('.').filter(|p| !p.is_empty()) {
            node = match node {
                Probe::Unknown => return true,
                Probe::Object(entries) => match entries.iter().find(|(k, _)| k == part) {
                    Some((_, v)) => v,
                    None => return false,
                },
                _ => return false,
            };
        }
        matches!(node, Probe::Unknown)
    }

    /// True when `path` (as reported by serde_path_to_error) leads into an unknown value, so an
    /// error there says nothing about the DAG file.
    pub fn is_unknown_at(&self, path: &Path) -> bool {
        let mut node = self;
        for segment in path {
            if matches!(node, Probe::Unknown) {
                return true;
            }
            node = match (node, segment) {
                (Probe::Array(items), Segment::Seq { index }) => match items.get(*index) {
                    Some(n) => n,
                    None => return false,
                },
                (Probe::Object(entries), Segment::Map { key }) => {
                    match entries.iter().find(|(k, _)| k == key) {
                        Some((_, n)) => n,
                        None => return false,
                    }
                }
                _ => return false,
            };
        }
        matches!(node, Probe::Unknown)
    }
}

/// Deserializes a [`Probe`]; see the module docs.
pub struct ProbeDeserializer<'a>(&'a Probe);

impl<'a> ProbeDeserializer<'a> {
    pub fn new(probe: &'a Probe) -> Self {
        ProbeDeserializer(probe)
    }
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for ProbeDeserializer<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

type Error = serde_json::Error;

/// For a known value, defer to serde_json; for an unknown one, produce `$neutral`; containers
/// go through `deserialize_any`.
macro_rules! probe_method {
    ($method:ident, |$v:ident| $neutral:expr) => {
        fn $method<V: Visitor<'de>>(self, $v: V) -> Result<V::Value, Error> {
            match self.0 {
                Probe::Known(value) => value.$method($v),
                Probe::Unknown => $neutral,
                _ => self.deserialize_any($v),
            }
        }
    };
}

impl<'de> Deserializer<'de> for ProbeDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Probe::Known(value) => value.deserialize_any(visitor),
            Probe::Unknown => visitor.visit_unit(),
            Probe::Array(items) => {
                visitor.visit_seq(SeqDeserializer::new(items.iter().map(ProbeDeserializer)))
            }
            // Known entries first: serde stops at the first error, and an error inside an
            // unknown value is excused, so it must not hide a real error beside it.
            Probe::Object(entries) => visitor.visit_map(MapDeserializer::new(
                entries
                    .iter()
                    .filter(|(_, v)| !v.has_unknown())
                    .chain(entries.iter().filter(|(_, v)| v.has_unknown()))
                    .map(|(k, v)| (k.as_str(), ProbeDeserializer(v))),
            )),
        }
    }

    probe_method!(deserialize_bool, |v| v.visit_bool(false));
    probe_method!(deserialize_i8, |v| v.visit_i8(0));
    probe_method!(deserialize_i16, |v| v.visit_i16(0));
    probe_method!(deserialize_i32, |v| v.visit_i32(0));
    probe_method!(deserialize_i64, |v| v.visit_i64(0));
    probe_method!(deserialize_u8, |v| v.visit_u8(0));
    probe_method!(deserialize_u16, |v| v.visit_u16(0));
    probe_method!(deserialize_u32, |v| v.visit_u32(0));
    probe_method!(deserialize_u64, |v| v.visit_u64(0));
    probe_method!(deserialize_f32, |v| v.visit_f32(0.0));
    probe_method!(deserialize_f64, |v| v.visit_f64(0.0));
    probe_method!(deserialize_char, |v| v.visit_char(' '));
    probe_method!(deserialize_str, |v| v.visit_str(""));
    probe_method!(deserialize_string, |v| v.visit_string(String::new()));
    probe_method!(deserialize_bytes, |v| v.visit_bytes(&[]));
    probe_method!(deserialize_byte_buf, |v| v.visit_byte_buf(Vec::new()));
    probe_method!(deserialize_unit, |v| v.visit_unit());
    probe_method!(deserialize_seq, |v| v.visit_seq(SeqDeserializer::<
        std::iter::Empty<ProbeDeserializer<'de>>,
        Error,
    >::new(
        std::iter::empty()
    )));
    probe_method!(deserialize_map, |v| v.visit_map(MapDeserializer::<
        std::iter::Empty<(&str, ProbeDeserializer<'de>)>,
        Error,
    >::new(
        std::iter::empty()
    )));
    probe_method!(deserialize_identifier, |v| v.visit_str(""));
    probe_method!(deserialize_ignored_any, |v| v.visit_unit());

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Probe::Known(value) => value.deserialize_option(visitor),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Probe::Known(value) => value.deserialize_unit_struct(name, visitor),
            Probe::Unknown => visitor.visit_unit(),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Probe::Known(value) => value.deserialize_newtype_struct(name, visitor),
            _ => visitor.visit_newtype_struct(self),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Probe::Known(value) => value.deserialize_tuple(len, visitor),
            Probe::Unknown => visitor.visit_seq(SeqDeserializer::new(
                std::iter::repeat_n(&Probe::Unknown, len).map(ProbeDeserializer),
            )),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Probe::Known(value) => value.deserialize_tuple_struct(name, len, visitor),
            _ => self.deserialize_tuple(len, visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Probe::Known(value) => value.deserialize_struct(name, fields, visitor),
            // Every field present and itself unknown, so nested structs are filled too.
            Probe::Unknown => visitor.visit_map(MapDeserializer::new(
                fields
                    .iter()
                    .map(|f| (*f, ProbeDeserializer(&Probe::Unknown))),
            )),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Probe::Known(value) => value.deserialize_enum(name, variants, visitor),
            Probe::Unknown => {
                let first: StrDeserializer<'_, Error> =
                    variants.first().copied().unwrap_or("").into_deserializer();
                visitor.visit_enum(first)
            }
            Probe::Object(entries) if entries.len() == 1 => {
                let (variant, value) = &entries[0];
                visitor.visit_enum(MapAccessDeserializer::new(MapDeserializer::new(
                    std::iter::once((variant.as_str(), ProbeDeserializer(value))),
                )))
            }
            _ => Err(de::Error::custom(format!(
                "expected one of: {}",
                variants.join(", ")
            ))),
        }
    }

    fn is_human_readable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
        label: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        threshold: f64,
        enabled: bool,
        inner: Inner,
        tags: Vec<String>,
        maybe: Option<Inner>,
        #[serde(default)]
        mode: Mode,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        #[default]
        Fast,
        Slow,
    }

    fn check(p: &Probe) -> Result<(), String> {
        match serde_path_to_error::deserialize::<_, Cfg>(ProbeDeserializer::new(p)) {
            Ok(_) => Ok(()),
            Err(e)
                if p.is_unknown_at(e.path())
                    && !e.inner().to_string().starts_with("unknown field") =>
            {
                Ok(())
            }
            Err(e) => Err(format!("{}: {}", e.path(), e.inner())),
        }
    }

    fn obj(entries: Vec<(&str, Probe)>) -> Probe {
        Probe::Object(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    #[test]
    fn unknown_values_satisfy_any_type() {
        let p = obj(vec![
            ("threshold", Probe::Unknown),
            ("enabled", Probe::Known(json!(true))),
            ("inner", Probe::Unknown),
            ("tags", Probe::Array(vec![Probe::Unknown])),
            ("maybe", Probe::Unknown),
            ("mode", Probe::Unknown),
        ]);
        assert_eq!(check(&p), Ok(()));
    }

    #[test]
    fn known_values_are_still_checked_next_to_unknown_ones() {
        let p = obj(vec![
            ("threshold", Probe::Unknown),
            ("enabled", Probe::Known(json!("yes"))),
            ("inner", Probe::Unknown),
            ("tags", Probe::Known(json!([]))),
            ("maybe", Probe::Known(json!(null))),
        ]);
        let err = check(&p).unwrap_err();
        assert!(
            err.starts_with("enabled: invalid type: string \"yes\""),
            "{err}"
        );

        let p = obj(vec![
            ("threshold", Probe::Known(json!(1.5))),
            ("enabled", Probe::Unknown),
            (
                "inner",
                obj(vec![("n", Probe::Unknown), ("lable", Probe::Unknown)]),
            ),
            ("tags", Probe::Known(json!([]))),
            ("maybe", Probe::Known(json!(null))),
        ]);
        let err = check(&p).unwrap_err();
        assert!(
            err.starts_with("inner.lable: unknown field `lable`"),
            "{err}"
        );

        let p = obj(vec![
            ("threshold", Probe::Unknown),
            ("enabled", Probe::Unknown),
        ]);
        let err = check(&p).unwrap_err();
        assert!(err.contains("missing field `inner`"), "{err}");

        let p = obj(vec![
            ("threshold", Probe::Known(json!(1))),
            ("enabled", Probe::Known(json!(false))),
            ("inner", Probe::Known(json!({"n": 1, "label": "x"}))),
            ("tags", Probe::Known(json!([]))),
            ("maybe", Probe::Known(json!(null))),
            ("mode", Probe::Known(json!("medium"))),
        ]);
        let err = check(&p).unwrap_err();
        assert!(err.starts_with("mode: unknown variant `medium`"), "{err}");
    }
}
