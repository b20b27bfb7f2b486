//! Checks that need the whole file: step ids and the dependency graph, actions and their input
//! schemas, and what every expression parses to and reads.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use crate::ActionCatalog;
use crate::diagnostics::{Diagnostic, Pos, code, did_you_mean};
use crate::expr::{Evaluator, OPEN, STATUS_FUNCTIONS};
use crate::parse::{Scope, Site, StepDraft, StepList};
use crate::tree::{Item, Key, Node};

/// Context names every expression may read (README.md, "Write a workflow").
const RUN_ROOTS: &[&str] = &["trigger", "inputs", "run", "workflow", "secrets"];

/// Schema keywords that judge a value as a whole: when the value holds a template anywhere, the
/// verdict is unknowable before run time.
const WHOLE_VALUE_KEYWORDS: &[&str] = &[
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "const",
    "enum",
    "uniqueItems",
    "dependentSchemas",
];

pub(crate) fn check(
    path: &str,
    steps: &[StepDraft<'_>],
    sites: &[Site<'_>],
    catalog: &dyn ActionCatalog,
    evaluator: &Evaluator,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut report = |code: &'static str, pos: Pos, message: String| {
        diagnostics.push(Diagnostic {
            code,
            message,
            line: pos.line,
            column: pos.column,
        });
    };
    let ids = step_ids(path, steps, &mut report);
    let graph = Graph::new(steps, &ids, &mut report);
    let acyclic = graph.report_cycles(steps, &mut report);
    for step in steps {
        check_input(step, catalog, &mut report);
    }
    let mut references = References {
        steps,
        ids: &ids,
        graph: &graph,
        acyclic,
        globals: evaluator.globals().collect(),
        ancestors: HashMap::new(),
    };
    for site in sites {
        let paths = if site.bare {
            evaluator.expression_references(site.text)
        } else {
            evaluator.references(site.text)
        };
        match paths {
            Err(error) => report(
                code::EXPRESSION_SYNTAX,
                site.pos,
                format!("invalid expression in `{}`: {error}", shorten(site.text)),
            ),
            Ok(paths) => {
                for (code, problem) in references.check(site, &paths) {
                    report(code, site.pos, problem);
                }
            }
        }
    }
}

/// Step ids by name (first definition wins), reporting duplicates. One namespace for `steps`
/// and `on_failure`: both are read as `steps.<id>`.
fn step_ids<'n>(
    path: &str,
    steps: &[StepDraft<'n>],
    report: &mut impl FnMut(&'static str, Pos, String),
) -> HashMap<&'n str, usize> {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (index, step) in steps.iter().enumerate() {
        let Some(id) = step.id else { continue };
        match ids.get(id.value).and_then(|first| steps.get(*first)?.id) {
            Some(first) => report(
                code::DUPLICATE_STEP_ID,
                id.pos,
                format!(
                    "duplicate step id `{}` (first defined at {path}:{})",
                    id.value, first.pos
                ),
            ),
            None => {
                ids.insert(id.value, index);
            }
        }
    }
    ids
}

/// Resolved dependencies: `edges[i]` lists `(j, pos)` for each step `j` that step `i` needs,
/// with the position that introduced the edge.
struct Graph {
    edges: Vec<Vec<(usize, Pos)>>,
}

