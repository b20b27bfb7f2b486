//! From the YAML tree to the model: one pass that checks shapes, types, and local values
//! (durations, cron, choices) and records what the cross-cutting checks in
//! [`crate::validate`] need: step positions, dependencies, and every expression site.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::diagnostics::{Diagnostic, Pos, code, did_you_mean};
use crate::expr::{Evaluator, OPEN};
use crate::model::{
    Backoff, CatchUp, Concurrency, CronTrigger, HttpRetry, MAX_CATCH_UP_LIMIT, ManualTrigger,
    OnError, OnLimit, Overlap, RetryPolicy, Triggers, WebhookTrigger, Workflow,
};
use crate::tree::{Item, Key, Node};
use crate::{ActionCatalog, Step, tree, validate};

/// The result of [`parse_workflow`]: the model it could build plus every problem found.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// `None` only when the file lacks something a model cannot do without: a mapping at the
    /// top, `name`, `steps`, or a step's `id` / `uses`. Otherwise invalid optional parts fall
    /// back to their defaults, so check [`Parsed::has_errors`] before running it.
    pub workflow: Option<Workflow>,
    /// In source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    pub fn has_errors(&self) -> bool {
        !self.diagnostics.is_empty()
    }
}

/// Parses and validates a workflow file. Never panics; reports every problem at once. `path`
/// only names the file in messages that mention another location.
pub fn parse_workflow(path: &str, source: &str, catalog: &dyn ActionCatalog) -> Parsed {
    let root = match tree::parse(source) {
        Ok(root) => root,
        Err(diagnostic) => {
            return Parsed {
                workflow: None,
                diagnostics: vec![diagnostic],
            };
        }
    };
    let mut builder = Builder {
        evaluator: Evaluator::new(),
        diagnostics: Vec::new(),
        sites: Vec::new(),
    };
    let draft = builder.workflow(&root);
    let Builder {
        evaluator,
        mut diagnostics,
        sites,
    } = builder;
    let workflow = draft.and_then(|draft| {
        validate::check(
            path,
            &draft.steps,
            &sites,
            catalog,
            &evaluator,
            &mut diagnostics,
        );
        draft.assemble()
    });
    diagnostics.sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
    Parsed {
        workflow,
        diagnostics,
    }
}

const WORKFLOW_KEYS: &[&str] = &[
    "name",
    "description",
    "on",
    "inputs",
    "concurrency",
    "timeout",
    "steps",
    "on_failure",
    "outputs",
];
const TRIGGER_KEYS: &[&str] = &["manual", "webhook", "cron"];
const WEBHOOK_KEYS: &[&str] = &["source", "events", "filter"];
const CRON_KEYS: &[&str] = &[
    "schedule",
    "timezone",
    "catch_up",
    "max_catch_up",
    "overlap",
];
const CONCURRENCY_KEYS: &[&str] = &["key", "limit", "on_limit"];
const STEP_KEYS: &[&str] = &[
    "id",
    "uses",
    "with",
    "needs",
    "if",
    "for_each",
    "max_parallel",
    "connection",
    "retry",
    "http_retry",
    "timeout",
    "on_error",
];
const RETRY_KEYS: &[&str] = &["max_attempts", "backoff", "initial_delay", "max_delay"];
const HTTP_RETRY_KEYS: &[&str] = &["max_attempts", "initial_delay", "max_delay", "budget"];

/// Where an expression is evaluated, which decides the names it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Triggers and concurrency: evaluated before any step runs.
    Run,
    /// Inside step `index` (an index into the list of all steps, `on_failure` ones after the
    /// main ones); `item` says whether `item` / `index` of `for_each` are in scope.
    Step { index: usize, item: bool },
    /// Workflow outputs: evaluated after all steps.
    Outputs,
}

/// A string the engine will evaluate, with where it sits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Site<'n> {
    pub text: &'n str,
    pub pos: Pos,
    /// A bare expression (a condition) rather than a string with `${{ }}` in it.
    pub bare: bool,
    pub scope: Scope,
}

