//! `+`, `*` and `~` bounded before they allocate.
//!
//! minijinja computes these operators itself, with no hook, and folds constant operands while
//! it compiles: `'x' * 100000000` was allocated whole (minijinja stops at 100 MB) before the
//! result cap could refuse it, and a chain of `~` over such strings could reach gigabytes, at
//! deploy time already. So an expression is compiled from its syntax tree with each of these
//! operators replaced by a call of a function that measures the result first: beyond the limit
//! it fails naming the limit, otherwise minijinja computes the operator as it always does.
//!
//! The built-in filters whose result can be far larger than their input (`join`, `replace`,
//! `indent`, `tojson(indent)`, `format`, `batch`, `slice`, `chain`) are replaced the same way:
//! measured first, then minijinja's own filter.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use minijinja::machinery::ast::{self, BinOpKind, CallArg, Expr, Spanned};
use minijinja::value::Rest;
use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, Expression, State, UndefinedBehavior, Value};

thread_local! {
    /// The result limit of the evaluation running on this thread ([`with_limit`]).
    static LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Runs `evaluation` with `limit` as the largest result the checked operators may build.
/// Evaluation is synchronous, so the limit travels with the thread rather than through the
/// shared environment.
pub(super) fn with_limit<T>(limit: usize, evaluation: impl FnOnce() -> T) -> T {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            LIMIT.set(self.0);
        }
    }
    let _restore = Restore(LIMIT.replace(limit));
    evaluation()
}

/// Why a checked operator refused to run: the error's source, so the evaluator can report it
/// as [`super::ExprError::TooLarge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the result would be larger than the limit of {limit} bytes (at least {length} bytes)")]
pub(super) struct OverLimit {
    pub limit: usize,
    pub length: usize,
}

/// An operator that can build a result larger than its operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Growth {
    Add,
    Mul,
    Concat,
}

impl Growth {
    const ALL: [Self; 3] = [Self::Add, Self::Mul, Self::Concat];

    fn of(operator: BinOpKind) -> Option<Self> {
        match operator {
            BinOpKind::Add => Some(Self::Add),
            BinOpKind::Mul => Some(Self::Mul),
            BinOpKind::Concat => Some(Self::Concat),
            _ => None,
        }
    }

    /// The global function the operator is compiled into; the prefix keeps it apart from the
    /// names a workflow uses (calling it directly is harmless: it is the same checked operator).
    fn function(self) -> &'static str {
        match self {
            Self::Add => "__stepwise_add",
            Self::Mul => "__stepwise_mul",
            Self::Concat => "__stepwise_concat",
        }
    }

    /// minijinja's own operator over two variables: compiled once, evaluated with the operands
    /// once they passed the check, so results and errors stay minijinja's.
    fn native(self) -> &'static str {
        match self {
            Self::Add => "a + b",
            Self::Mul => "a * b",
            Self::Concat => "a ~ b",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Add => 0,
            Self::Mul => 1,
            Self::Concat => 2,
        }
    }
}

/// Whether `name` is the function of a checked operator: not a name of the language.
pub(super) fn is_operator(name: &str) -> bool {
    Growth::ALL.iter().any(|growth| growth.function() == name)
}

/// Adds the checked operators and filters to `env`.
pub(super) fn register(env: &mut Environment<'static>) {
    for growth in Growth::ALL {
        env.add_function(growth.function(), move |a: Value, b: Value| {
            checked(growth, &a, &b)
        });
    }
    for (name, builtin, measure) in filters() {
        env.add_filter(name, move |state: &State, args: Rest<Value>| {
            refuse_over(measure(&args, LIMIT.get()))?;
            builtin.call(state, &args)
        });
    }
}

/// What a result would measure (a string by its bytes, anything else by its JSON text), or a
/// lower bound of it, measured no further than just past the limit; `None` when minijinja
/// refuses the arguments anyway.
type Measure = fn(&[Value], usize) -> Option<usize>;

