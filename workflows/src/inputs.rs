//! Checking a manual run's input against the workflow's `inputs:` declaration.
//!
//! Each entry of `inputs:` is the JSON Schema of one property. An input with a `default` is
//! optional and takes that default when absent; every other declared input is required. Keys
//! that are not declared are refused, so a misspelt input name fails loudly instead of reaching
//! the steps as `undefined`. A workflow that declares no inputs accepts any object.

use serde_json::{Value, json};

use crate::Workflow;

/// Why an input was refused: one line per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid input: {}", .problems.join("; "))]
pub struct InputError {
    pub problems: Vec<String>,
}

impl Workflow {
    /// Validates `input` against `inputs:` and returns it with defaults filled in.
    pub fn prepare_input(&self, input: Value) -> Result<Value, InputError> {
        let Value::Object(mut input) = input else {
            return Err(InputError {
                problems: vec!["the input must be a JSON object".into()],
            });
        };
        let Some(declared) = &self.inputs else {
            return Ok(Value::Object(input));
        };
        for (name, schema) in declared {
            if let Some(default) = schema.get("default")
                && !input.contains_key(name)
            {
                input.insert(name.clone(), default.clone());
            }
        }
        let required: Vec<&String> = declared
            .iter()
            .filter(|(_, schema)| schema.get("default").is_none())
            .map(|(name, _)| name)
            .collect();
        let schema = json!({
            "type": "object",
            "properties": Value::Object(declared.clone()),
            "required": required,
            "additionalProperties": false,
        });
        let input = Value::Object(input);
        let validator = jsonschema::validator_for(&schema).map_err(|error| InputError {
            problems: vec![format!(
                "the workflow's `inputs` schema is invalid: {error}"
            )],
        })?;
        let problems: Vec<String> = validator
            .iter_errors(&input)
            .map(|error| {
                let path = error.instance_path().to_string();
                if path.is_empty() {
                    error.to_string()
                } else {
                    format!(
                        "`{}`: {error}",
                        path.trim_start_matches('/').replace('/', ".")
                    )
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(input)
        } else {
            Err(InputError { problems })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn workflow_with_inputs(inputs: Option<Map<String, Value>>) -> Workflow {
        Workflow {
            name: "w".into(),
            description: None,
            on: Default::default(),
            inputs,
            concurrency: None,
            timeout: None,
            steps: Vec::new(),
            on_failure: Vec::new(),
            outputs: Map::new(),
        }
    }

    fn declared() -> Workflow {
        let inputs = json!({
            "name": { "type": "string" },
            "count": { "type": "integer", "minimum": 1, "default": 3 },
        });
        workflow_with_inputs(inputs.as_object().cloned())
    }

    #[test]
    fn fills_defaults_and_accepts_valid_input() {
        let input = declared().prepare_input(json!({"name": "Ada"})).unwrap();
        assert_eq!(input, json!({"name": "Ada", "count": 3}));
    }

    #[test]
    fn names_every_problem() {
        let error = declared()
            .prepare_input(json!({"count": 0, "nmae": "typo"}))
            .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 3, "{text}");
        assert!(text.contains("\"name\" is a required property"), "{text}");
        assert!(text.contains("`count`"), "{text}");
        assert!(text.contains("nmae"), "{text}");
    }

    #[test]
    fn input_must_be_an_object() {
        let error = declared().prepare_input(json!([1, 2])).unwrap_err();
        assert_eq!(error.problems, vec!["the input must be a JSON object"]);
    }

    #[test]
    fn without_declared_inputs_any_object_is_accepted() {
        let workflow = workflow_with_inputs(None);
        let input = json!({"anything": [1, {"goes": true}]});
        assert_eq!(workflow.prepare_input(input.clone()).unwrap(), input);
    }
}
