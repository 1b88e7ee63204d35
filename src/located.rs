//! Values as the user wrote them in a file, with where they were written:
//! the vocabulary the drill format, its validation and the targets' faults
//! share. The YAML layer (`drill::yaml`) fills in the locations.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// A position in a drill file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Loc {
    /// Line, from 1; 0 when unknown.
    pub line: u32,
    /// Column in characters, from 1; 0 when unknown.
    pub column: u32,
}

/// The newtype name through which [`Located`] asks for its node's location.
pub(crate) const LOCATED_MARKER: &str = "__firedrill_located";

/// A value with the location it came from in the drill file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub loc: Loc,
}

impl<T> Located<T> {
    /// A value made in code, with no location.
    pub fn new(value: T) -> Self {
        Located {
            value,
            loc: Loc::default(),
        }
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LocatedVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for LocatedVisitor<T> {
            type Value = Located<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a located value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Located<T>, A::Error> {
                let line: u32 = seq.next_element()?.unwrap_or_default();
                let column: u32 = seq.next_element()?.unwrap_or_default();
                let value = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("located value without a value"))?;
                Ok(Located {
                    value,
                    loc: Loc { line, column },
                })
            }
        }
        deserializer
            .deserialize_newtype_struct(LOCATED_MARKER, LocatedVisitor(std::marker::PhantomData))
    }
}

impl<T: serde::Serialize> serde::Serialize for Located<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Located<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// One name or a list of names: `service: etcd-2` or `service: [etcd-2, etcd-3]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OneOrMany(pub Vec<Located<String>>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read through `Located` so that a single name keeps its location.
        let located = Located::<OneOrManyRaw>::deserialize(deserializer)?;
        let mut names = located.value.0;
        if let [only] = names.as_mut_slice()
            && only.loc == Default::default()
        {
            only.loc = located.loc;
        }
        Ok(OneOrMany(names))
    }
}

impl OneOrMany {
    /// The names as plain strings.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|name| name.value.clone()).collect()
    }
}

struct OneOrManyRaw(Vec<Located<String>>);

impl<'de> Deserialize<'de> for OneOrManyRaw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;
        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrManyRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<OneOrManyRaw, E> {
                Ok(OneOrManyRaw(vec![Located::new(value.to_owned())]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrManyRaw, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<Located<String>>()? {
                    names.push(name);
                }
                Ok(OneOrManyRaw(names))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

impl JsonSchema for OneOrMany {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OneOrMany".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        })
    }
}

/// One problem in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where; line 0 when the problem is about the whole file.
    pub loc: Loc,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Problem {
    /// A problem at `loc`.
    pub fn at(loc: Loc, message: impl Into<String>) -> Problem {
        Problem {
            loc,
            message: message.into(),
            help: None,
        }
    }

    /// Adds what to do.
    pub fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }
}