fn filters() -> [(&'static str, Value, Measure); 8] {
    use minijinja::filters;
    [
        ("join", Value::from_function(filters::join), join_length),
        (
            "replace",
            Value::from_function(filters::replace),
            replace_length,
        ),
        (
            "indent",
            Value::from_function(filters::indent),
            indent_length,
        ),
        (
            "tojson",
            Value::from_function(filters::tojson),
            tojson_length,
        ),
        (
            "format",
            Value::from_function(filters::format),
            format_length,
        ),
        ("batch", Value::from_function(filters::batch), batch_length),
        ("slice", Value::from_function(filters::slice), slice_length),
        ("chain", Value::from_function(filters::chain), chain_length),
    ]
}

/// Fails when `length` is over the limit of this evaluation.
fn refuse_over(length: Option<usize>) -> Result<(), Error> {
    let limit = LIMIT.get();
    match length {
        Some(length) if length > limit => {
            let over = OverLimit { limit, length };
            Err(Error::new(ErrorKind::InvalidOperation, over.to_string()).with_source(over))
        }
        _ => Ok(()),
    }
}

fn checked(growth: Growth, a: &Value, b: &Value) -> Result<Value, Error> {
    refuse_over(length_over(growth, a, b, LIMIT.get()))?;
    // Strict like the evaluator's environment: `~` refuses an undefined operand.
    static NATIVE_ENV: OnceLock<Environment<'static>> = OnceLock::new();
    static NATIVE: OnceLock<Vec<Expression<'static, 'static>>> = OnceLock::new();
    let native = NATIVE.get_or_init(|| {
        let env = NATIVE_ENV.get_or_init(|| {
            let mut env = Environment::empty();
            env.set_undefined_behavior(UndefinedBehavior::Strict);
            env
        });
        Growth::ALL
            .iter()
            .map(|growth| {
                env.compile_expression(growth.native())
                    .expect("a native operator compiles")
            })
            .collect()
    });
    native[growth.index()].eval(Value::from_iter([("a", a.clone()), ("b", b.clone())]))
}

/// `Some(length)` when `a growth b` would be longer than `limit` bytes, measured as the result
/// cap measures it (a string by its bytes, anything else by its JSON text): `length` is the
/// result's length, or a lower bound of it past the limit. `None` for operands that do not
/// grow (numbers) or that minijinja refuses anyway.
fn length_over(growth: Growth, a: &Value, b: &Value, limit: usize) -> Option<usize> {
    let length = match growth {
        Growth::Concat => display_length(a, limit).saturating_add(display_length(b, limit)),
        Growth::Add => match (a.as_str(), b.as_str()) {
            (Some(a), Some(b)) => a.len().saturating_add(b.len()),
            _ if is_sequence(a) && is_sequence(b) => {
                joined_length(array_length(a, limit), array_length(b, limit))
            }
            _ => return None,
        },
        Growth::Mul => {
            let (repeated, times) =
                if a.as_str().is_some() || (b.as_str().is_none() && is_sequence(a)) {
                    (a, b)
                } else if b.as_str().is_some() || is_sequence(b) {
                    (b, a)
                } else {
                    return None;
                };
            let times = times.as_usize()?;
            match repeated.as_str() {
                Some(text) => text.len().saturating_mul(times),
                None => repeated_length(array_length(repeated, limit), times),
            }
        }
    };
    (length > limit).then_some(length)
}

/// `value | join(joiner)`: every item as `~` writes it, joined.
fn join_length(args: &[Value], limit: usize) -> Option<usize> {
    let joiner = args.get(1).and_then(Value::as_str).map_or(0, str::len);
    let mut length = 0usize;
    for (index, item) in args.first()?.try_iter().ok()?.enumerate() {
        if index > 0 {
            length = length.saturating_add(joiner);
        }
        length = length.saturating_add(display_length(&item, limit));
        if length > limit {
            break;
        }
    }
    Some(length)
}

/// `value | replace(from, to)`; an empty `from` matches before every character and at the end.
fn replace_length(args: &[Value], _limit: usize) -> Option<usize> {
    let [value, from, to] = args else {
        return None;
    };
    let (value, from, to) = (value.as_str()?, from.as_str()?, to.as_str()?);
    let matches = if from.is_empty() {
        value.chars().count() + 1
    } else {
        value.matches(from).count()
    };
    Some((value.len() - matches * from.len()).saturating_add(matches.saturating_mul(to.len())))
}

/// `value | indent(width)`: at most `width` spaces before every line.
fn indent_length(args: &[Value], _limit: usize) -> Option<usize> {
    let value = args.first()?.as_str()?;
    let width = match args.get(1) {
        Some(width) if !width.is_kwargs() => width.as_usize()?,
        _ => keyword(args, "width")
            .and_then(|width| width.as_usize())
            .unwrap_or(4),
    };
    let lines = value.matches('\n').count() + 1;
    Some(
        value
            .len()
            .saturating_add(lines.saturating_mul(width.saturating_add(1))),
    )
}

/// `value | tojson(indent)`: the indented JSON text itself, measured (minijinja allocates the
/// indentation first, so that is measured first).
fn tojson_length(args: &[Value], limit: usize) -> Option<usize> {
    let indent = match args.get(1) {
        Some(indent) if !indent.is_kwargs() => indent.clone(),
        _ => keyword(args, "indent")?,
    };
    let width = match bool::try_from(indent.clone()) {
        Ok(true) => 2,
        Ok(false) => return None,
        Err(_) => indent.as_usize()?,
    };
    if width > limit {
        return Some(width);
    }
    let indentation = " ".repeat(width);
    let mut counter = Counter { written: 0, limit };
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indentation.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut counter, formatter);
    match serde::Serialize::serialize(args.first()?, &mut serializer) {
        Err(_) if counter.written <= limit => None,
        _ => Some(counter.written),
    }
}

