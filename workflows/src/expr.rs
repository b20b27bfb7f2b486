//! `${{ }}` expressions: the one evaluator used by the validator (syntax, references) and by
//! the engine (rendering step inputs, conditions, outputs).
//!
//! Each `${{ ... }}` body is compiled as a minijinja *expression*, not as a template: that is
//! what lets a value that is a single expression keep its JSON type, lets errors name the failing
//! expression, and lets compiled expressions be cached. The text between expressions is copied
//! verbatim, so `{% %}` and plain `{{ }}` mean nothing and need no escaping.
//!
//! Security: only strings of the workflow definition are ever compiled. Values that come out of
//! the context (webhook payloads, step outputs) are inserted as data and never rendered again.

mod growth;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use minijinja::machinery::{self, CodeGenerator, Instructions, Vm};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

pub use crate::functions::STATUS_FUNCTIONS;

/// Opening delimiter of an expression.
pub const OPEN: &str = "${{";
/// Closing delimiter of an expression.
pub const CLOSE: &str = "}}";

/// The most tokens (names, literals, operators, brackets) one expression may have.
///
/// minijinja's parser, compiler and the AST's destructor recurse once per level of the
/// expression tree, and a chain such as `1 + 1 + ...`, `a.x.x...` or `not not ...` is a tree
/// as deep as it is long: 10,000 terms overflow a 2 MiB thread stack and abort the process.
/// A tree has no more levels than tokens, so counting tokens before compiling bounds the depth.
pub const MAX_EXPRESSION_TOKENS: usize = 1000;

/// Bounds the expression cache; definitions are the only source of expressions, so this is only
/// reached by a process that has loaded thousands of distinct workflow versions.
const CACHE_LIMIT: usize = 4096;

/// What the cache keeps of an expression that parses: the paths it reads and its instructions,
/// compiled once from the guarded syntax tree (see `growth`), so evaluating it parses nothing.
struct Parsed {
    references: BTreeSet<String>,
    program: Program,
}

/// minijinja's instructions borrow their source: the cache owns both, together.
#[ouroboros::self_referencing]
struct Program {
    source: Box<str>,
    #[borrows(source)]
    #[covariant]
    instructions: Instructions<'this>,
}

type Compiled = Arc<Parsed>;

/// What evaluating one expression may produce, chosen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExprLimits {
    /// The largest result of one `${{ }}` (its JSON text), and of a string value rendered
    /// from text and expressions.
    pub max_result_bytes: usize,
}

impl ExprLimits {
    /// 1 MiB, the engine's default for a step's output too.
    pub const DEFAULT_MAX_RESULT_BYTES: usize = 1024 * 1024;
}

impl Default for ExprLimits {
    fn default() -> Self {
        Self {
            max_result_bytes: Self::DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

/// Evaluates `${{ }}` expressions against a run context. Cheap to share: `Send + Sync`, the
/// minijinja environment is built once per process and compiled expressions are cached.
pub struct Evaluator {
    env: &'static Environment<'static>,
    cache: RwLock<HashMap<String, Compiled>>,
    /// [`ExprLimits::max_result_bytes`]; atomic so a shared evaluator can be configured.
    max_result_bytes: AtomicUsize,
}

/// Why an expression could not be evaluated. Messages name the expression as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("syntax error in `{expression}`: {message}")]
    Syntax { expression: String, message: String },
    #[error("undefined value `{path}` in `${{{{ {expression} }}}}`")]
    Undefined { path: String, expression: String },
    #[error("cannot evaluate `${{{{ {expression} }}}}`: {message}")]
    Eval { expression: String, message: String },
    #[error(
        "the result of `{expression}` is larger than the limit of {limit} bytes \
         (at least {length} bytes)"
    )]
    TooLarge {
        expression: String,
        limit: usize,
        length: usize,
    },
}

/// The secrets some templates read, found in their parsed expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsRead {
    /// `secrets` is read whole or by a computed key (or an expression does not parse): any
    /// secret may be read.
    All,
    /// Only these names, each read as `secrets.NAME`.
    Only(BTreeSet<String>),
}

