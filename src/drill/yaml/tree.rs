//! YAML text to a tree of [`Node`]s, each knowing its line and column,
//! under limits that stop alias bombs and deep nesting before they cost
//! anything; and the duplicate keys of that tree.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::located::Loc;

/// The position serde-saphyr reports, as a [`Loc`].
fn loc_from_saphyr(location: serde_saphyr::Location) -> Loc {
    Loc {
        line: u32::try_from(location.line()).unwrap_or(u32::MAX),
        column: u32::try_from(location.column()).unwrap_or(u32::MAX),
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

    /// The value under `key` in a mapping node.
    pub fn map_value(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, value)| value)
    }

    /// The key node `key` in a mapping node (where a problem with the whole
    /// entry is reported).
    pub fn map_key(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(key, _)| key)
    }

    fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key))
    }

    /// Text of a scalar as a user would have written it.
    pub(super) fn scalar_text(&self) -> Option<String> {
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
            loc: loc_from_saphyr(spanned.referenced),
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
                loc: error.location().map(loc_from_saphyr).unwrap_or_default(),
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
            // String keys (nearly all) are looked up by name: a mapping with
            // many keys must not cost a scan of the kept ones per key.
            let mut by_name: HashMap<String, Loc> = HashMap::new();
            for (key, mut value) in std::mem::take(entries) {
                let first = match key.as_str() {
                    Some(name) => by_name.get(name).copied(),
                    None => kept
                        .iter()
                        .find(|(kept_key, _)| kept_key.kind == key.kind)
                        .map(|(kept_key, _)| kept_key.loc),
                };
                if let Some(first) = first {
                    found.push(DuplicateKey {
                        key: key.scalar_text().unwrap_or_else(|| key.describe()),
                        first,
                        again: key.loc,
                    });
                    continue;
                }
                if let Some(name) = key.as_str() {
                    by_name.insert(name.to_owned(), key.loc);
                }
                remove_duplicates_into(&mut value, found);
                kept.push((key, value));
            }
            *entries = kept;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(node: &Node) -> &[(Node, Node)] {
        node.as_map().expect("a mapping")
    }

    #[test]
    fn every_node_knows_its_line_and_column() {
        let root = parse("a: 1\nb:\n  - x\n  - {c: true}\n").expect("valid YAML");
        let map = entries(&root);
        assert_eq!(map[0].0.loc, Loc { line: 1, column: 1 });
        assert_eq!(map[0].1.kind, NodeKind::Int(1));
        assert_eq!(map[1].0.loc, Loc { line: 2, column: 1 });
        let NodeKind::Seq(items) = &map[1].1.kind else {
            panic!("a list: {:?}", map[1].1);
        };
        assert_eq!(items[0].loc, Loc { line: 3, column: 5 });
        assert_eq!(items[0].as_str(), Some("x"));
        assert_eq!(entries(&items[1])[0].1.kind, NodeKind::Bool(true));
    }

    #[test]
    fn size_is_limited_by_bytes_not_by_a_count_of_values() {
        // 300k values: more than the old fixed node budget allowed a drill.
        let values = 300_000;
        let text = format!("v: [{}1]", "1,".repeat(values - 1));
        let root = parse(&text).expect("a large but plain file parses");
        let NodeKind::Seq(items) = &entries(&root)[0].1.kind else {
            panic!("a list");
        };
        assert_eq!(items.len(), values);

        let too_big = format!("v: \"{}\"", "x".repeat(MAX_INPUT_BYTES));
        let error = parse(&too_big).expect_err("over the limit");
        assert!(
            error.message.contains(&MAX_INPUT_BYTES.to_string()),
            "the limit is named: {}",
            error.message
        );
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_stopped_and_the_limit_named() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, previous) in ["b", "c", "d", "e", "f", "g"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f"])
        {
            let refs = vec![format!("*{previous}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let error = parse(&bomb).expect_err("an alias bomb");
        assert!(error.message.contains("alias bomb"), "{}", error.message);
        assert!(
            error.message.contains(&MAX_ALIAS_EXPANSION.to_string()),
            "{}",
            error.message
        );

        let deep = format!(
            "v: {}{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let error = parse(&deep).expect_err("too deep");
        assert!(
            error.message.contains("nested more than"),
            "{}",
            error.message
        );
    }

    #[test]
    fn empty_files_and_several_documents_are_errors() {
        assert!(parse("  \n").expect_err("empty").message.contains("empty"));
        let error = parse("a: 1\n---\nb: 2\n").expect_err("two documents");
        assert!(
            error.message.contains("more than one YAML document"),
            "{}",
            error.message
        );
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_places_and_the_first_kept() {
        // Inner mappings are checked as they are kept, before later keys.
        let mut root = parse("a: 1\nb: {x: 1, x: 2}\na: 3\n").expect("valid YAML");
        let duplicates = remove_duplicate_keys(&mut root);
        assert_eq!(
            duplicates,
            [
                DuplicateKey {
                    key: "x".into(),
                    first: Loc { line: 2, column: 5 },
                    again: Loc {
                        line: 2,
                        column: 11
                    },
                },
                DuplicateKey {
                    key: "a".into(),
                    first: Loc { line: 1, column: 1 },
                    again: Loc { line: 3, column: 1 },
                },
            ]
        );
        let map = entries(&root);
        assert_eq!(map.len(), 2);
        assert_eq!(map[0].1.kind, NodeKind::Int(1));
    }
}
