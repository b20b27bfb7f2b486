//! JSON Schema (draft 2020-12) of the workflow language, for editors (completion, hover docs,
//! squiggles before saving). Hand-written because the YAML surface differs from the model
//! (shorthands such as `needs: a`, single cron mapping, optional `${{ }}` around `if`); the
//! tests keep it in step with the parser by running every example and case through both.

use serde_json::{Value, json};

/// The schema of a workflow file, `$id` `https://stepwise.dev/schemas/workflow.json`.
pub fn json_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://stepwise.dev/schemas/workflow.json",
        "title": "Stepwise workflow",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "steps"],
        "properties": {
            "name": {
                "description": "Unique per tenant: lowercase letters, digits and `-`.",
                "type": "string",
                "pattern": "^[a-z0-9-]+$"
            },
            "description": { "type": "string" },
            "on": { "$ref": "#/$defs/triggers" },
            "inputs": {
                "description": "JSON Schema of each manual input, by input name.",
                "type": "object",
                "additionalProperties": { "type": "object" }
            },
            "concurrency": {
                "description": "At most `limit` active runs per rendered `key`.",
                "type": "object",
                "additionalProperties": false,
                "required": ["key"],
                "properties": {
                    "key": { "type": "string" },
                    "limit": { "type": "integer", "minimum": 1, "default": 1 },
                    "on_limit": {
                        "description": "What a new run does when `limit` runs with its key are active: wait (`queue`), be cancelled (`cancel_new`), or cancel the oldest active run (`cancel_running`).",
                        "enum": ["queue", "cancel_new", "cancel_running"],
                        "default": "queue"
                    }
                }
            },
            "timeout": { "$ref": "#/$defs/duration", "description": "Whole-run timeout." },
            "steps": {
                "type": "array",
                "minItems": 1,
                "items": { "$ref": "#/$defs/step" }
            },
            "on_failure": {
                "description": "Steps run once the run has failed (alerting, clean-up). Their `needs` name only `on_failure` steps; they may read any `steps.<id>` and `run.error`.",
                "type": "array",
                "items": { "$ref": "#/$defs/step" }
            },
            "outputs": {
                "description": "Templates rendered when the run succeeds.",
                "type": "object"
            }
        },
        "$defs": {
            "duration": {
                "description": "A duration such as `30s`, `5m`, `1h 30m`.",
                "type": "string",
                "pattern": "^\\s*[0-9]+\\s*[a-zA-Zµ]+(\\s*[0-9]+\\s*[a-zA-Zµ]+)*\\s*$"
            },
            "condition": {
                "description": "An expression, with or without `${{ }}`. In a step's `if`, the status functions `always()`, `success()`, `failure()` and `cancelled()` decide whether it runs after a failed dependency.",
                "type": ["string", "boolean"]
            },
            "triggers": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "manual": {
                        "description": "Allow starting runs by hand (CLI, API, dashboard).",
                        "type": ["object", "null"],
                        "maxProperties": 0
                    },
                    "webhook": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["source"],
                        "properties": {
                            "source": { "type": "string", "description": "Webhook source name." },
                            "events": {
                                "oneOf": [
                                    { "type": "string" },
                                    { "type": "array", "items": { "type": "string" } }
                                ]
                            },
                            "filter": { "$ref": "#/$defs/condition" }
                        }
                    },
                    "cron": {
                        "oneOf": [
                            { "$ref": "#/$defs/cron" },
                            { "type": "array", "items": { "$ref": "#/$defs/cron" } }
                        ]
                    }
                }
            },
            "cron": {
                "type": "object",
                "additionalProperties": false,
                "required": ["schedule"],
                "properties": {
                    "schedule": {
                        "description": "5 fields, or 6 with seconds first.",
                        "type": "string"
                    },
                    "timezone": {
                        "description": "IANA time zone; UTC when absent.",
                        "type": "string"
                    },
                    "catch_up": {
                        "description": "After downtime: `none` skips missed slots, `latest` fires the most recent one, `all` fires every one (at most `max_catch_up`).",
                        "enum": ["none", "latest", "all"],
                        "default": "latest"
                    },
                    "max_catch_up": {
                        "description": "With `catch_up: all`: the most missed slots fired (the most recent ones).",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 1000,
                        "default": 100
                    },
                    "overlap": {
                        "description": "When a run started by this entry is still active: `skip` the slot, `allow` another run, or `queue` it until the active one ends.",
                        "enum": ["skip", "allow", "queue"],
                        "default": "skip"
                    }
                }
            },
            "retry": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "max_attempts": {
                        "description": "Total attempts, the first included.",
                        "type": "integer",
                        "minimum": 1,
                        "default": 3
                    },
                    "backoff": {
                        "enum": ["none", "fixed", "exponential"],
                        "default": "exponential"
                    },
                    "initial_delay": { "$ref": "#/$defs/duration", "default": "1s" },
                    "max_delay": { "$ref": "#/$defs/duration", "default": "1m" }
                }
            },
            "http_retry": {
                "description": "The in-request retry of this step's outbound calls (each request of one attempt), over the integration's policy; `retry` runs the whole step again later.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "max_attempts": {
                        "description": "Attempts per request, the first included.",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 10,
                        "default": 3
                    },
                    "initial_delay": {
                        "$ref": "#/$defs/duration",
                        "description": "Upper bound of the first backoff (full jitter), doubled per retry.",
                        "default": "200ms"
                    },
                    "max_delay": { "$ref": "#/$defs/duration", "default": "2s" },
                    "budget": {
                        "$ref": "#/$defs/duration",
                        "description": "Total waiting between the attempts of one request; at most 1m.",
                        "default": "5s"
                    }
                }
            },
            "step": {
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "uses"],
                "properties": {
                    "id": { "type": "string", "pattern": "^[a-z_][a-z0-9_-]*$" },
                    "uses": { "type": "string", "description": "Action name, `provider.action`." },
                    "with": {
                        "description": "Action input; strings may hold `${{ }}`.",
                        "type": ["object", "null"]
                    },
                    "needs": {
                        "description": "Steps this one waits for; default: the step above.",
                        "oneOf": [
                            { "type": "string" },
                            { "type": "array", "items": { "type": "string" } }
                        ]
                    },
                    "if": { "$ref": "#/$defs/condition" },
                    "for_each": {
                        "description": "A list, or one `${{ }}` producing a list.",
                        "type": ["string", "array"]
                    },
                    "max_parallel": { "type": "integer", "minimum": 1 },
                    "connection": { "type": "string" },
                    "retry": { "$ref": "#/$defs/retry" },
                    "http_retry": { "$ref": "#/$defs/http_retry" },
                    "timeout": { "$ref": "#/$defs/duration" },
                    "on_error": { "enum": ["fail", "continue"], "default": "fail" }
                }
            }
        }
    })
}
