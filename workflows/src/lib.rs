//! The Stepwise workflow language: model, parser with located diagnostics, validation,
//! `${{ }}` expressions and the JSON Schema of the language.
//!
//! Pipeline: [`parse_workflow`] reads YAML into a position-annotated tree (`tree`), builds the
//! model from it while checking shapes and local values (`parse`), then runs the whole-file
//! checks (`validate`). Every problem becomes a [`Diagnostic`] with a stable code.
//!
//! Architecture invariant: this crate is pure. No tokio, no database, no HTTP, no file I/O:
//! callers hand it source text and get values back.

pub mod diagnostics;
pub mod expr;
mod functions;
mod inputs;
pub mod model;
mod parse;
mod schema;
mod tree;
mod validate;

pub use diagnostics::{CODES, Diagnostic};
pub use expr::{Evaluator, ExprError, ExprLimits, SecretsRead};
pub use inputs::InputError;
pub use model::*;
pub use parse::{Parsed, parse_workflow};
pub use schema::json_schema;
pub use validate::declared_message;

/// What the validator needs to know about the actions a workflow may use. Implemented by the
/// integrations registry; kept as a trait so this crate stays independent of it.
pub trait ActionCatalog {
    /// JSON Schema of the action's `with:` input, or `None` when no such action exists.
    fn input_schema(&self, name: &str) -> Option<&serde_json::Value>;
    /// Every action name, for "did you mean" hints.
    fn action_names(&self) -> Vec<&str>;
}