/// `format % args`: the text, and for each field its width, precision, argument as `~` writes
/// it, and room for the longest number.
fn format_length(args: &[Value], limit: usize) -> Option<usize> {
    /// `f64::MAX` written out with `%f`, and then some.
    const NUMBER: usize = 400;
    let (format, arguments) = args.split_first()?;
    let format = format.as_str()?;
    let mut measured: HashMap<String, usize> = HashMap::new();
    let mut length = format.len();
    let mut position = 0;
    let bytes = format.as_bytes();
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&byte| byte == b'%') {
        at += offset + 1;
        if bytes.get(at) == Some(&b'%') {
            at += 1;
            continue;
        }
        let mut argument = None;
        if bytes.get(at) == Some(&b'(') {
            let close = bytes[at..].iter().position(|&byte| byte == b')')?;
            let key = &format[at + 1..at + close];
            argument = arguments.first().map(|mapping| {
                (
                    format!("({key})"),
                    mapping.get_attr(key).unwrap_or_default(),
                )
            });
            at += close + 1;
        }
        while matches!(bytes.get(at), Some(b'#' | b'0' | b'-' | b' ' | b'+')) {
            at += 1;
        }
        let number = |at: &mut usize| {
            let digits = bytes[*at..]
                .iter()
                .take_while(|byte| byte.is_ascii_digit())
                .count();
            let value = format[*at..*at + digits]
                .parse::<usize>()
                .unwrap_or(if digits > 0 { usize::MAX } else { 0 });
            *at += digits;
            value
        };
        let width = number(&mut at);
        let precision = if bytes.get(at) == Some(&b'.') {
            at += 1;
            number(&mut at)
        } else {
            0
        };
        let (key, value) = argument.unwrap_or_else(|| {
            position += 1;
            (
                position.to_string(),
                arguments.get(position - 1).cloned().unwrap_or_default(),
            )
        });
        let shown = *measured
            .entry(key)
            .or_insert_with(|| display_length(&value, limit));
        length = length
            .saturating_add(width)
            .saturating_add(precision)
            .saturating_add(shown)
            .saturating_add(NUMBER);
        if length > limit {
            break;
        }
    }
    Some(length)
}

/// `value | batch(count, fill)`: `count` is allocated up front, and with a filler the last
/// batch is filled up to it (an item takes at least two bytes of JSON).
fn batch_length(args: &[Value], _limit: usize) -> Option<usize> {
    let items = args.first()?.len().unwrap_or(0);
    let count = args.get(1)?.as_usize()?;
    let filled = args.get(2).is_some_and(|fill| !fill.is_kwargs());
    let items = if filled && count > 0 {
        items.div_ceil(count).saturating_mul(count)
    } else {
        items
    };
    Some(count.max(items.saturating_mul(2)))
}

/// `value | slice(count, fill)`: `count` lists, each at least `[],` long.
fn slice_length(args: &[Value], _limit: usize) -> Option<usize> {
    let items = args.first()?.len().unwrap_or(0);
    let count = args.get(1)?.as_usize()?;
    Some(
        count
            .saturating_mul(3)
            .saturating_add(items.saturating_mul(2)),
    )
}

/// `chain(a, b, ...)`: all of them, one after another.
fn chain_length(args: &[Value], limit: usize) -> Option<usize> {
    let mut length = 0usize;
    for value in args {
        length = length.saturating_add(match value.as_str() {
            Some(text) => text.len(),
            None => array_length(value, limit),
        });
        if length > limit {
            break;
        }
    }
    Some(length)
}