impl SecretsRead {
    /// Whether the secret `name` may be read.
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.contains(name),
        }
    }

    fn add(&mut self, paths: Result<BTreeSet<String>, String>) {
        let Self::Only(names) = self else {
            return;
        };
        let Ok(paths) = paths else {
            *self = Self::All;
            return;
        };
        for path in paths {
            match path.split_once('.') {
                Some(("secrets", name)) => {
                    names.insert(name.split('.').next().unwrap_or(name).to_owned());
                }
                None if path == "secrets" => {
                    *self = Self::All;
                    return;
                }
                _ => {}
            }
        }
    }
}

/// A piece of a string value: literal text, or the source of one `${{ }}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment<'s> {
    Text(&'s str),
    Expr(&'s str),
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new()
    }
}

impl Evaluator {
    pub fn new() -> Self {
        Self::with_limits(ExprLimits::default())
    }

    pub fn with_limits(limits: ExprLimits) -> Self {
        static ENV: OnceLock<Environment<'static>> = OnceLock::new();
        Self {
            env: ENV.get_or_init(environment),
            cache: RwLock::new(HashMap::new()),
            max_result_bytes: AtomicUsize::new(limits.max_result_bytes),
        }
    }

    /// Applies `limits` to every evaluation from now on.
    pub fn set_limits(&self, limits: ExprLimits) {
        self.max_result_bytes
            .store(limits.max_result_bytes, Ordering::Relaxed);
    }

    fn max_result_bytes(&self) -> usize {
        self.max_result_bytes.load(Ordering::Relaxed)
    }

    /// Renders every string in `value` that contains `${{`. A string that is exactly one
    /// expression (surrounding whitespace allowed) becomes the expression's JSON value; mixed
    /// text becomes a string with non-string values JSON-encoded.
    pub fn render(&self, value: &Value, context: &Value) -> Result<Value, ExprError> {
        let scope = Scope {
            json: context,
            value: minijinja::Value::from_serialize(context),
        };
        self.render_value(value, &scope)
    }

    /// Evaluates a condition (the expression source, without `${{ }}`) with Jinja truthiness:
    /// false, none, 0, "" and empty collections are false.
    pub fn condition(&self, expr: &str, context: &Value) -> Result<bool, ExprError> {
        let scope = Scope {
            json: context,
            value: minijinja::Value::from_serialize(context),
        };
        Ok(self.eval(expr, &scope)?.is_true())
    }

    /// Checks that every `${{ }}` in a string value parses.
    pub fn check_syntax(&self, source: &str) -> Result<(), String> {
        self.segments(source).map(drop)
    }

    /// Checks that a bare expression (a condition) parses.
    pub fn check_expression(&self, expr: &str) -> Result<(), String> {
        self.compile(expr)
            .map(drop)
            .map_err(|error| message(&error))
    }

    /// The dotted variable paths (`steps.fetch.output`, `inputs`) a string value reads.
    pub(crate) fn references(&self, source: &str) -> Result<BTreeSet<String>, String> {
        let mut paths = BTreeSet::new();
        for segment in self.segments(source)? {
            if let Segment::Expr(expr) = segment {
                paths.extend(self.expression_references(expr)?);
            }
        }
        Ok(paths)
    }

    /// The dotted variable paths a bare expression reads.
    pub(crate) fn expression_references(&self, expr: &str) -> Result<BTreeSet<String>, String> {
        let compiled = self.compile(expr).map_err(|error| message(&error))?;
        Ok(compiled.references.clone())
    }

    /// Which secrets a step's templates (`if`, `with`, `for_each`) read.
    pub fn step_secrets(&self, step: &crate::Step) -> SecretsRead {
        let mut read = SecretsRead::Only(BTreeSet::new());
        if let Some(condition) = &step.condition {
            read.add(self.expression_references(condition));
        }
        for template in step.with.values().chain(&step.for_each) {
            self.template_secrets(template, &mut read);
        }
        read
    }

