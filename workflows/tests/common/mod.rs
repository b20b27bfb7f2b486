//! Test data shared by the integration tests: an action catalog with the input schemas of the
//! built-in actions the examples use.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stepwise_workflows::ActionCatalog;

pub struct TestCatalog {
    actions: Vec<(&'static str, Value)>,
}

impl TestCatalog {
    pub fn new() -> Self {
        let duration = json!({ "type": "string", "pattern": "^\\s*[0-9]+\\s*[a-zA-Zµ]+(\\s*[0-9]+\\s*[a-zA-Zµ]+)*\\s*$" });
        Self {
            actions: vec![
                (
                    "core.log",
                    json!({
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["message"],
                        "properties": {
                            "message": {},
                            "level": { "enum": ["debug", "info", "warn", "error"] }
                        }
                    }),
                ),
                ("core.set", json!({ "type": "object" })),
                (
                    "core.fail",
                    json!({
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["message"],
                        "properties": { "message": { "type": "string" } }
                    }),
                ),
                (
                    "core.sleep",
                    json!({
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "duration": duration,
                            "until": { "type": "string", "format": "date-time" }
                        }
                    }),
                ),
                (
                    "http.request",
                    json!({
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["url"],
                        "properties": {
                            "method": { "type": "string" },
                            "url": { "type": "string" },
                            "headers": { "type": "object", "additionalProperties": { "type": "string" } },
                            "query": { "type": "object" },
                            "json": {},
                            "body": { "type": "string" },
                            "timeout": duration,
                            "fail_on_status": { "type": "boolean" }
                        }
                    }),
                ),
            ],
        }
    }
}

impl ActionCatalog for TestCatalog {
    fn input_schema(&self, name: &str) -> Option<&Value> {
        self.actions
            .iter()
            .find(|(action, _)| *action == name)
            .map(|(_, schema)| schema)
    }

    fn action_names(&self) -> Vec<&str> {
        self.actions.iter().map(|(name, _)| *name).collect()
    }
}

/// The `*.yaml` files of a folder under the crate root, sorted.
#[allow(dead_code)] // Each test binary uses its own subset of these helpers.
pub fn yaml_files(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}
