//! serde from the located tree: typed values are deserialized from parts of
//! the tree, and every error carries the location of the node it is about.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::tree::{Node, NodeKind};
use crate::diagnostic::suggest;
use crate::located::{LOCATED_MARKER, Loc};

/// An error from deserializing a typed value out of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    /// Where the offending value is; `None` until a node claims it.
    pub loc: Option<Loc>,
    /// What is wrong.
    pub message: String,
    /// What to do instead: the expected values, a did-you-mean.
    pub help: Option<String>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            loc: None,
            message: msg.to_string(),
            help: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            loc: None,
            message: format!("unknown field `{field}`"),
            help: Some(suggest(field, expected.iter().copied(), "field")),
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            loc: None,
            message: format!("unknown value `{variant}`"),
            help: Some(suggest(variant, expected.iter().copied(), "value")),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            loc: None,
            message: format!("missing field `{field}`"),
            help: None,
        }
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError {
            loc: None,
            message: format!("field `{field}` is given twice"),
            help: None,
        }
    }
}

impl DeError {
    fn at(mut self, loc: Loc) -> Self {
        if self.loc.is_none() {
            self.loc = Some(loc);
        }
        self
    }

    /// Names the field when the error is about the field's whole value
    /// (`retries: three`), so that a message about a value in a flow mapping
    /// or deep in a step still says which key it belongs to. Errors about a
    /// key inside the value (an unknown field) already show that key.
    pub(crate) fn in_field(mut self, name: &str, value_loc: Loc) -> Self {
        // "`name`: ..." already says which field it is about.
        let named = self
            .message
            .strip_prefix('`')
            .and_then(|rest| rest.split_once("`: "))
            .is_some_and(|(name, _)| !name.contains('`'));
        if self.loc == Some(value_loc) && !named && !self.message.starts_with("unknown field") {
            self.message = format!("`{name}`: {}", self.message);
        }
        self
    }
}

/// Deserializes a typed value from a node; errors carry the location of the
/// node they are about.
pub fn from_node<'a, T: Deserialize<'a>>(node: &'a Node) -> Result<T, DeError> {
    T::deserialize(node).map_err(|error| error.at(node.loc))
}

struct LocatedAccess<'a> {
    node: &'a Node,
    state: u8,
}

impl<'de, 'a: 'de> SeqAccess<'de> for LocatedAccess<'a> {
    type Error = DeError;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DeError> {
        self.state += 1;
        match self.state {
            1 => seed
                .deserialize(self.node.loc.line.into_deserializer())
                .map(Some),
            2 => seed
                .deserialize(self.node.loc.column.into_deserializer())
                .map(Some),
            3 => seed.deserialize(self.node).map(Some),
            _ => Ok(None),
        }
    }
}

struct NodeSeq<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de, 'a: 'de> SeqAccess<'de> for NodeSeq<'a> {
    type Error = DeError;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DeError> {
        match self.items.next() {
            Some(item) => seed
                .deserialize(item)
                .map(Some)
                .map_err(|error| error.at(item.loc)),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct NodeMap<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    /// The entry whose key was read last.
    entry: Option<&'a (Node, Node)>,
}

impl<'de, 'a: 'de> MapAccess<'de> for NodeMap<'a> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some(entry) => {
                self.entry = Some(entry);
                let key = &entry.0;
                seed.deserialize(key)
                    .map(Some)
                    .map_err(|error| error.at(key.loc))
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, value) = self
            .entry
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("a value without a key"))?;
        seed.deserialize(value).map_err(|error| match key.as_str() {
            Some(name) => error.at(value.loc).in_field(name, value.loc),
            None => error.at(value.loc),
        })
    }
}

struct NodeEnum<'a> {
    variant: &'a Node,
    value: Option<&'a Node>,
}

impl<'de, 'a: 'de> de::EnumAccess<'de> for NodeEnum<'a> {
    type Error = DeError;
    type Variant = NodeVariant<'a>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeVariant<'a>), DeError> {
        let variant = seed
            .deserialize(self.variant)
            .map_err(|error| error.at(self.variant.loc))?;
        Ok((
            variant,
            NodeVariant {
                value: self.value,
                loc: self.variant.loc,
                name: self.variant.as_str(),
            },
        ))
    }
}