/// The keyword argument `name` of a filter call (minijinja passes them last, as one map).
fn keyword(args: &[Value], name: &str) -> Option<Value> {
    let keywords = args.last().filter(|value| value.is_kwargs())?;
    keywords
        .get_attr(name)
        .ok()
        .filter(|value| !value.is_undefined())
}

fn is_sequence(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// JSON text of two arrays joined into one, from their lengths (`[]` is 2 bytes, and joining
/// two non-empty arrays drops two brackets and adds a comma).
fn joined_length(a: usize, b: usize) -> usize {
    match (a, b) {
        (2, other) | (other, 2) => other,
        (a, b) => a.saturating_add(b) - 1,
    }
}

/// JSON text of an array of `length` bytes repeated `times` times.
fn repeated_length(length: usize, times: usize) -> usize {
    if times == 0 || length <= 2 {
        return 2;
    }
    let items = length - 2;
    items
        .saturating_mul(times)
        .saturating_add(times - 1)
        .saturating_add(2)
}

/// Length of `value`'s JSON text, measured up to just past `limit` (so a huge value costs no
/// more than the limit to measure); `None` if JSON cannot encode it.
pub(super) fn json_length(value: &Value, limit: usize) -> Option<usize> {
    let mut counter = Counter { written: 0, limit };
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => Some(counter.written),
        Err(_) if counter.written > limit => Some(counter.written),
        Err(_) => None,
    }
}

/// [`json_length`], or for a value JSON cannot encode, its least possible size: two bytes an
/// item (minijinja then refuses it as a result anyway).
fn array_length(value: &Value, limit: usize) -> usize {
    json_length(value, limit)
        .unwrap_or_else(|| value.len().map_or(0, |items| items.saturating_mul(2)))
}

/// Length of `value` as `~` writes it, measured up to just past `limit`.
fn display_length(value: &Value, limit: usize) -> usize {
    if let Some(text) = value.as_str() {
        return text.len();
    }
    let mut counter = Counter { written: 0, limit };
    // An error means the limit was passed; `written` says by how much.
    let _ = write!(counter, "{value}");
    counter.written
}

/// Counts bytes and fails once more than `limit` were written.
struct Counter {
    written: usize,
    limit: usize,
}

impl Counter {
    fn count(&mut self, length: usize) -> bool {
        self.written = self.written.saturating_add(length);
        self.written <= self.limit
    }
}

impl std::io::Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if !self.count(bytes.len()) {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl fmt::Write for Counter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if self.count(text.len()) {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

/// A copy of `expr` with every `+`, `*` and `~` replaced by a call of its checked function.
/// Spans are kept, so errors point where they did.
///
/// It recurses once per level of the tree, like minijinja's parser and compiler, so each
/// level's work is in its own function: the recursion's frame stays small enough for the
/// deepest tree `MAX_EXPRESSION_TOKENS` allows on a 2 MiB stack, even unoptimised.
pub(super) fn guarded<'a>(expr: &Expr<'a>) -> Expr<'a> {
    match expr {
        Expr::Var(var) => Expr::Var(Spanned::new(ast::Var { id: var.id }, var.span())),
        Expr::Const(constant) => Expr::Const(Spanned::new(
            ast::Const {
                value: constant.value.clone(),
            },
            constant.span(),
        )),
        Expr::Slice(slice) => guarded_slice(slice),
        Expr::UnaryOp(unary) => guarded_unary(unary),
        Expr::BinOp(binary) => guarded_binary(binary),
        Expr::Compare(compare) => guarded_compare(compare),
        Expr::IfExpr(conditional) => guarded_conditional(conditional),
        Expr::Filter(filter) => guarded_filter(filter),
        Expr::Test(test) => guarded_test(test),
        Expr::GetAttr(attribute) => guarded_attribute(attribute),
        Expr::GetItem(item) => guarded_item(item),
        Expr::Call(call) => guarded_call(call),
        Expr::List(list) => guarded_list(list),
        Expr::Map(map) => guarded_map(map),
    }
}

fn guarded_optional<'a>(expr: &Option<Expr<'a>>) -> Option<Expr<'a>> {
    expr.as_ref().map(guarded)
}

fn guarded_all<'a>(exprs: &[Expr<'a>]) -> Vec<Expr<'a>> {
    exprs.iter().map(guarded).collect()
}

fn guarded_arguments<'a>(args: &[CallArg<'a>]) -> Vec<CallArg<'a>> {
    args.iter().map(guarded_argument).collect()
}