impl Site<'_> {
    /// Whether this is a step's `if`, the one place that sees `needs` and status functions.
    pub fn is_step_condition(&self) -> bool {
        self.bare && matches!(self.scope, Scope::Step { .. })
    }
}

/// The list a step is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepList {
    Main,
    OnFailure,
}

impl StepList {
    pub fn key(self) -> &'static str {
        match self {
            StepList::Main => "steps",
            StepList::OnFailure => "on_failure",
        }
    }
}

/// A value with the position it was written at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located<T> {
    pub value: T,
    pub pos: Pos,
}

/// A step as written, with the positions validation needs.
pub(crate) struct StepDraft<'n> {
    pub pos: Pos,
    pub list: StepList,
    pub id: Option<Located<&'n str>>,
    /// `None` when `needs:` is absent (the step depends on the one above).
    pub needs: Option<Vec<Located<&'n str>>>,
    pub uses: Option<Located<&'n str>>,
    /// The `with:` key and value.
    pub with: Option<(&'n Key, &'n Item)>,
    /// `None` when `with` is not a mapping (already reported; nothing to check it against).
    pub input: Option<Map<String, Value>>,
    pub for_each: Option<Value>,
    pub max_parallel: Option<u32>,
    pub condition: Option<String>,
    pub connection: Option<String>,
    pub retry: RetryPolicy,
    pub http_retry: Option<HttpRetry>,
    pub timeout: Option<Duration>,
    pub on_error: OnError,
}

impl StepDraft<'_> {
    /// Dependencies as the engine sees them: explicit `needs`, else the step above.
    pub fn resolved_needs<'a>(&'a self, above: Option<&'a Self>) -> Vec<&'a str> {
        match &self.needs {
            Some(needs) => needs.iter().map(|need| need.value).collect(),
            None => above
                .and_then(|step| step.id)
                .map(|id| id.value)
                .into_iter()
                .collect(),
        }
    }
}

struct Draft<'n> {
    name: Option<String>,
    description: Option<String>,
    on: Triggers,
    inputs: Option<Map<String, Value>>,
    concurrency: Option<Concurrency>,
    timeout: Option<Duration>,
    /// `steps`, then `on_failure`.
    steps: Vec<StepDraft<'n>>,
    /// False when `steps` or one of the steps could not be read at all.
    complete: bool,
    outputs: Map<String, Value>,
}

impl Draft<'_> {
    fn assemble(self) -> Option<Workflow> {
        if !self.complete {
            return None;
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        let mut on_failure = Vec::new();
        for (index, draft) in self.steps.iter().enumerate() {
            let above = index
                .checked_sub(1)
                .and_then(|above| self.steps.get(above))
                .filter(|above| above.list == draft.list);
            let list = match draft.list {
                StepList::Main => &mut steps,
                StepList::OnFailure => &mut on_failure,
            };
            list.push(Step {
                id: draft.id?.value.to_owned(),
                uses: draft.uses?.value.to_owned(),
                with: draft.input.clone().unwrap_or_default(),
                needs: draft
                    .resolved_needs(above)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                for_each: draft.for_each.clone(),
                max_parallel: draft.max_parallel,
                condition: draft.condition.clone(),
                connection: draft.connection.clone(),
                retry: draft.retry,
                http_retry: draft.http_retry,
                timeout: draft.timeout,
                on_error: draft.on_error,
            });
        }
        Some(Workflow {
            name: self.name?,
            description: self.description,
            on: self.on,
            inputs: self.inputs,
            concurrency: self.concurrency,
            timeout: self.timeout,
            steps,
            on_failure,
            outputs: self.outputs,
        })
    }
}

/// The keys of one mapping, after unknown keys were reported.
struct Fields<'n> {
    pos: Pos,
    entries: &'n [(Key, Item)],
}