    /// Which secrets a set of templates (a workflow's `outputs`) reads.
    pub fn templates_secrets<'v>(
        &self,
        templates: impl IntoIterator<Item = &'v Value>,
    ) -> SecretsRead {
        let mut read = SecretsRead::Only(BTreeSet::new());
        for template in templates {
            self.template_secrets(template, &mut read);
        }
        read
    }

    fn template_secrets(&self, template: &Value, read: &mut SecretsRead) {
        match template {
            Value::String(text) if text.contains(OPEN) => read.add(self.references(text)),
            Value::Array(items) => items
                .iter()
                .for_each(|item| self.template_secrets(item, read)),
            Value::Object(map) => map
                .values()
                .for_each(|item| self.template_secrets(item, read)),
            _ => {}
        }
    }

    /// Whether a bare expression calls a status function (`always()`, `success()`, ...). Read
    /// from the parsed expression, so a name inside a string literal does not count; an
    /// expression that does not parse calls nothing.
    pub fn calls_status_function(&self, expr: &str) -> bool {
        self.expression_references(expr).is_ok_and(|paths| {
            paths
                .iter()
                .any(|path| STATUS_FUNCTIONS.contains(&root(path)))
        })
    }

    /// Names the environment provides itself (functions such as `range`), which expressions
    /// may use besides the run context.
    pub(crate) fn globals(&self) -> impl Iterator<Item = &str> {
        self.env
            .globals()
            .map(|(name, _)| name)
            .filter(|name| !growth::is_operator(name))
    }

    /// If `source` is exactly one `${{ }}` (surrounding whitespace allowed), its body.
    pub fn single_expression<'s>(&self, source: &'s str) -> Option<&'s str> {
        match self.segments(source).ok()?.as_slice() {
            [Segment::Expr(expr)] => Some(expr),
            [Segment::Text(before), Segment::Expr(expr)] if before.trim().is_empty() => Some(expr),
            [Segment::Expr(expr), Segment::Text(after)] if after.trim().is_empty() => Some(expr),
            [
                Segment::Text(before),
                Segment::Expr(expr),
                Segment::Text(after),
            ] if before.trim().is_empty() && after.trim().is_empty() => Some(expr),
            _ => None,
        }
    }

    fn render_value(&self, value: &Value, scope: &Scope<'_>) -> Result<Value, ExprError> {
        match value {
            Value::String(text) if text.contains(OPEN) => self.render_string(text, scope),
            Value::Array(items) => items
                .iter()
                .map(|item| self.render_value(item, scope))
                .collect(),
            Value::Object(entries) => entries
                .iter()
                .map(|(key, item)| Ok((key.clone(), self.render_value(item, scope)?)))
                .collect(),
            other => Ok(other.clone()),
        }
    }

    fn render_string(&self, text: &str, scope: &Scope<'_>) -> Result<Value, ExprError> {
        if let Some(expr) = self.single_expression(text) {
            return to_json(expr, &self.eval(expr, scope)?);
        }
        let too_large = |length: usize| ExprError::TooLarge {
            expression: shorten(text.trim()),
            limit: self.max_result_bytes(),
            length,
        };
        let segments = self.segments(text).map_err(|message| ExprError::Syntax {
            expression: text.to_owned(),
            message,
        })?;
        let mut rendered = String::with_capacity(text.len());
        for segment in segments {
            match segment {
                Segment::Text(literal) => rendered.push_str(literal),
                Segment::Expr(expr) => {
                    let value = self.eval(expr, scope)?;
                    match value.as_str() {
                        Some(text) => rendered.push_str(text),
                        None => rendered.push_str(&to_json(expr, &value)?.to_string()),
                    }
                }
            }
            if rendered.len() > self.max_result_bytes() {
                return Err(too_large(rendered.len()));
            }
        }
        Ok(Value::String(rendered))
    }

    fn eval(&self, expr: &str, scope: &Scope<'_>) -> Result<minijinja::Value, ExprError> {
        let compiled = self.compile(expr).map_err(|error| ExprError::Syntax {
            expression: format!("{OPEN} {} {CLOSE}", expr.trim()),
            message: message(&error),
        })?;
        let undefined =
            |error: Option<&minijinja::Error>| match (missing_path(&compiled, scope.json), error) {
                (Some(path), _) => ExprError::Undefined {
                    path,
                    expression: expr.trim().to_owned(),
                },
                (None, Some(error)) => ExprError::Eval {
                    expression: expr.trim().to_owned(),
                    message: message(error),
                },
                (None, None) => ExprError::Eval {
                    expression: expr.trim().to_owned(),
                    message: "the result is undefined".to_owned(),
                },
            };
        match self.run(&compiled, &scope.value) {
            // Strict mode only fails when an undefined value is used; one that is the result of
            // the expression would otherwise quietly become `null` or `false`.
            Ok(value) if value.is_undefined() => Err(undefined(None)),
            Ok(value) => match json_length(&value, self.max_result_bytes()) {
                Some(length) => Err(ExprError::TooLarge {
                    expression: format!("{OPEN} {} {CLOSE}", shorten(expr.trim())),
                    limit: self.max_result_bytes(),
                    length,
                }),
                None => Ok(value),
            },
            Err(error) if error.kind() == ErrorKind::UndefinedError => Err(undefined(Some(&error))),
            Err(error) => Err(match over_limit(&error) {
                Some(over) => ExprError::TooLarge {
                    expression: format!("{OPEN} {} {CLOSE}", shorten(expr.trim())),
                    limit: over.limit,
                    length: over.length,
                },
                None => ExprError::Eval {
                    expression: expr.trim().to_owned(),
                    message: message(&error),
                },
            }),
        }
    }

    fn compile(&self, expr: &str) -> Result<Compiled, minijinja::Error> {
        let cached = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(expr)
            .cloned();
        if let Some(compiled) = cached {
            return Ok(compiled);
        }
        if let Some(tokens) = too_many_tokens(expr) {
            return Err(minijinja::Error::new(
                ErrorKind::SyntaxError,
                format!(
                    "the expression is too large: more than {tokens} tokens \
                     (names, literals, operators), split it up"
                ),
            ));
        }
        if has_top_level_close(expr) {
            return Err(minijinja::Error::new(
                ErrorKind::SyntaxError,
                format!("unexpected `{CLOSE}`"),
            ));
        }
        let mut references = BTreeSet::new();
        let program = Program::try_new(expr.into(), |source| {
            let tree = machinery::parse_expr(source)?;
            growth::references(&tree, &mut references);
            let mut generator = CodeGenerator::new("<expression>", source);
            generator.compile_expr(&growth::guarded(&tree));
            Ok::<_, minijinja::Error>(generator.finish().0)
        })?;
        let compiled = Arc::new(Parsed {
            references,
            program,
        });
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(expr.to_owned(), Arc::clone(&compiled));
        Ok(compiled)
    }

    /// Evaluates a compiled expression, with `+`, `*` and `~` checked against the result limit
    /// before they allocate.
    fn run(
        &self,
        compiled: &Parsed,
        root: &minijinja::Value,
    ) -> Result<minijinja::Value, minijinja::Error> {
        let mut discarded = String::new();
        let value = growth::with_limit(self.max_result_bytes(), || {
            Vm::new(self.env)
                .eval(
                    compiled.program.borrow_instructions(),
                    root.clone(),
                    &BTreeMap::new(),
                    &mut machinery::make_string_output(&mut discarded),
                    AutoEscape::None,
                )
                .map(|(value, _)| value)
        })?;
        Ok(value.unwrap_or(minijinja::Value::UNDEFINED))
    }

    /// Splits a string value into text and expression bodies. An expression ends at the first
    /// `}}` after which its body compiles, so `}}` inside a string literal or a nested dict
    /// does not end it early.
    fn segments<'s>(&self, source: &'s str) -> Result<Vec<Segment<'s>>, String> {
        let mut segments = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find(OPEN) {
            if start > 0 {
                segments.push(Segment::Text(&rest[..start]));
            }
            let body = &rest[start + OPEN.len()..];
            let mut first_error = None;
            let mut end = None;
            for (offset, _) in body.match_indices(CLOSE) {
                let candidate = &body[..offset];
                if candidate.contains(OPEN) {
                    break;
                }
                match self.compile(candidate) {
                    Ok(_) => {
                        end = Some(offset);
                        break;
                    }
                    Err(error) => {
                        first_error.get_or_insert_with(|| message(&error));
                    }
                }
            }
            let Some(end) = end else {
                return Err(first_error.unwrap_or_else(|| format!("`{OPEN}` is not closed")));
            };
            segments.push(Segment::Expr(&body[..end]));
            rest = &body[end + CLOSE.len()..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest));
        }
        Ok(segments)
    }
}