fn guarded_slice<'a>(slice: &Spanned<ast::Slice<'a>>) -> Expr<'a> {
    Expr::Slice(Spanned::new(
        ast::Slice {
            expr: guarded(&slice.expr),
            start: guarded_optional(&slice.start),
            stop: guarded_optional(&slice.stop),
            step: guarded_optional(&slice.step),
        },
        slice.span(),
    ))
}

fn guarded_unary<'a>(unary: &Spanned<ast::UnaryOp<'a>>) -> Expr<'a> {
    // `UnaryOpKind` is neither `Copy` nor `Clone`: the match is the copy.
    #[allow(clippy::needless_match)]
    let op = match unary.op {
        ast::UnaryOpKind::Not => ast::UnaryOpKind::Not,
        ast::UnaryOpKind::Neg => ast::UnaryOpKind::Neg,
    };
    Expr::UnaryOp(Spanned::new(
        ast::UnaryOp {
            op,
            expr: guarded(&unary.expr),
        },
        unary.span(),
    ))
}

fn guarded_binary<'a>(binary: &Spanned<ast::BinOp<'a>>) -> Expr<'a> {
    let left = guarded(&binary.left);
    let right = guarded(&binary.right);
    match Growth::of(binary.op) {
        Some(growth) => Expr::Call(Spanned::new(
            ast::Call {
                expr: Expr::Var(Spanned::new(
                    ast::Var {
                        id: growth.function(),
                    },
                    binary.span(),
                )),
                args: vec![CallArg::Pos(left), CallArg::Pos(right)],
            },
            binary.span(),
        )),
        None => Expr::BinOp(Spanned::new(
            ast::BinOp {
                op: binary.op,
                left,
                right,
            },
            binary.span(),
        )),
    }
}

fn guarded_compare<'a>(compare: &Spanned<ast::Compare<'a>>) -> Expr<'a> {
    Expr::Compare(Spanned::new(
        ast::Compare {
            expr: guarded(&compare.expr),
            ops: compare
                .ops
                .iter()
                .map(|operation| ast::CompareOp {
                    op: operation.op,
                    expr: guarded(&operation.expr),
                })
                .collect(),
        },
        compare.span(),
    ))
}

fn guarded_conditional<'a>(conditional: &Spanned<ast::IfExpr<'a>>) -> Expr<'a> {
    Expr::IfExpr(Spanned::new(
        ast::IfExpr {
            test_expr: guarded(&conditional.test_expr),
            true_expr: guarded(&conditional.true_expr),
            false_expr: guarded_optional(&conditional.false_expr),
        },
        conditional.span(),
    ))
}

fn guarded_filter<'a>(filter: &Spanned<ast::Filter<'a>>) -> Expr<'a> {
    Expr::Filter(Spanned::new(
        ast::Filter {
            name: filter.name,
            expr: guarded_optional(&filter.expr),
            args: guarded_arguments(&filter.args),
        },
        filter.span(),
    ))
}

fn guarded_test<'a>(test: &Spanned<ast::Test<'a>>) -> Expr<'a> {
    Expr::Test(Spanned::new(
        ast::Test {
            name: test.name,
            expr: guarded(&test.expr),
            args: guarded_arguments(&test.args),
        },
        test.span(),
    ))
}

fn guarded_attribute<'a>(attribute: &Spanned<ast::GetAttr<'a>>) -> Expr<'a> {
    Expr::GetAttr(Spanned::new(
        ast::GetAttr {
            expr: guarded(&attribute.expr),
            name: attribute.name,
        },
        attribute.span(),
    ))
}

fn guarded_item<'a>(item: &Spanned<ast::GetItem<'a>>) -> Expr<'a> {
    Expr::GetItem(Spanned::new(
        ast::GetItem {
            expr: guarded(&item.expr),
            subscript_expr: guarded(&item.subscript_expr),
        },
        item.span(),
    ))
}

fn guarded_call<'a>(call: &Spanned<ast::Call<'a>>) -> Expr<'a> {
    Expr::Call(Spanned::new(
        ast::Call {
            expr: guarded(&call.expr),
            args: guarded_arguments(&call.args),
        },
        call.span(),
    ))
}

fn guarded_list<'a>(list: &Spanned<ast::List<'a>>) -> Expr<'a> {
    Expr::List(Spanned::new(
        ast::List {
            items: guarded_all(&list.items),
        },
        list.span(),
    ))
}

