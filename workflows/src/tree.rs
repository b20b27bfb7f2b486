//! A generic YAML tree with a source position on every key and value.
//!
//! serde-saphyr does the YAML work (syntax, anchors, duplicate keys, resource budgets) and gives
//! us `Spanned` positions; we deserialize into this untyped tree rather than straight into the
//! model so that the builder can report every problem in the file instead of serde's first one.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use serde_saphyr::{Location, Spanned};

use crate::diagnostics::{Diagnostic, Pos, code};

/// Workflow files are hand-written; anything larger is a mistake or an attack.
const MAX_SOURCE_BYTES: usize = 1024 * 1024;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub pos: Pos,
    pub node: Node,
}

/// A mapping key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub pos: Pos,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Sequence(Vec<Item>),
    /// Entries in source order; duplicate keys are already rejected by the YAML layer.
    Mapping(Vec<(Key, Item)>),
}

impl Node {
    /// The kind, as users see it in "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Sequence(_) => "a list",
            Node::Mapping(_) => "a mapping",
        }
    }
}

impl Item {
    /// The JSON equivalent (for schemas, action inputs and outputs).
    pub fn to_json(&self) -> Value {
        match &self.node {
            Node::Null => Value::Null,
            Node::Bool(value) => Value::Bool(*value),
            Node::Number(value) => Value::Number(value.clone()),
            Node::String(value) => Value::String(value.clone()),
            Node::Sequence(items) => items.iter().map(Item::to_json).collect(),
            Node::Mapping(entries) => entries
                .iter()
                .map(|(key, item)| (key.name.clone(), item.to_json()))
                .collect(),
        }
    }

    /// Every string in this subtree with its position, depth first in source order.
    pub fn strings(&self) -> Vec<(&str, Pos)> {
        let mut found = Vec::new();
        self.collect_strings(&mut found);
        found
    }

    fn collect_strings<'a>(&'a self, found: &mut Vec<(&'a str, Pos)>) {
        match &self.node {
            Node::String(text) => found.push((text, self.pos)),
            Node::Sequence(items) => items.iter().for_each(|item| item.collect_strings(found)),
            Node::Mapping(entries) => entries
                .iter()
                .for_each(|(_, item)| item.collect_strings(found)),
            Node::Null | Node::Bool(_) | Node::Number(_) => {}
        }
    }
}

/// Parses YAML text into a tree, or the located syntax error.
pub(crate) fn parse(source: &str) -> Result<Item, Diagnostic> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(syntax_error(
            Pos::START,
            format!("the file is larger than {MAX_SOURCE_BYTES} bytes"),
        ));
    }
    if source
        .lines()
        .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'))
    {
        return Err(syntax_error(
            Pos::START,
            "the file is empty; expected a mapping with `name` and `steps`".into(),
        ));
    }
    serde_saphyr::from_str_with_options::<Item>(source, options()).map_err(|error| {
        let pos = error.location().and_then(pos_of).unwrap_or(Pos::START);
        let message = serde_saphyr::MessageFormatter::format_message(
            &serde_saphyr::UserMessageFormatter,
            &error,
        )
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>();
        // The classic trap: `{ a: ${{ x }} }` and `a: ${{ x }}: y` need quotes in YAML.
        let line = source
            .lines()
            .nth(pos.line.saturating_sub(1))
            .unwrap_or_default();
        let hint = if line.contains("${{") {
            "; put values containing `${{ }}` in quotes"
        } else {
            ""
        };
        syntax_error(pos, format!("{message}{hint}"))
    })
}

fn syntax_error(pos: Pos, message: String) -> Diagnostic {
    Diagnostic {
        code: code::YAML_SYNTAX,
        message: format!("invalid YAML: {message}"),
        line: pos.line,
        column: pos.column,
    }
}

/// YAML 1.2 booleans only (`on:` and `no:` stay strings), no snippets in messages (we render
/// our own), and budgets far below the library defaults: a workflow is a few hundred nodes, so
/// these only ever stop alias bombs and pathological nesting.
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 200_000;
    budget.max_nodes = 100_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_depth = 48;
    budget.flow_nesting_limit = 48;
    budget.max_total_scalar_bytes = MAX_SOURCE_BYTES;
    budget.max_documents = 1;
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = 100_000;
    serde_saphyr::options! {
        budget: Some(budget),
        alias_limits: alias_limits,
        strict_booleans: true,
        with_snippet: false,
    }
}