/// The context in both forms: minijinja's for evaluation, JSON to explain undefined values.
struct Scope<'a> {
    json: &'a Value,
    value: minijinja::Value,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // `debug()` would dump the whole context, secrets included, into a step input.
    env.remove_global("debug");
    // `namespace()` only serves `{% set %}`, which an expression cannot contain.
    env.remove_global("namespace");
    crate::functions::register(&mut env);
    growth::register(&mut env);
    env
}

/// The checked operator's refusal behind `error`, if that is what stopped the evaluation.
fn over_limit(error: &minijinja::Error) -> Option<growth::OverLimit> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(over) = cause.downcast_ref::<growth::OverLimit>() {
            return Some(*over);
        }
        source = cause.source();
    }
    None
}

/// Whether `expr` has `}}` outside brackets and string literals.
///
/// minijinja 2.24 panics ("empty lexer stack") when it compiles such an expression (`a }} b`):
/// its lexer takes the `}}` for the end of a template variable. This mirrors how that lexer
/// counts brackets and skips strings, so it flags exactly the inputs that reach that panic
/// (plus ones with more closing than opening brackets, which are errors anyway).
fn has_top_level_close(expr: &str) -> bool {
    let bytes = expr.as_bytes();
    let mut balance: isize = 0;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'\'' | b'"' => {
                let mut escaped = false;
                let closing = bytes[at + 1..].iter().position(|&c| {
                    let end = !escaped && c == byte;
                    escaped = !escaped && c == b'\\';
                    end
                });
                match closing {
                    Some(length) => at += length + 1,
                    // An unterminated string is a plain syntax error for minijinja.
                    None => return false,
                }
            }
            b'(' | b'[' | b'{' => balance += 1,
            b')' | b']' => balance -= 1,
            b'}' if balance <= 0 && bytes.get(at + 1) == Some(&b'}') => return true,
            b'}' => balance -= 1,
            _ => {}
        }
        at += 1;
    }
    false
}