impl<'n> Fields<'n> {
    fn entry(&self, name: &str) -> Option<&'n (Key, Item)> {
        self.entries.iter().find(|(key, _)| key.name == name)
    }

    fn get(&self, name: &str) -> Option<&'n Item> {
        self.entry(name).map(|(_, item)| item)
    }
}

struct Builder<'n> {
    evaluator: Evaluator,
    diagnostics: Vec<Diagnostic>,
    sites: Vec<Site<'n>>,
}

impl<'n> Builder<'n> {
    fn report(&mut self, code: &'static str, pos: Pos, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            code,
            message: message.into(),
            line: pos.line,
            column: pos.column,
        });
    }

    fn wrong_type(&mut self, item: &Item, what: &str, expected: &str) {
        let found = item.node.kind();
        self.report(
            code::WRONG_TYPE,
            item.pos,
            format!("{what} must be {expected}, found {found}"),
        );
    }

    /// A mapping whose keys must come from `allowed`; unknown keys are reported with a hint.
    fn mapping(&mut self, item: &'n Item, what: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let Node::Mapping(entries) = &item.node else {
            self.wrong_type(item, what, "a mapping");
            return None;
        };
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                let hint = did_you_mean(&key.name, allowed.iter().copied());
                self.report(
                    code::UNKNOWN_KEY,
                    key.pos,
                    format!("unknown key `{}` in {what}{hint}", key.name),
                );
            }
        }
        Some(Fields {
            pos: item.pos,
            entries,
        })
    }

    fn required(&mut self, fields: &Fields<'n>, name: &str, what: &str) -> Option<&'n Item> {
        let item = fields.get(name);
        if item.is_none() {
            self.report(
                code::MISSING_KEY,
                fields.pos,
                format!("missing required key `{name}` in {what}"),
            );
        }
        item
    }

    fn string(&mut self, item: &'n Item, what: &str) -> Option<&'n str> {
        match &item.node {
            Node::String(text) => Some(text),
            _ => {
                self.wrong_type(item, what, "a string");
                None
            }
        }
    }

    /// A string, or a list of strings (`needs: a` is `needs: [a]`).
    fn string_list(&mut self, item: &'n Item, what: &str) -> Vec<Located<&'n str>> {
        let items = match &item.node {
            Node::Sequence(items) => items.as_slice(),
            Node::String(_) => std::slice::from_ref(item),
            _ => {
                self.wrong_type(item, what, "a string or a list of strings");
                return Vec::new();
            }
        };
        items
            .iter()
            .filter_map(|element| {
                let value = self.string(element, &format!("each entry of {what}"))?;
                Some(Located {
                    value,
                    pos: element.pos,
                })
            })
            .collect()
    }

    fn duration(&mut self, item: &'n Item, what: &str) -> Option<Duration> {
        let parsed = match &item.node {
            Node::String(text) => humantime::parse_duration(text.trim())
                .map_err(|error| format!("invalid duration `{text}` for {what}: {error}")),
            Node::Number(number) => Err(format!(
                "invalid duration `{number}` for {what}: add a unit, e.g. `{number}s`"
            )),
            _ => {
                self.wrong_type(item, what, "a duration such as `30s`");
                return None;
            }
        };
        parsed
            .map_err(|message| self.report(code::INVALID_DURATION, item.pos, message))
            .ok()
    }

    /// An integer of at least 1; `code` classifies out-of-range values.
    fn positive(&mut self, item: &'n Item, what: &str, code: &'static str) -> Option<u32> {
        let Node::Number(number) = &item.node else {
            self.wrong_type(item, what, "a positive integer");
            return None;
        };
        let value = number
            .as_u64()
            .and_then(|value| u32::try_from(value).ok())
            .filter(|value| *value >= 1);
        if value.is_none() {
            self.report(
                code,
                item.pos,
                format!(
                    "{what} must be an integer from 1 to {}, found {number}",
                    u32::MAX
                ),
            );
        }
        value
    }

    /// One of a fixed set of words.
    fn choice<T: Copy>(
        &mut self,
        item: &'n Item,
        what: &str,
        choices: &[(&str, T)],
        code: &'static str,
    ) -> Option<T> {
        let text = self.string(item, what)?;
        let found = choices.iter().find(|(name, _)| *name == text);
        if found.is_none() {
            let names: Vec<String> = choices
                .iter()
                .map(|(name, _)| format!("`{name}`"))
                .collect();
            let hint = did_you_mean(text, choices.iter().map(|(name, _)| *name));
            self.report(
                code,
                item.pos,
                format!(
                    "invalid {what} `{text}`: expected one of {}{hint}",
                    names.join(", ")
                ),
            );
        }
        found.map(|(_, value)| *value)
    }

    /// Records every template string in `item` for the expression checks.
    fn templates(&mut self, item: &'n Item, scope: Scope) {
        for (text, pos) in item.strings() {
            if text.contains(OPEN) {
                self.sites.push(Site {
                    text,
                    pos,
                    bare: false,
                    scope,
                });
            }
        }
    }

    /// `if:` / `filter:`: a bare expression or one `${{ }}`; returns the expression source.
    fn condition(&mut self, item: &'n Item, what: &str, scope: Scope) -> Option<String> {
        let text = match &item.node {
            Node::Bool(value) => return Some(value.to_string()),
            Node::String(text) => text.as_str(),
            _ => {
                self.wrong_type(item, what, "an expression");
                return None;
            }
        };
        let expr = match self.evaluator.single_expression(text) {
            Some(inner) => inner.trim(),
            None if text.contains(OPEN) => {
                let message = match self.evaluator.check_syntax(text) {
                    Err(error) => format!("invalid expression in {what}: {error}"),
                    Ok(()) => {
                        format!("{what} must be a single expression, with or without `${{{{ }}}}`")
                    }
                };
                self.report(code::EXPRESSION_SYNTAX, item.pos, message);
                return None;
            }
            None => text.trim(),
        };
        self.sites.push(Site {
            text: expr,
            pos: item.pos,
            bare: true,
            scope,
        });
        Some(expr.to_owned())
    }

    fn workflow(&mut self, root: &'n Item) -> Option<Draft<'n>> {
        let fields = self.mapping(root, "the workflow", WORKFLOW_KEYS)?;
        let name = self
            .required(&fields, "name", "the workflow")
            .and_then(|item| self.name(item));
        let description = fields
            .get("description")
            .and_then(|item| self.string(item, "`description`"))
            .map(str::to_owned);
        let on = fields
            .get("on")
            .map(|item| self.triggers(item))
            .unwrap_or_default();
        let inputs = fields.get("inputs").and_then(|item| self.inputs(item));
        let concurrency = fields
            .get("concurrency")
            .and_then(|item| self.concurrency(item));
        let timeout = fields
            .get("timeout")
            .and_then(|item| self.duration(item, "`timeout`"));
        let mut complete = true;
        let mut steps = Vec::new();
        match self.required(&fields, "steps", "the workflow") {
            Some(item) => self.steps(item, StepList::Main, &mut steps, &mut complete),
            None => complete = false,
        }
        if let Some(item) = fields.get("on_failure") {
            self.steps(item, StepList::OnFailure, &mut steps, &mut complete);
        }
        let outputs = fields
            .get("outputs")
            .map(|item| self.outputs(item))
            .unwrap_or_default();
        Some(Draft {
            name,
            description,
            on,
            inputs,
            concurrency,
            timeout,
            steps,
            complete,
            outputs,
        })
    }

    fn name(&mut self, item: &'n Item) -> Option<String> {
        let name = self.string(item, "`name`")?;
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            self.report(
                code::INVALID_NAME,
                item.pos,
                format!(
                    "invalid workflow name `{name}`: use lowercase letters, digits and `-` only"
                ),
            );
        }
        Some(name.to_owned())
    }

    fn triggers(&mut self, item: &'n Item) -> Triggers {
        let Some(fields) = self.mapping(item, "`on`", TRIGGER_KEYS) else {
            return Triggers::default();
        };
        let manual = fields.get("manual").and_then(|item| match &item.node {
            Node::Null => Some(ManualTrigger {}),
            Node::Mapping(_) => {
                self.mapping(item, "`on.manual`", &[])?;
                Some(ManualTrigger {})
            }
            _ => {
                self.wrong_type(item, "`on.manual`", "an empty mapping `{}`");
                None
            }
        });
        let webhook = fields.get("webhook").and_then(|item| self.webhook(item));
        let cron = match fields.get("cron").map(|item| (item, &item.node)) {
            None => Vec::new(),
            Some((_, Node::Sequence(items))) => {
                items.iter().filter_map(|item| self.cron(item)).collect()
            }
            Some((item, _)) => self.cron(item).into_iter().collect(),
        };
        Triggers {
            manual,
            webhook,
            cron,
        }
    }

    fn webhook(&mut self, item: &'n Item) -> Option<WebhookTrigger> {
        let fields = self.mapping(item, "`on.webhook`", WEBHOOK_KEYS)?;
        let source = self
            .required(&fields, "source", "`on.webhook`")
            .and_then(|item| self.string(item, "`on.webhook.source`"));
        let events = fields
            .get("events")
            .map(|item| self.string_list(item, "`on.webhook.events`"))
            .unwrap_or_default();
        let filter = fields
            .get("filter")
            .and_then(|item| self.condition(item, "`on.webhook.filter`", Scope::Run));
        Some(WebhookTrigger {
            source: source?.to_owned(),
            events: events
                .into_iter()
                .map(|event| event.value.to_owned())
                .collect(),
            filter,
        })
    }

    fn cron(&mut self, item: &'n Item) -> Option<CronTrigger> {
        let fields = self.mapping(item, "`on.cron`", CRON_KEYS)?;
        let schedule = self
            .required(&fields, "schedule", "`on.cron`")
            .and_then(|item| self.schedule(item));
        let timezone = fields.get("timezone").and_then(|item| self.timezone(item));
        let catch_up = fields
            .get("catch_up")
            .and_then(|item| {
                self.choice(
                    item,
                    "`catch_up`",
                    &[
                        ("none", CatchUp::None),
                        ("latest", CatchUp::Latest),
                        ("all", CatchUp::All),
                    ],
                    code::INVALID_VALUE,
                )
            })
            .unwrap_or_default();
        let max_catch_up = fields.entry("max_catch_up").and_then(|(key, item)| {
            if catch_up != CatchUp::All {
                self.report(
                    code::INVALID_VALUE,
                    key.pos,
                    "`max_catch_up` only applies with `catch_up: all`",
                );
            }
            let value = self.positive(item, "`max_catch_up`", code::INVALID_VALUE)?;
            if value > MAX_CATCH_UP_LIMIT {
                self.report(
                    code::INVALID_VALUE,
                    item.pos,
                    format!("`max_catch_up` must be at most {MAX_CATCH_UP_LIMIT}, found {value}"),
                );
                return None;
            }
            Some(value)
        });
        let overlap = fields
            .get("overlap")
            .and_then(|item| {
                self.choice(
                    item,
                    "`overlap`",
                    &[
                        ("skip", Overlap::Skip),
                        ("allow", Overlap::Allow),
                        ("queue", Overlap::Queue),
                    ],
                    code::INVALID_VALUE,
                )
            })
            .unwrap_or_default();
        Some(CronTrigger {
            schedule: schedule?,
            timezone,
            catch_up,
            max_catch_up,
            overlap,
        })
    }

    fn schedule(&mut self, item: &'n Item) -> Option<String> {
        let schedule = self.string(item, "`schedule`")?.trim();
        let fields = schedule.split_whitespace().count();
        let result = if !schedule.starts_with('@') && !(5..=6).contains(&fields) {
            Err(format!(
                "expected 5 fields (or 6 with seconds first), found {fields}"
            ))
        } else {
            crate::model::parse_cron(schedule)
                .map(drop)
                .map_err(|error| error.to_string())
        };
        match result {
            Ok(()) => Some(schedule.to_owned()),
            Err(error) => {
                self.report(
                    code::INVALID_CRON,
                    item.pos,
                    format!("invalid cron schedule `{schedule}`: {error}"),
                );
                None
            }
        }
    }

    fn timezone(&mut self, item: &'n Item) -> Option<String> {
        let timezone = self.string(item, "`timezone`")?;
        if timezone.parse::<chrono_tz::Tz>().is_ok() {
            return Some(timezone.to_owned());
        }
        self.report(
            code::INVALID_TIMEZONE,
            item.pos,
            format!(
                "unknown time zone `{timezone}`: use an IANA name such as `Europe/Berlin` or `UTC`"
            ),
        );
        None
    }

    fn inputs(&mut self, item: &'n Item) -> Option<Map<String, Value>> {
        let Node::Mapping(entries) = &item.node else {
            self.wrong_type(item, "`inputs`", "a mapping of input names to JSON Schemas");
            return None;
        };
        let mut inputs = Map::new();
        for (key, schema) in entries {
            let json = schema.to_json();
            if !json.is_object() {
                self.wrong_type(
                    schema,
                    &format!("input `{}`", key.name),
                    "a JSON Schema mapping",
                );
                continue;
            }
            if let Err(error) = jsonschema::draft202012::new(&json) {
                self.report(
                    code::INVALID_INPUT_SCHEMA,
                    key.pos,
                    format!("invalid JSON Schema for input `{}`: {error}", key.name),
                );
            }
            inputs.insert(key.name.clone(), json);
        }
        Some(inputs)
    }

    fn concurrency(&mut self, item: &'n Item) -> Option<Concurrency> {
        let fields = self.mapping(item, "`concurrency`", CONCURRENCY_KEYS)?;
        let key = self
            .required(&fields, "key", "`concurrency`")
            .and_then(|item| {
                self.templates(item, Scope::Run);
                self.string(item, "`concurrency.key`")
            });
        let limit = fields
            .get("limit")
            .and_then(|item| self.positive(item, "`concurrency.limit`", code::INVALID_VALUE))
            .unwrap_or(1);
        let on_limit = fields
            .get("on_limit")
            .and_then(|item| {
                self.choice(
                    item,
                    "`concurrency.on_limit`",
                    &[
                        ("queue", OnLimit::Queue),
                        ("cancel_new", OnLimit::CancelNew),
                        ("cancel_running", OnLimit::CancelRunning),
                    ],
                    code::INVALID_VALUE,
                )
            })
            .unwrap_or_default();
        Some(Concurrency {
            key: key?.to_owned(),
            limit,
            on_limit,
        })
    }

    fn outputs(&mut self, item: &'n Item) -> Map<String, Value> {
        if !matches!(item.node, Node::Mapping(_)) {
            self.wrong_type(item, "`outputs`", "a mapping");
            return Map::new();
        }
        self.templates(item, Scope::Outputs);
        match item.to_json() {
            Value::Object(outputs) => outputs,
            _ => Map::new(),
        }
    }

    /// Appends the steps of `list` to `drafts`; clears `complete` when a step is too broken to
    /// become part of the model.
    fn steps(
        &mut self,
        item: &'n Item,
        list: StepList,
        drafts: &mut Vec<StepDraft<'n>>,
        complete: &mut bool,
    ) {
        let Node::Sequence(items) = &item.node else {
            *complete = false;
            self.wrong_type(item, &format!("`{}`", list.key()), "a list of steps");
            return;
        };
        if items.is_empty() && list == StepList::Main {
            self.report(
                code::NO_STEPS,
                item.pos,
                "`steps` is empty: a workflow needs at least one step",
            );
        }
        for item in items {
            // Indexes in `Scope::Step` refer to `drafts`, so pass the index the draft gets.
            match self.step(drafts.len(), list, item) {
                Some(draft) => drafts.push(draft),
                None => *complete = false,
            }
        }
    }

    fn step(&mut self, index: usize, list: StepList, item: &'n Item) -> Option<StepDraft<'n>> {
        let fields = self.mapping(item, "a step", STEP_KEYS)?;
        let id = self
            .required(&fields, "id", "a step")
            .and_then(|item| self.step_id(item));
        let uses = self.required(&fields, "uses", "a step").and_then(|item| {
            let value = self.string(item, "`uses`")?;
            Some(Located {
                value,
                pos: item.pos,
            })
        });
        let needs = fields
            .get("needs")
            .map(|item| self.string_list(item, "`needs`"));
        let for_each_item = fields.get("for_each");
        let in_step = Scope::Step {
            index,
            item: for_each_item.is_some(),
        };
        let with = fields.entry("with");
        let input = match with.map(|(_, item)| (item, &item.node)) {
            None | Some((_, Node::Null)) => Some(Map::new()),
            Some((item, Node::Mapping(_))) => {
                self.templates(item, in_step);
                match item.to_json() {
                    Value::Object(input) => Some(input),
                    _ => None,
                }
            }
            Some((item, _)) => {
                self.wrong_type(item, "`with`", "a mapping");
                None
            }
        };
        let for_each = for_each_item.and_then(|item| self.for_each(index, item));
        let max_parallel = fields.entry("max_parallel").and_then(|(key, item)| {
            if for_each_item.is_none() {
                self.report(
                    code::INVALID_VALUE,
                    key.pos,
                    "`max_parallel` only applies to a step with `for_each`",
                );
            }
            self.positive(item, "`max_parallel`", code::INVALID_VALUE)
        });
        let condition = fields
            .get("if")
            .and_then(|item| self.condition(item, "`if`", in_step));
        let connection = fields
            .get("connection")
            .and_then(|item| self.string(item, "`connection`"))
            .map(str::to_owned);
        let retry = fields
            .get("retry")
            .map(|item| self.retry(item))
            .unwrap_or_default();
        let http_retry = fields.get("http_retry").map(|item| self.http_retry(item));
        let timeout = fields
            .get("timeout")
            .and_then(|item| self.duration(item, "`timeout`"));
        let on_error = fields
            .get("on_error")
            .and_then(|item| {
                self.choice(
                    item,
                    "`on_error`",
                    &[("fail", OnError::Fail), ("continue", OnError::Continue)],
                    code::INVALID_ON_ERROR,
                )
            })
            .unwrap_or_default();
        Some(StepDraft {
            pos: item.pos,
            list,
            id,
            needs,
            uses,
            with: with.map(|(key, item)| (key, item)),
            input,
            for_each,
            max_parallel,
            condition,
            connection,
            retry,
            http_retry,
            timeout,
            on_error,
        })
    }

    fn step_id(&mut self, item: &'n Item) -> Option<Located<&'n str>> {
        let id = self.string(item, "a step `id`")?;
        let mut chars = id.chars();
        let valid = chars
            .next()
            .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            self.report(
                code::INVALID_STEP_ID,
                item.pos,
                format!(
                    "invalid step id `{id}`: start with a lowercase letter or `_`, then use lowercase letters, digits, `_` and `-`"
                ),
            );
        }
        Some(Located {
            value: id,
            pos: item.pos,
        })
    }

    /// `for_each`: one `${{ }}` producing an array, or a literal list (whose strings may be
    /// templates). The list expression itself cannot see `item`.
    fn for_each(&mut self, index: usize, item: &'n Item) -> Option<Value> {
        let scope = Scope::Step { index, item: false };
        match &item.node {
            Node::Sequence(_) => {
                self.templates(item, scope);
                Some(item.to_json())
            }
            Node::String(text)
                if self.evaluator.single_expression(text).is_some()
                    || self.evaluator.check_syntax(text).is_err() =>
            {
                self.templates(item, scope);
                Some(item.to_json())
            }
            _ => {
                self.wrong_type(item, "`for_each`", "a list or a single `${{ }}` expression");
                None
            }
        }
    }

    fn retry(&mut self, item: &'n Item) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        let Some(fields) = self.mapping(item, "`retry`", RETRY_KEYS) else {
            return policy;
        };
        if let Some(value) = fields
            .get("max_attempts")
            .and_then(|item| self.positive(item, "`max_attempts`", code::INVALID_RETRY))
        {
            policy.max_attempts = value;
        }
        if let Some(value) = fields.get("backoff").and_then(|item| {
            self.choice(
                item,
                "`backoff`",
                &[
                    ("none", Backoff::None),
                    ("fixed", Backoff::Fixed),
                    ("exponential", Backoff::Exponential),
                ],
                code::INVALID_RETRY,
            )
        }) {
            policy.backoff = value;
        }
        let initial = fields
            .get("initial_delay")
            .and_then(|item| self.duration(item, "`initial_delay`"));
        let max = fields
            .get("max_delay")
            .and_then(|item| self.duration(item, "`max_delay`"));
        policy.initial_delay = initial.unwrap_or(policy.initial_delay);
        policy.max_delay = max.unwrap_or(policy.max_delay);
        if (initial.is_some() || max.is_some()) && policy.initial_delay > policy.max_delay {
            self.report(
                code::INVALID_RETRY,
                fields.pos,
                format!(
                    "`initial_delay` ({}) is longer than `max_delay` ({})",
                    humantime::format_duration(policy.initial_delay),
                    humantime::format_duration(policy.max_delay)
                ),
            );
        }
        policy
    }

    fn http_retry(&mut self, item: &'n Item) -> HttpRetry {
        let mut policy = HttpRetry::default();
        let Some(fields) = self.mapping(item, "`http_retry`", HTTP_RETRY_KEYS) else {
            return policy;
        };
        policy.max_attempts = fields.get("max_attempts").and_then(|item| {
            let value = self.positive(item, "`http_retry.max_attempts`", code::INVALID_RETRY)?;
            if value > HttpRetry::MAX_ATTEMPTS {
                self.report(
                    code::INVALID_RETRY,
                    item.pos,
                    format!(
                        "`http_retry.max_attempts` must be at most {}, found {value}",
                        HttpRetry::MAX_ATTEMPTS
                    ),
                );
                return None;
            }
            Some(value)
        });
        policy.initial_delay = fields
            .get("initial_delay")
            .and_then(|item| self.duration(item, "`http_retry.initial_delay`"));
        policy.max_delay = fields
            .get("max_delay")
            .and_then(|item| self.duration(item, "`http_retry.max_delay`"));
        if let (Some(initial), Some(max)) = (policy.initial_delay, policy.max_delay)
            && initial > max
        {
            self.report(
                code::INVALID_RETRY,
                fields.pos,
                format!(
                    "`http_retry.initial_delay` ({}) is longer than `http_retry.max_delay` ({})",
                    humantime::format_duration(initial),
                    humantime::format_duration(max)
                ),
            );
        }
        policy.budget = fields.get("budget").and_then(|item| {
            let budget = self.duration(item, "`http_retry.budget`")?;
            if budget > HttpRetry::MAX_BUDGET {
                self.report(
                    code::INVALID_RETRY,
                    item.pos,
                    format!(
                        "`http_retry.budget` must be at most {}, found {}: longer waits belong \
                         in the step's `retry:`",
                        humantime::format_duration(HttpRetry::MAX_BUDGET),
                        humantime::format_duration(budget)
                    ),
                );
                return None;
            }
            Some(budget)
        });
        policy
    }
}