struct NodeVariant<'a> {
    value: Option<&'a Node>,
    loc: Loc,
    /// The variant as written, for messages.
    name: Option<&'a str>,
}

impl<'de, 'a: 'de> de::VariantAccess<'de> for NodeVariant<'a> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            None => Ok(()),
            Some(node) if node.kind == NodeKind::Null => Ok(()),
            Some(node) => Err(DeError {
                loc: Some(node.loc),
                message: format!("expected no value here, found {}", node.describe()),
                help: None,
            }),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        match self.value {
            Some(node) => seed.deserialize(node).map_err(|error| error.at(node.loc)),
            // `target: kind`: the name alone, without the settings it needs.
            None => Err(DeError {
                loc: Some(self.loc),
                message: match self.name {
                    Some(name) => {
                        format!("`{name}` needs its settings below it, as `{name}: {{...}}`")
                    }
                    None => "expected a value".into(),
                },
                help: None,
            }),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Some(node) => de::Deserializer::deserialize_seq(node, visitor),
            None => Err(DeError {
                loc: Some(self.loc),
                message: "expected a list".into(),
                help: None,
            }),
        }
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            Some(node) => de::Deserializer::deserialize_map(node, visitor),
            None => Err(DeError {
                loc: Some(self.loc),
                message: "expected a mapping".into(),
                help: None,
            }),
        }
    }
}

fn wrong_type(node: &Node, expected: &str) -> DeError {
    let help = match (&node.kind, expected) {
        (NodeKind::Str(value), "a list") => {
            Some(format!("write it as a list, even of one: `[{value}]`"))
        }
        (NodeKind::Seq(_) | NodeKind::Map(_), "a string") => Some(
            "write it as one string; quote it (`\"...\"`) if it starts with `[`, `{`, `*` or `&`, or contains `: `"
                .to_owned(),
        ),
        _ => None,
    };
    DeError {
        loc: Some(node.loc),
        message: format!("expected {expected}, found {}", node.describe()),
        help,
    }
}