/// `Some(MAX_EXPRESSION_TOKENS)` when `expr` has more tokens than that. Counts like
/// minijinja's lexer, or more: a name or number is one token, a string literal one, every other
/// character one; it stops at the first token over the limit.
fn too_many_tokens(expr: &str) -> Option<usize> {
    let bytes = expr.as_bytes();
    let mut tokens = 0;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        tokens += 1;
        if tokens > MAX_EXPRESSION_TOKENS {
            return Some(MAX_EXPRESSION_TOKENS);
        }
        match byte {
            b'\'' | b'"' => {
                let mut escaped = false;
                let closing = bytes[at + 1..].iter().position(|&c| {
                    let end = !escaped && c == byte;
                    escaped = !escaped && c == b'\\';
                    end
                });
                at += closing.map_or(bytes.len(), |length| length + 2);
            }
            _ if is_word(byte) => {
                at += bytes[at..].iter().take_while(|&&c| is_word(c)).count();
            }
            _ => at += 1,
        }
    }
    None
}

/// A byte of a name or number: ASCII letters, digits, `_`, and any byte of a non-ASCII
/// character (minijinja's identifiers may be Unicode).
fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || !byte.is_ascii()
}

/// The first segment of a dotted path: `steps` for `steps.fetch.output`.
pub(crate) fn root(path: &str) -> &str {
    path.split('.').next().unwrap_or_default()
}

