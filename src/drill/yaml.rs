//! YAML to a located node tree, and serde from that tree.
//!
//! Drills are parsed in two passes. serde-saphyr turns the text into a tree of
//! [`Node`]s, each knowing its line and column, under budgets that stop alias
//! bombs and deep nesting before they cost anything. Typed values are then
//! deserialized from parts of that tree ([`from_node`]); because each part is
//! deserialized on its own, one bad step does not hide the problems of the
//! next, and every error carries the location of the node it is about.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A position in a drill file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Loc {
    /// Line, from 1; 0 when unknown.
    pub line: u32,
    /// Column in characters, from 1; 0 when unknown.
    pub column: u32,
}

impl Loc {
    fn from_saphyr(location: serde_saphyr::Location) -> Loc {
        Loc {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
        }
    }
}

/// A YAML value with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub loc: Loc,
    /// The value.
    pub kind: NodeKind,
}

/// The shape of a YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order; keys are nodes so that they keep their location.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// What kind of value this is, for messages: "a string", "a list", ...
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Null => "nothing (null)".into(),
            NodeKind::Bool(value) => format!("the boolean `{value}`"),
            NodeKind::Int(value) => format!("the number `{value}`"),
            NodeKind::Float(value) => format!("the number `{value:?}`"),
            NodeKind::Str(value) => format!("the string `{}`", shorten(value)),
            NodeKind::Seq(_) => "a list".into(),
            NodeKind::Map(_) => "a mapping".into(),
        }
    }

    /// The string value of a scalar key or value.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(value) => Some(value),
            _ => None,
        }
    }

    /// The entries of a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Text of a scalar as a user would have written it.
    fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            NodeKind::Str(value) => Some(value.clone()),
            NodeKind::Int(value) => Some(value.to_string()),
            NodeKind::Float(value) => Some(value.to_string()),
            NodeKind::Bool(value) => Some(value.to_string()),
            _ => None,
        }
    }
}

fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short.replace('\n', "\\n")
}

// serde-saphyr records locations through its `Spanned` wrapper, so a node is
// read as a `Spanned<NodeKind>` and every child again as a `Node`.
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<NodeKind>::deserialize(deserializer)?;
        Ok(Node {
            loc: Loc::from_saphyr(spanned.referenced),
            kind: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl<'de> Visitor<'de> for KindVisitor {
            type Value = NodeKind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<NodeKind, E> {
                Ok(NodeKind::Null)
            }
            fn visit_none<E>(self) -> Result<NodeKind, E> {
                Ok(NodeKind::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
                NodeKind::deserialize(d)
            }
            fn visit_bool<E>(self, value: bool) -> Result<NodeKind, E> {
                Ok(NodeKind::Bool(value))
            }
            fn visit_i64<E>(self, value: i64) -> Result<NodeKind, E> {
                Ok(NodeKind::Int(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<NodeKind, E> {
                i64::try_from(value)
                    .map(NodeKind::Int)
                    .map_err(|_| E::custom(format!("the number {value} is too large")))
            }
            fn visit_f64<E>(self, value: f64) -> Result<NodeKind, E> {
                Ok(NodeKind::Float(value))
            }
            fn visit_str<E>(self, value: &str) -> Result<NodeKind, E> {
                Ok(NodeKind::Str(value.to_owned()))
            }
            fn visit_string<E>(self, value: String) -> Result<NodeKind, E> {
                Ok(NodeKind::Str(value))
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<NodeKind, E> {
                Err(E::custom("binary values are not supported in drills"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(NodeKind::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Node>()? {
                    let value = map.next_value::<Node>()?;
                    entries.push((key, value));
                }
                Ok(NodeKind::Map(entries))
            }
        }
        deserializer.deserialize_any(KindVisitor)
    }
}

/// The largest drill file: the one limit on a drill's size. Everything else
/// the parser may allocate is bounded by it (values per byte), by the nesting
/// depth and by the alias expansion limits below.
pub const MAX_INPUT_BYTES: usize = 8 * 1024 * 1024;
/// The deepest nesting of mappings and sequences.
const MAX_DEPTH: usize = 64;
/// Values that `*alias` references may add, in all: aliases are the one way a
/// small file becomes a large tree.
const MAX_ALIAS_EXPANSION: usize = 100_000;
/// How often one `&anchor` may be referred to.
const MAX_ALIAS_USES_PER_ANCHOR: usize = 100;

/// A YAML syntax or budget error, located.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub loc: Loc,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

const SYNTAX_HELP: &str =
    "fix the YAML syntax first; the rest of the file is checked once it parses";

/// Parses YAML text into a located node tree.
///
/// More than one document, aliases expanded past [`MAX_ALIAS_EXPANSION`]
/// values, nesting deeper than 64 levels and inputs over [`MAX_INPUT_BYTES`]
/// are errors. Duplicate keys are
/// kept in the tree; [`remove_duplicate_keys`] reports and drops them, so
/// that they do not stop the rest of the file from being checked.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(SyntaxError {
            loc: Loc::default(),
            message: format!(
                "the file is {} bytes; the limit on a drill file is {MAX_INPUT_BYTES} bytes ({} MiB)",
                text.len(),
                MAX_INPUT_BYTES / (1024 * 1024)
            ),
            help: "is this the right file? split a drill this large into several drills".into(),
        });
    }
    if text.trim().is_empty() {
        return Err(SyntaxError {
            loc: Loc { line: 1, column: 1 },
            message: "the file is empty".into(),
            help: "a drill starts with `version: 1`, `name: ...`, `objectives: {rto: ...}` and `steps:`; \
                   `firedrill schema` prints the whole format"
                .into(),
        });
    }
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget(text.len()));
    // Duplicates are reported by `remove_duplicate_keys`, with both locations.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.alias_limits = alias_limits();
    options.with_snippet = false;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serde_saphyr::from_str_with_options::<Node>(text, options)
    }));
    match result {
        Ok(Ok(node)) => Ok(node),
        Ok(Err(error)) => {
            let (message, help) = explain_saphyr_error(&error);
            Err(SyntaxError {
                loc: error.location().map(Loc::from_saphyr).unwrap_or_default(),
                message,
                help,
            })
        }
        // The parser is meant to be panic-free; if it is not, the user still
        // gets a located-as-possible error and exit 2, never a crash.
        Err(_) => Err(SyntaxError {
            loc: Loc::default(),
            message: "the YAML parser could not read this file".into(),
            help: SYNTAX_HELP.into(),
        }),
    }
}