fn guarded_map<'a>(map: &Spanned<ast::Map<'a>>) -> Expr<'a> {
    Expr::Map(Spanned::new(
        ast::Map {
            keys: guarded_all(&map.keys),
            values: guarded_all(&map.values),
        },
        map.span(),
    ))
}

fn guarded_argument<'a>(argument: &CallArg<'a>) -> CallArg<'a> {
    match argument {
        CallArg::Pos(expr) => CallArg::Pos(guarded(expr)),
        CallArg::Kwarg(name, expr) => CallArg::Kwarg(name, guarded(expr)),
        CallArg::PosSplat(expr) => CallArg::PosSplat(guarded(expr)),
        CallArg::KwargSplat(expr) => CallArg::KwargSplat(guarded(expr)),
    }
}

/// The dotted variable paths `expr` reads (`steps.fetch.output`, `inputs`), as minijinja's
/// `undeclared_variables(true)` reports them, plus the value a slice is taken of (minijinja
/// omits it, so `secrets.TOKEN[0:4]` counts as reading `secrets.TOKEN`).
pub(super) fn references(expr: &Expr<'_>, paths: &mut BTreeSet<String>) {
    let optional = |expr: &Option<Expr<'_>>, paths: &mut BTreeSet<String>| {
        if let Some(expr) = expr {
            references(expr, paths);
        }
    };
    let arguments = |args: &[CallArg<'_>], paths: &mut BTreeSet<String>| {
        for argument in args {
            match argument {
                CallArg::Pos(expr)
                | CallArg::Kwarg(_, expr)
                | CallArg::PosSplat(expr)
                | CallArg::KwargSplat(expr) => references(expr, paths),
            }
        }
    };
    match expr {
        Expr::Var(var) => {
            paths.insert(var.id.to_owned());
        }
        Expr::Const(_) => {}
        Expr::Slice(slice) => {
            references(&slice.expr, paths);
            optional(&slice.start, paths);
            optional(&slice.stop, paths);
            optional(&slice.step, paths);
        }
        Expr::UnaryOp(unary) => references(&unary.expr, paths),
        Expr::BinOp(binary) => {
            references(&binary.left, paths);
            references(&binary.right, paths);
        }
        Expr::Compare(compare) => {
            references(&compare.expr, paths);
            for operation in &compare.ops {
                references(&operation.expr, paths);
            }
        }
        Expr::IfExpr(conditional) => {
            references(&conditional.test_expr, paths);
            references(&conditional.true_expr, paths);
            optional(&conditional.false_expr, paths);
        }
        Expr::Filter(filter) => {
            optional(&filter.expr, paths);
            arguments(&filter.args, paths);
        }
        Expr::Test(test) => {
            references(&test.expr, paths);
            arguments(&test.args, paths);
        }
        Expr::GetAttr(attribute) => {
            // A chain of attributes on a variable is one path; on anything else, the
            // attributes name nothing in the context.
            let mut names = vec![attribute.name];
            let mut base = &attribute.expr;
            while let Expr::GetAttr(inner) = base {
                names.push(inner.name);
                base = &inner.expr;
            }
            match base {
                Expr::Var(var) => {
                    let mut path = var.id.to_owned();
                    for name in names.iter().rev() {
                        path.push('.');
                        path.push_str(name);
                    }
                    paths.insert(path);
                }
                other => references(other, paths),
            }
        }
        Expr::GetItem(item) => {
            references(&item.expr, paths);
            references(&item.subscript_expr, paths);
        }
        Expr::Call(call) => {
            references(&call.expr, paths);
            arguments(&call.args, paths);
        }
        Expr::List(list) => {
            for item in &list.items {
                references(item, paths);
            }
        }
        Expr::Map(map) => {
            for (key, value) in map.keys.iter().zip(&map.values) {
                references(key, paths);
                references(value, paths);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_lengths_follow_json() {
        let json = |value: serde_json::Value| value.to_string().len();
        assert_eq!(
            joined_length(json([1].into()), json([2, 3].into())),
            json([1, 2, 3].into())
        );
        assert_eq!(joined_length(2, json([2].into())), json([2].into()));
        assert_eq!(
            repeated_length(json([1, 22].into()), 3),
            json([1, 22, 1, 22, 1, 22].into())
        );
        assert_eq!(repeated_length(json([1].into()), 0), 2);
        assert_eq!(repeated_length(2, 1_000_000), 2);
    }
}