impl Graph {
    fn new(
        steps: &[StepDraft<'_>],
        ids: &HashMap<&str, usize>,
        report: &mut impl FnMut(&'static str, Pos, String),
    ) -> Self {
        let mut edges = Vec::with_capacity(steps.len());
        for (index, step) in steps.iter().enumerate() {
            let mut needs = Vec::new();
            match &step.needs {
                Some(explicit) => {
                    for need in explicit {
                        match ids.get(need.value) {
                            Some(&target) if steps[target].list != step.list => report(
                                code::NEEDS_ACROSS_LISTS,
                                need.pos,
                                across_lists(need.value, step.list),
                            ),
                            Some(&target) => needs.push((target, need.pos)),
                            None => {
                                let hint = did_you_mean(need.value, ids.keys().copied());
                                report(
                                    code::UNKNOWN_NEED,
                                    need.pos,
                                    format!("`needs` names unknown step `{}`{hint}", need.value),
                                );
                            }
                        }
                    }
                }
                None => needs.extend(
                    index
                        .checked_sub(1)
                        .filter(|above| steps[*above].list == step.list)
                        .map(|above| (above, step.pos)),
                ),
            }
            edges.push(needs);
        }
        Self { edges }
    }

    /// Reports each distinct cycle once; returns whether the graph is acyclic.
    fn report_cycles(
        &self,
        steps: &[StepDraft<'_>],
        report: &mut impl FnMut(&'static str, Pos, String),
    ) -> bool {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut marks = vec![Mark::New; self.edges.len()];
        let mut seen: BTreeSet<Vec<usize>> = BTreeSet::new();
        for start in 0..self.edges.len() {
            if marks[start] != Mark::New {
                continue;
            }
            // Iterative DFS (a long chain of steps must not overflow the stack): the stack holds
            // the open nodes with the index of the next edge to follow.
            let mut stack = vec![(start, 0)];
            marks[start] = Mark::Open;
            while let Some(top) = stack.last_mut() {
                let (node, next) = *top;
                top.1 += 1;
                let Some(&(target, _)) = self.edges[node].get(next) else {
                    marks[node] = Mark::Done;
                    stack.pop();
                    continue;
                };
                match marks[target] {
                    Mark::New => {
                        marks[target] = Mark::Open;
                        stack.push((target, 0));
                    }
                    Mark::Open => {
                        let from = stack
                            .iter()
                            .position(|(open, _)| *open == target)
                            .unwrap_or(0);
                        let mut cycle: Vec<usize> =
                            stack[from..].iter().map(|(open, _)| *open).collect();
                        let smallest = (0..cycle.len()).min_by_key(|at| cycle[*at]).unwrap_or(0);
                        cycle.rotate_left(smallest);
                        if seen.insert(cycle.clone()) {
                            self.report_cycle(&cycle, steps, report);
                        }
                    }
                    Mark::Done => {}
                }
            }
        }
        seen.is_empty()
    }

    fn report_cycle(
        &self,
        cycle: &[usize],
        steps: &[StepDraft<'_>],
        report: &mut impl FnMut(&'static str, Pos, String),
    ) {
        let name = |index: usize| {
            steps
                .get(index)
                .and_then(|step| step.id)
                .map_or("?", |id| id.value)
        };
        let (first, second) = (cycle[0], cycle.get(1).copied().unwrap_or(cycle[0]));
        let pos = self.edges[first]
            .iter()
            .find(|(target, _)| *target == second)
            .map_or(steps[first].pos, |(_, pos)| *pos);
        let mut path: Vec<String> = cycle
            .iter()
            .map(|index| format!("`{}`", name(*index)))
            .collect();
        path.push(format!("`{}`", name(first)));
        report(
            code::CYCLE,
            pos,
            format!(
                "dependency cycle: {} (each step needs the next)",
                path.join(" -> ")
            ),
        );
    }
}

fn across_lists(need: &str, reader: StepList) -> String {
    match reader {
        StepList::OnFailure => format!(
            "`needs` names `{need}`, a step of `steps`: an `on_failure` step may only need `on_failure` steps (it can read `steps.{need}` without needing it)"
        ),
        StepList::Main => format!(
            "`needs` names `{need}`, an `on_failure` step: those run only after the run failed, so no step of `steps` can wait for them"
        ),
    }
}

/// Validates `with` against the action's input schema. Strings holding `${{` are only known at
/// run time, so failures that depend on them are not reported.
fn check_input(
    step: &StepDraft<'_>,
    catalog: &dyn ActionCatalog,
    report: &mut impl FnMut(&'static str, Pos, String),
) {
    let Some(uses) = step.uses else { return };
    let Some(schema) = catalog.input_schema(uses.value) else {
        let hint = did_you_mean(uses.value, catalog.action_names());
        report(
            code::UNKNOWN_ACTION,
            uses.pos,
            format!("unknown action `{}`{hint}", uses.value),
        );
        return;
    };
    let Some(input) = &step.input else { return };
    // A schema that does not compile is a catalog bug, caught by the integrations' tests.
    let Ok(validator) = jsonschema::validator_for(schema) else {
        return;
    };
    let input = Value::Object(input.clone());
    for error in validator.iter_errors(&input) {
        let instance = error.instance();
        let keyword = error.kind().keyword();
        if has_template(instance)
            && (instance.is_string() || WHOLE_VALUE_KEYWORDS.contains(&keyword))
        {
            continue;
        }
        let mut pos = uses.pos;
        let mut at = String::from("`with`");
        if let Some((key, item)) = step.with {
            let (found, item) = locate(key, item, error.instance_path());
            pos = found;
            at = format!("`with{}`", pointer_to_path(error.instance_path()));
            if let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } =
                error.kind()
                && let Node::Mapping(entries) = &item.node
                && let Some((key, _)) = entries
                    .iter()
                    .find(|(key, _)| unexpected.contains(&key.name))
            {
                pos = key.pos;
            }
        }
        let message = declared_message(schema, &error).map_or_else(
            || format!("{at}: {error}"),
            |message| format!("`with`: {message}"),
        );
        report(
            code::INVALID_INPUT,
            pos,
            format!("invalid input for `{}`: {message}", uses.value),
        );
    }
}

/// The message the schema object whose keyword failed gives for it (its `errorMessage`, the
/// ajv-errors convention), so a rule over several fields reads as its author wrote it.
pub fn declared_message<'s>(
    schema: &'s Value,
    error: &jsonschema::ValidationError<'_>,
) -> Option<&'s str> {
    let keyword = error.schema_path().as_str();
    let holder = keyword.rsplit_once('/').map_or("", |(holder, _)| holder);
    schema
        .pointer(holder)
        .and_then(|holder| holder.get("errorMessage"))
        .and_then(Value::as_str)
}

fn has_template(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains(OPEN),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(entries) => entries.values().any(has_template),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The position of the value a JSON pointer names (its key when it is a property), and the
/// deepest item found.
fn locate<'i>(key: &Key, item: &'i Item, path: &jsonschema::paths::Location) -> (Pos, &'i Item) {
    let mut pos = key.pos;
    let mut current = item;
    for segment in path.iter() {
        let next = match (&current.node, segment) {
            (Node::Mapping(entries), jsonschema::paths::LocationSegment::Property(name)) => entries
                .iter()
                .find(|(key, _)| key.name == name.as_ref())
                .map(|(key, item)| (key.pos, item)),
            (Node::Sequence(items), jsonschema::paths::LocationSegment::Index(index)) => {
                items.get(index).map(|item| (item.pos, item))
            }
            _ => None,
        };
        let Some((found, item)) = next else { break };
        pos = found;
        current = item;
    }
    (pos, current)
}

fn pointer_to_path(path: &jsonschema::paths::Location) -> String {
    path.iter()
        .map(|segment| match segment {
            jsonschema::paths::LocationSegment::Property(name) => format!(".{name}"),
            jsonschema::paths::LocationSegment::Index(index) => format!("[{index}]"),
        })
        .collect()
}

fn shorten(text: &str) -> String {
    const LIMIT: usize = 60;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// What the names read by expressions must resolve to.
struct References<'a, 'n> {
    steps: &'a [StepDraft<'n>],
    ids: &'a HashMap<&'n str, usize>,
    graph: &'a Graph,
    /// False when the graph has a cycle, which makes "ancestor" meaningless.
    acyclic: bool,
    globals: HashSet<&'a str>,
    ancestors: HashMap<usize, HashSet<usize>>,
}

impl References<'_, '_> {
    /// One coded message per problem among the dotted `paths` read at `site`.
    fn check(
        &mut self,
        site: &Site<'_>,
        paths: &BTreeSet<String>,
    ) -> BTreeSet<(&'static str, String)> {
        let mut problems = BTreeSet::new();
        for path in paths {
            let mut parts = path.split('.');
            let root = parts.next().unwrap_or_default();
            if STATUS_FUNCTIONS.contains(&root) {
                if !site.is_step_condition() {
                    problems.insert((
                        code::STATUS_FUNCTION_OUTSIDE_IF,
                        format!(
                            "`{root}()` is only available in a step's `if`, where the results of the step's needs are known"
                        ),
                    ));
                }
                continue;
            }
            let reads_error = path == "run.error" || path.starts_with("run.error.");
            if reads_error && !self.in_on_failure(site.scope) {
                problems.insert((
                    code::UNKNOWN_REFERENCE,
                    "`run.error` is only set in `on_failure` steps".to_owned(),
                ));
                continue;
            }
            if RUN_ROOTS.contains(&root) || self.globals.contains(root) {
                continue;
            }
            let scope = site.scope;
            let problem = match (root, scope) {
                ("steps", Scope::Run) => Some(
                    "`steps` is not available here: triggers and `concurrency` are evaluated before any step runs"
                        .to_owned(),
                ),
                ("steps", Scope::Outputs) => parts.next().and_then(|id| self.step(id, None)),
                ("steps", Scope::Step { index, .. }) => {
                    parts.next().and_then(|id| self.step(id, Some(index)))
                }
                ("needs", Scope::Step { index, .. }) if site.is_step_condition() => {
                    parts.next().and_then(|id| self.need(id, index))
                }
                ("needs", _) => Some("`needs` is only available in a step's `if`".to_owned()),
                ("item" | "index", Scope::Step { item: true, .. }) => None,
                ("item" | "index", _) => Some(format!(
                    "`{root}` is only available in a step with `for_each` (not in `for_each` itself)"
                )),
                _ => {
                    let known = RUN_ROOTS
                        .iter()
                        .copied()
                        .chain(["steps", "needs", "item", "index"]);
                    let hint = did_you_mean(root, known);
                    Some(format!("unknown name `{root}`{hint}"))
                }
            };
            problems.extend(problem.map(|problem| (code::UNKNOWN_REFERENCE, problem)));
        }
        problems
    }

    fn in_on_failure(&self, scope: Scope) -> bool {
        matches!(scope, Scope::Step { index, .. }
            if self.steps.get(index).is_some_and(|step| step.list == StepList::OnFailure))
    }

    fn name(&self, index: usize) -> &str {
        self.steps
            .get(index)
            .and_then(|step| step.id)
            .map_or("this step", |id| id.value)
    }

    /// Checks `steps.<id>` read from step `reader` (`None` for workflow outputs). An `on_failure`
    /// step may read any main step: the run has failed, so every main step that ran is done.
    fn step(&mut self, id: &str, reader: Option<usize>) -> Option<String> {
        let Some(&target) = self.ids.get(id) else {
            let hint = did_you_mean(id, self.ids.keys().copied());
            return Some(format!("unknown step `{id}` in `steps.{id}`{hint}"));
        };
        let on_failure_target =
            format!("`steps.{id}` is an `on_failure` step, which runs only after the run failed");
        let target_list = self.steps[target].list;
        let Some(reader) = reader else {
            return (target_list == StepList::OnFailure)
                .then(|| format!("{on_failure_target}: workflow outputs cannot read it"));
        };
        match (self.steps[reader].list, target_list) {
            (StepList::OnFailure, StepList::Main) => return None,
            (StepList::Main, StepList::OnFailure) => {
                return Some(format!(
                    "{on_failure_target}: a step of `steps` cannot read it"
                ));
            }
            _ if !self.acyclic => return None,
            _ => {}
        }
        let graph = self.graph;
        let ancestors = self
            .ancestors
            .entry(reader)
            .or_insert_with(|| graph.ancestors(reader));
        if ancestors.contains(&target) {
            return None;
        }
        Some(format!(
            "step `{}` reads `steps.{id}` but does not depend on `{id}`: add it to `needs`",
            self.name(reader)
        ))
    }

    /// Checks `needs.<id>` read in the `if` of step `reader`: only direct needs are there.
    fn need(&self, id: &str, reader: usize) -> Option<String> {
        let direct: Vec<&str> = self.graph.edges[reader]
            .iter()
            .filter_map(|(target, _)| Some(self.steps.get(*target)?.id?.value))
            .collect();
        if direct.contains(&id) {
            return None;
        }
        let hint = did_you_mean(id, direct.iter().copied());
        Some(format!(
            "step `{}` reads `needs.{id}` but does not directly need `{id}`{hint}",
            self.name(reader)
        ))
    }
}

impl Graph {
    /// Every step `index` transitively needs.
    fn ancestors(&self, index: usize) -> HashSet<usize> {
        let mut found = HashSet::new();
        let mut todo: Vec<usize> = self
            .edges
            .get(index)
            .map(|edges| edges.iter().map(|(target, _)| *target).collect())
            .unwrap_or_default();
        while let Some(next) = todo.pop() {
            if found.insert(next) {
                todo.extend(self.edges[next].iter().map(|(target, _)| *target));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_long_expressions() {
        assert_eq!(shorten("abc"), "abc");
        assert_eq!(shorten(&"x".repeat(70)), format!("{}...", "x".repeat(60)));
    }
}
