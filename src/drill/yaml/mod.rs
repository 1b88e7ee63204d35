//! YAML to a located node tree, and serde from that tree.
//!
//! Drills are parsed in two passes. serde-saphyr turns the text into a tree of
//! [`Node`]s, each knowing its line and column, under limits that stop alias
//! bombs and deep nesting before they cost anything ([`tree`]). Typed values
//! are then deserialized from parts of that tree ([`from_node`], in [`de`]);
//! because each part is deserialized on its own, one bad step does not hide
//! the problems of the next, and every error carries the location of the node
//! it is about.

pub mod de;
pub mod tree;

pub use de::{DeError, from_node};
pub use tree::{
    DuplicateKey, MAX_INPUT_BYTES, Node, NodeKind, SyntaxError, parse, remove_duplicate_keys,
};
// Located values are the vocabulary the drill and the targets share; this
// layer fills in their locations.
pub use crate::located::{Loc, Located};
// The one did-you-mean, here too because the drill's checks use it with the tree.
pub use crate::diagnostic::{closest, suggest};