fn pos_of(location: Location) -> Option<Pos> {
    let line = usize::try_from(location.line()).ok()?;
    let column = usize::try_from(location.column()).ok()?;
    (line > 0 && column > 0).then_some(Pos { line, column })
}

fn spanned_pos<T>(spanned: &Spanned<T>) -> Pos {
    pos_of(spanned.referenced).unwrap_or(Pos::START)
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Node>::deserialize(deserializer)?;
        Ok(Item {
            pos: spanned_pos(&spanned),
            node: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<String>::deserialize(deserializer)?;
        Ok(Key {
            pos: spanned_pos(&spanned),
            name: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
        Ok(Node::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
        Ok(Node::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Node, E> {
        Ok(Node::Number(value.into()))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Node, E> {
        i64::try_from(value)
            .map(|value| Node::Number(value.into()))
            .or_else(|_| u64::try_from(value).map(|value| Node::Number(value.into())))
            .map_err(|_| E::custom(format!("integer {value} is out of range")))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Node, E> {
        u64::try_from(value)
            .map(|value| Node::Number(value.into()))
            .map_err(|_| E::custom(format!("integer {value} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Node, E> {
        Number::from_f64(value)
            .map(Node::Number)
            .ok_or_else(|| E::custom(format!("{value} is not a finite number")))
    }

    fn visit_str<E>(self, value: &str) -> Result<Node, E> {
        Ok(Node::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Node, E> {
        Ok(Node::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = access.next_element::<Item>()? {
            items.push(item);
        }
        Ok(Node::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, item)) = access.next_entry::<Key, Item>()? {
            entries.push((key, item));
        }
        Ok(Node::Mapping(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn keeps_positions_and_yaml_1_2_scalars() {
        let tree = parse("on: x\nn: \"1\"\ni: 2\nb: true\nlist: [a]\n").unwrap();
        let Node::Mapping(entries) = &tree.node else {
            panic!("not a mapping: {tree:?}")
        };
        let summary: Vec<_> = entries
            .iter()
            .map(|(key, item)| (key.name.as_str(), key.pos, item.to_json(), item.pos))
            .collect();
        assert_eq!(
            summary,
            [
                ("on", pos(1, 1), Value::from("x"), pos(1, 5)),
                ("n", pos(2, 1), Value::from("1"), pos(2, 4)),
                ("i", pos(3, 1), Value::from(2), pos(3, 4)),
                ("b", pos(4, 1), Value::from(true), pos(4, 4)),
                ("list", pos(5, 1), serde_json::json!(["a"]), pos(5, 7)),
            ]
        );
    }

    #[test]
    fn unquoted_expression_is_a_plain_string() {
        // `${{` starts with `$`, so block-style YAML reads it as a plain scalar, braces and all.
        let tree = parse("message: ${{ item.id }}\nif: ${{ a > 1 }}\n").unwrap();
        assert_eq!(
            tree.to_json(),
            serde_json::json!({"message": "${{ item.id }}", "if": "${{ a > 1 }}"})
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let error = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert_eq!((error.code, error.line, error.column), ("WF0001", 3, 2));
        let error = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!((error.line, error.column), (2, 1));
        assert!(error.message.contains("duplicate"), "{}", error.message);
    }

    #[test]
    fn alias_bombs_are_stopped() {
        let mut source = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..12 {
            let previous = level - 1;
            source.push_str(&format!(
                "a{level}: &a{level} [*a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}]\n"
            ));
        }
        assert_eq!(parse(&source).unwrap_err().code, "WF0001");
    }

    #[test]
    fn deep_nesting_is_stopped() {
        let source = format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse(&source).unwrap_err().code, "WF0001");
        let source = (0..200).fold(String::new(), |mut text, depth| {
            text.push_str(&" ".repeat(depth));
            text.push_str("- \n");
            text
        });
        assert_eq!(parse(&source).unwrap_err().code, "WF0001");
    }
}