/// The parser's budget for `input_bytes` of text. Without aliases YAML
/// cannot hold more than about one value (node or event) per byte, so counts
/// scale with the input instead of capping a drill at some number of steps;
/// the constants only leave room for what aliases may add.
fn budget(input_bytes: usize) -> serde_saphyr::Budget {
    let values = input_bytes
        .saturating_mul(2)
        .saturating_add(MAX_ALIAS_EXPANSION)
        .saturating_add(1024);
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    budget.max_documents = 1;
    budget.max_events = values;
    budget.max_nodes = values;
    budget.max_aliases = MAX_ALIAS_EXPANSION;
    budget.max_anchors = MAX_ALIAS_EXPANSION;
    // Text in the file is at most MAX_INPUT_BYTES; the rest is aliases
    // repeating long scalars.
    budget.max_total_scalar_bytes = MAX_INPUT_BYTES * 2;
    budget
}

fn alias_limits() -> serde_saphyr::options::AliasLimits {
    let mut limits = serde_saphyr::options::AliasLimits::default();
    limits.max_total_replayed_events = MAX_ALIAS_EXPANSION;
    limits.max_replay_stack_depth = 16;
    limits.max_alias_expansions_per_anchor = MAX_ALIAS_USES_PER_ANCHOR;
    limits
}

/// serde-saphyr's message, said in terms of a drill, and what to do.
fn explain_saphyr_error(error: &serde_saphyr::Error) -> (String, String) {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let mut inner = error;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = inner {
        inner = error;
    }
    let alias_bomb = || {
        (
            format!("YAML aliases (`*name`) here expand past the limit of {MAX_ALIAS_EXPANSION} values, or {MAX_ALIAS_USES_PER_ANCHOR} uses of one anchor (an alias bomb)"),
            "write the values out, or use fewer `&anchor` / `*alias` pairs; firedrill stops expanding aliases long before they cost memory"
                .to_owned(),
        )
    };
    let too_deep = || {
        (
            format!("the YAML is nested more than {MAX_DEPTH} levels deep"),
            "a drill is a few levels deep; look for unclosed `[` or `{`, or check that this is the right file".to_owned(),
        )
    };
    match inner {
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => alias_bomb(),
        E::RecursiveReferencesRequireWeakTypes { .. } => (
            "an alias (`*name`) refers to the anchor it is inside, so the value would never end"
                .to_owned(),
            "point the alias at an anchor defined before and outside it".to_owned(),
        ),
        E::Budget { breach, .. } => match breach {
            B::Depth { .. } => too_deep(),
            B::Documents { .. } => (
                "the file holds more than one YAML document (`---`)".to_owned(),
                "put each drill in its own file; `firedrill validate DIR` checks them all"
                    .to_owned(),
            ),
            B::Aliases { .. }
            | B::Anchors { .. }
            | B::AliasAnchorRatio { .. }
            | B::RecordedAnchorEvents { .. }
            | B::RecordedAnchorBytes { .. } => alias_bomb(),
            // Counts that scale with the input: only aliases can reach them.
            B::Events { .. } | B::Nodes { .. } | B::ScalarBytes { .. } => alias_bomb(),
            _ => (
                format!(
                    "the file holds more than a drill of its size can (the limit is {MAX_INPUT_BYTES} bytes of text)"
                ),
                "is this the right file? a drill is a YAML text".to_owned(),
            ),
        },
        _ => {
            let message = clean_saphyr_message(&error.without_snippet().to_string());
            if message.contains("recursion limit") {
                too_deep()
            } else {
                let help = syntax_help(&message).to_owned();
                (message, help)
            }
        }
    }
}