impl<'de, 'a: 'de> de::Deserializer<'de> for &'a Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(value) => visitor.visit_bool(*value),
            NodeKind::Int(value) => visitor.visit_i64(*value),
            NodeKind::Float(value) => visitor.visit_f64(*value),
            NodeKind::Str(value) => visitor.visit_borrowed_str(value),
            NodeKind::Seq(items) => visitor.visit_seq(NodeSeq {
                items: items.iter(),
            }),
            NodeKind::Map(entries) => visitor.visit_map(NodeMap {
                entries: entries.iter(),
                entry: None,
            }),
        };
        result.map_err(|error| error.at(self.loc))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind {
            NodeKind::Bool(value) => visitor.visit_bool(value),
            _ => Err(wrong_type(self, "`true` or `false`")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Drills write `PORT: 8080` and mean the string "8080": scalars are
        // accepted as their text wherever a string is expected.
        match &self.kind {
            NodeKind::Str(value) => visitor.visit_borrowed_str(value),
            _ => match self.scalar_text() {
                Some(text) => visitor.visit_string(text),
                None => Err(wrong_type(self, "a string")),
            },
        }
        .map_err(|error| error.at(self.loc))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.kind {
            NodeKind::Str(value) => visitor.visit_borrowed_str(value),
            _ => Err(wrong_type(self, "a name")),
        }
        .map_err(|error| error.at(self.loc))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // A key that is present is `Some`, even when empty: `delete_cluster:`
        // names a fault without fields, and an empty `description:` is a
        // mistake worth reporting rather than silently ignoring.
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Map(entries) if entries.is_empty() => visitor.visit_unit(),
            _ => Err(wrong_type(self, "nothing (this key takes no fields)")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == LOCATED_MARKER {
            return visitor.visit_seq(LocatedAccess {
                node: self,
                state: 0,
            });
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.kind {
            NodeKind::Seq(items) => visitor.visit_seq(NodeSeq {
                items: items.iter(),
            }),
            _ => Err(wrong_type(self, "a list")),
        }
        .map_err(|error| error.at(self.loc))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.kind {
            NodeKind::Map(entries) => visitor.visit_map(NodeMap {
                entries: entries.iter(),
                entry: None,
            }),
            // `fault: {delete_cluster: }` style: an empty value is an empty map.
            NodeKind::Null => visitor.visit_map(NodeMap {
                entries: [].iter(),
                entry: None,
            }),
            _ => Err(wrong_type(self, "a mapping")),
        }
        .map_err(|error| error.at(self.loc))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.kind {
            NodeKind::Str(_) => visitor.visit_enum(NodeEnum {
                variant: self,
                value: None,
            }),
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                visitor.visit_enum(NodeEnum {
                    variant: key,
                    value: Some(value),
                })
            }
            _ => Err(wrong_type(self, "a name, or a mapping with one key")),
        }
        .map_err(|error| error.at(self.loc))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind {
            NodeKind::Int(value) if value >= 0 => visitor.visit_u64(value as u64),
            _ => Err(wrong_type(self, "a whole number, 0 or more")),
        }
        .map_err(|error| error.at(self.loc))
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind {
            NodeKind::Int(value) => visitor.visit_i64(value),
            _ => Err(wrong_type(self, "a whole number")),
        }
        .map_err(|error| error.at(self.loc))
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind {
            NodeKind::Int(value) => visitor.visit_f64(value as f64),
            NodeKind::Float(value) => visitor.visit_f64(value),
            _ => Err(wrong_type(self, "a number")),
        }
        .map_err(|error| error.at(self.loc))
    }

    serde::forward_to_deserialize_any! { i128 u128 char bytes byte_buf }
}

#[cfg(test)]
mod tests {
    use super::super::tree::parse;
    use super::*;
    use crate::located::Located;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Step {
        id: Located<String>,
        retries: Option<u32>,
        #[serde(default)]
        needs: Vec<String>,
        description: Option<String>,
    }

    fn step(text: &str) -> Result<Step, DeError> {
        let root = parse(text).expect("valid YAML");
        from_node(&root)
    }

    #[test]
    fn values_keep_their_location() {
        let step = step("id: restore\nneeds: [a, b]\n").expect("a step");
        assert_eq!(step.id.value, "restore");
        assert_eq!(step.id.loc, Loc { line: 1, column: 5 });
        assert_eq!(step.needs, ["a", "b"]);
        assert_eq!(step.retries, None);
    }

    #[test]
    fn a_wrong_type_is_located_at_the_value_and_names_the_field() {
        let error = step("id: x\nretries: three\n").expect_err("not a number");
        assert_eq!(
            error.loc,
            Some(Loc {
                line: 2,
                column: 10
            })
        );
        assert_eq!(
            error.message,
            "`retries`: expected a whole number, 0 or more, found the string `three`"
        );
        let error = step("id: x\nneeds: a\n").expect_err("not a list");
        assert_eq!(
            error.help.as_deref(),
            Some("write it as a list, even of one: `[a]`")
        );
    }

    #[test]
    fn an_unknown_field_is_located_at_its_key_with_a_suggestion() {
        let error = step("id: x\nretires: 2\n").expect_err("unknown field");
        assert_eq!(error.loc, Some(Loc { line: 2, column: 1 }));
        assert_eq!(error.message, "unknown field `retires`");
        assert!(
            error
                .help
                .as_deref()
                .is_some_and(|help| help.starts_with("did you mean `retries`?")),
            "{error:?}"
        );
    }

    #[test]
    fn scalars_are_strings_where_strings_are_expected_and_empty_keys_are_present() {
        let step = step("id: 8080\ndescription:\n").expect_err("an empty description");
        // `description:` is present, so it is `Some`, and an empty value is not a string.
        assert_eq!(step.loc.map(|loc| loc.line), Some(2));
        assert!(step.message.contains("found nothing"), "{step:?}");
        let root = parse("id: 8080\n").expect("valid YAML");
        let parsed: Step = from_node(&root).expect("a number is a string id");
        assert_eq!(parsed.id.value, "8080");
    }
}