/// `Some(length)` when `value` as JSON text is longer than `limit` bytes: the length written
/// when it stopped, just over the limit. Stops there, so a huge value costs no more than the
/// limit to measure.
fn json_length(value: &minijinja::Value, limit: usize) -> Option<usize> {
    if let Some(text) = value.as_str() {
        // A string's JSON text is at least as long as the string.
        return (text.len() > limit).then_some(text.len());
    }
    growth::json_length(value, limit).filter(|&length| length > limit)
}

/// An expression's first 80 characters, for messages.
fn shorten(expr: &str) -> String {
    match expr.char_indices().nth(80) {
        Some((end, _)) => format!("{}...", &expr[..end]),
        None => expr.to_owned(),
    }
}

fn to_json(expr: &str, value: &minijinja::Value) -> Result<Value, ExprError> {
    serde_json::to_value(value).map_err(|error| ExprError::Eval {
        expression: expr.trim().to_owned(),
        message: format!("the result is not JSON data: {error}"),
    })
}

fn message(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

/// The shortest dotted prefix of a path the expression reads that the context lacks, e.g.
/// `steps.foo` for `steps.foo.output.x` when no step `foo` has run.
fn missing_path(compiled: &Parsed, context: &Value) -> Option<String> {
    compiled.references.iter().find_map(|path| {
        let mut current = context;
        let mut prefix_len = 0;
        for part in path.split('.') {
            prefix_len += if prefix_len == 0 { 0 } else { 1 } + part.len();
            match current.get(part) {
                Some(next) => current = next,
                None => return Some(path[..prefix_len].to_owned()),
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_the_secrets_templates_read() {
        let evaluator = Evaluator::new();
        let read = |templates: Value| {
            evaluator.templates_secrets(templates.as_object().expect("object").values())
        };
        let names = |names: &[&str]| {
            SecretsRead::Only(names.iter().map(|name| (*name).to_owned()).collect())
        };
        assert_eq!(
            read(json!({
                "a": "Bearer ${{ secrets.TOKEN }}",
                "b": ["${{ secrets.KEY.x | upper }}", {"c": "${{ inputs.x ~ secrets.KEY }}"}],
                "d": "secrets.NOT_AN_EXPRESSION",
                "e": "${{ 'secrets.IN_A_STRING' }}"
            })),
            names(&["KEY", "TOKEN"])
        );
        assert_eq!(read(json!({"a": "${{ steps.x.output }}"})), names(&[]));
        assert_eq!(read(json!({"a": "${{ secrets }}"})), SecretsRead::All);
        assert_eq!(
            read(json!({"a": "${{ secrets[inputs.name] }}"})),
            SecretsRead::All
        );
        assert_eq!(read(json!({"a": "${{ unclosed"})), SecretsRead::All);
        assert!(SecretsRead::All.includes("ANY"));
        assert!(!names(&["A"]).includes("B"));
    }

    #[test]
    fn evaluator_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Evaluator>();
    }

    #[test]
    fn segments_respect_string_literals() {
        let evaluator = Evaluator::new();
        assert_eq!(
            evaluator.segments("a ${{ '}}' }} b").unwrap(),
            [
                Segment::Text("a "),
                Segment::Expr(" '}}' "),
                Segment::Text(" b")
            ]
        );
        assert!(evaluator.segments("${{ a ").is_err());
        assert!(evaluator.segments("${{ a + }} ${{ b }}").is_err());
    }

    #[test]
    fn closing_braces_in_a_bare_expression_are_a_syntax_error() {
        let evaluator = Evaluator::new();
        assert!(evaluator.check_expression("a or}} b }}").is_err());
        assert!(evaluator.check_expression("a -}} b").is_err());
        assert!(evaluator.check_expression("'a' ) }} b").is_err());
        assert_eq!(evaluator.check_expression("'}}' ~ \"\\\"}}\""), Ok(()));
        assert_eq!(evaluator.check_expression("{'a': {'b': 1}}"), Ok(()));
    }
}
