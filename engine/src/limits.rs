//! Caps on the data a run stores: one step's input and output, and all of a run's. A step
//! that would store more fails permanently with an error naming the limit, and what it
//! produced is dropped instead of written.

use serde_json::Value;
use stepwise_integrations::ActionError;
use stepwise_workflows::ExprLimits;

use crate::executor::Execution;
use crate::store::entities::step;

/// Deepest nesting of arrays and objects a stored value may have: serde_json refuses to read
/// deeper JSON back (its recursion limit), so a deeper value would make its run unreadable.
pub const MAX_STORED_DEPTH: usize = 127;

/// The configured caps (`--max-step-output-bytes`, `--max-run-data-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    /// Largest input or output of one step, and result of one expression, as JSON text.
    pub max_step_output_bytes: usize,
    /// Largest total of a run's stored step inputs and outputs, as JSON text.
    pub max_run_data_bytes: usize,
}

impl DataLimits {
    /// 1 MiB.
    pub const DEFAULT_MAX_STEP_OUTPUT_BYTES: usize = ExprLimits::DEFAULT_MAX_RESULT_BYTES;
    /// 16 MiB.
    pub const DEFAULT_MAX_RUN_DATA_BYTES: usize = 16 * 1024 * 1024;

    pub(crate) fn expressions(&self) -> ExprLimits {
        ExprLimits {
            max_result_bytes: self.max_step_output_bytes,
        }
    }

    /// `execution` when what it stores fits, else a permanent failure naming the limit.
    /// Adds what it stores, less what it replaces of `row`, to `run_bytes`.
    pub(crate) fn check(
        &self,
        execution: Execution,
        row: &step::Model,
        run_bytes: &mut i64,
    ) -> Execution {
        let (input, output) = stored_values(&execution);
        let mut written = 0;
        let mut replaced = 0;
        for (what, new, old) in [
            ("input", input, &row.input),
            ("output", output, &row.output),
        ] {
            let Some(new) = new else { continue };
            let size = match measure(new, self.max_step_output_bytes) {
                Ok(size) => size,
                Err(problem) => return failed(format!("the step's {what} {problem}")),
            };
            written += size;
            replaced += old
                .as_ref()
                .and_then(|old| measure(old, usize::MAX).ok())
                .unwrap_or(0);
        }
        let total = (*run_bytes).max(0) as usize + written;
        let total = total.saturating_sub(replaced);
        if total > self.max_run_data_bytes {
            return failed(format!(
                "the run's stored data would be {total} bytes, more than the limit of {} bytes \
                 (--max-run-data-bytes)",
                self.max_run_data_bytes
            ));
        }
        *run_bytes = total as i64;
        execution
    }

    /// Why a run's rendered `outputs` cannot be stored, if they cannot: the step cap applies.
    pub(crate) fn check_run_output(&self, output: &Value) -> Result<(), String> {
        measure(output, self.max_step_output_bytes)
            .map(drop)
            .map_err(|problem| format!("in `outputs`: the run's output {problem}"))
    }
}

impl Default for DataLimits {
    fn default() -> Self {
        Self {
            max_step_output_bytes: Self::DEFAULT_MAX_STEP_OUTPUT_BYTES,
            max_run_data_bytes: Self::DEFAULT_MAX_RUN_DATA_BYTES,
        }
    }
}

/// The input and output an execution writes into its step row.
fn stored_values(execution: &Execution) -> (Option<&Value>, Option<&Value>) {
    match execution {
        Execution::Output { input, output } => (Some(input), Some(output)),
        Execution::Suspended { input, .. } | Execution::Awaiting { input, .. } => {
            (Some(input), None)
        }
        Execution::Failed { input, .. } => (input.as_ref(), None),
        Execution::ConditionFalse | Execution::Expanded { .. } => (None, None),
    }
}

fn failed(message: String) -> Execution {
    Execution::Failed {
        input: None,
        error: ActionError::Permanent(message),
    }
}

/// The length of `value` as JSON text, or why it cannot be stored: longer than `limit`
/// (measuring stops there) or nested deeper than [`MAX_STORED_DEPTH`].
fn measure(value: &Value, limit: usize) -> Result<usize, String> {
    let mut counter = Counter { written: 0, limit };
    if serde_json::to_writer(&mut counter, value).is_err() {
        return Err(format!(
            "is larger than the limit of {limit} bytes (--max-step-output-bytes; at least {} bytes)",
            counter.written
        ));
    }
    if depth(value) > MAX_STORED_DEPTH {
        return Err(format!(
            "nests arrays and objects deeper than {MAX_STORED_DEPTH} levels"
        ));
    }
    Ok(counter.written)
}

/// The deepest nesting of arrays and objects in `value` (a scalar is 0), without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0)];
    while let Some((value, level)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(entries) => Box::new(entries.values()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        pending.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// Counts bytes and fails once more than `limit` were written.
struct Counter {
    written: usize,
    limit: usize,
}

impl std::io::Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.written += bytes.len();
        if self.written > self.limit {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn depth_counts_arrays_and_objects() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({ "a": [1, { "b": [] }] })), 4);
    }

    #[test]
    fn the_deepest_stored_value_reads_back() {
        let deepest = format!(
            "{}{}",
            "[".repeat(MAX_STORED_DEPTH),
            "]".repeat(MAX_STORED_DEPTH)
        );
        let value: Value = serde_json::from_str(&deepest).unwrap();
        assert_eq!(depth(&value), MAX_STORED_DEPTH);
        let deeper = format!("[{deepest}]");
        assert!(serde_json::from_str::<Value>(&deeper).is_err());
    }

    #[test]
    fn measures_json_text_and_stops_at_the_limit() {
        assert_eq!(measure(&json!({ "a": "b" }), 100), Ok(9));
        let error = measure(&json!("x".repeat(100)), 10).unwrap_err();
        assert!(
            error.starts_with("is larger than the limit of 10 bytes"),
            "{error}"
        );
    }
}