/// What to do about the YAML syntax errors people make most.
fn syntax_help(message: &str) -> &'static str {
    let has = |text: &str| message.contains(text);
    if has("tab") {
        "YAML indents with spaces only: replace the tabs at the start of this line with spaces"
    } else if has("mapping values are not allowed") {
        "a `: ` here starts another key: quote a value that contains `: ` (`run: \"echo a: b\"`), \
         or indent this line like the other keys of its mapping"
    } else if has("quote") {
        "the quoted string that starts here is never closed: add the closing quote"
    } else if has("flow mapping") || has("brace") {
        "a `{` before this point is not closed: look for a missing `}` or `,` on the lines above"
    } else if has("flow sequence") || has("bracket") {
        "a `[` before this point is not closed: look for a missing `]` or `,` on the lines above"
    } else if has("block collection") || has("block mapping") || has("indent") {
        "check the indentation: the keys of one mapping, and the `-` items of one list, start in the same column"
    } else if has("anchor") {
        "define the anchor with `&name` before using `*name`, or quote the value if the `*` is meant literally"
    } else if has("unexpected character") {
        "YAML reserves `@` and `` ` `` at the start of a value and allows no control characters: \
         quote the value (`\"...\"`), or remove the character"
    } else {
        SYNTAX_HELP
    }
}

fn clean_saphyr_message(message: &str) -> String {
    // serde-saphyr appends " at line X column Y"; the location is rendered separately.
    let first = message.lines().next().unwrap_or(message).trim();
    let first = match first.rfind(" at line ") {
        Some(index) => &first[..index],
        None => first,
    };
    // It quotes a character as `c' (TeX style); every other message uses `c`.
    match first.strip_prefix("unexpected character: `") {
        Some(quoted) => format!("unexpected character `{}`", quoted.trim_end_matches('\'')),
        None => first.to_owned(),
    }
}

/// A key written twice in one mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateKey {
    /// The key as written.
    pub key: String,
    /// Where it is first written (the entry that is kept).
    pub first: Loc,
    /// Where it is written again.
    pub again: Loc,
}

/// Drops every later occurrence of a key in each mapping of the tree, and
/// returns them; the first occurrence is kept so the rest of the file can
/// still be checked.
pub fn remove_duplicate_keys(node: &mut Node) -> Vec<DuplicateKey> {
    let mut found = Vec::new();
    remove_duplicates_into(node, &mut found);
    found
}

fn remove_duplicates_into(node: &mut Node, found: &mut Vec<DuplicateKey>) {
    match &mut node.kind {
        NodeKind::Seq(items) => {
            for item in items {
                remove_duplicates_into(item, found);
            }
        }
        NodeKind::Map(entries) => {
            let mut kept: Vec<(Node, Node)> = Vec::with_capacity(entries.len());
            for (key, mut value) in std::mem::take(entries) {
                if let Some((first, _)) = kept.iter().find(|(k, _)| k.kind == key.kind) {
                    found.push(DuplicateKey {
                        key: key.scalar_text().unwrap_or_else(|| key.describe()),
                        first: first.loc,
                        again: key.loc,
                    });
                    continue;
                }
                remove_duplicates_into(&mut value, found);
                kept.push((key, value));
            }
            *entries = kept;
        }
        _ => {}
    }
}

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

// The one did-you-mean, here too because the drill's checks use it with the tree.
pub use crate::diagnostic::{closest, suggest};

/// Deserializes a typed value from a node; errors carry the location of the
/// node they are about.
pub fn from_node<'a, T: Deserialize<'a>>(node: &'a Node) -> Result<T, DeError> {
    T::deserialize(node).map_err(|error| error.at(node.loc))
}

/// The newtype name through which [`Located`] asks for its node's location.
const LOCATED_MARKER: &str = "__firedrill_located";

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
