//! Output projections: which values of a provider's answer become an action's output.
//!
//! A projection is written as data in `actions.yaml`:
//! - `path.to.field`: the value there (`.` is the value itself); absent is `null`;
//! - `[first, second]`: the first of these paths that is present and not `null`;
//! - `{from: <path or list>, default: <value>}`: with a value for when it is absent;
//! - `{exists: path}`: whether the path is present and not `null`;
//! - `{each: path, value: <projection>}`: the list there, each item projected (a `null`
//!   result is left out);
//! - `{fields: {name: <projection>, ...}}`: an object of projections.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One projection (see the module documentation).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub enum Projection {
    /// The first present, non-null value of these paths, else the default.
    From {
        paths: Vec<String>,
        default: Value,
    },
    Exists(String),
    Each {
        path: String,
        value: Box<Projection>,
    },
    Fields(BTreeMap<String, Projection>),
}

impl TryFrom<Value> for Projection {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        let paths = |value: Value| -> Result<Vec<String>, String> {
            match value {
                Value::String(path) => Ok(vec![path]),
                Value::Array(items) if !items.is_empty() => items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(path) => Ok(path),
                        other => Err(format!("a path is a string, not {other}")),
                    })
                    .collect(),
                other => Err(format!("expected a path or a list of paths, not {other}")),
            }
        };
        match value {
            Value::Object(mut object) => {
                let keys: Vec<&str> = object.keys().map(String::as_str).collect();
                match keys.as_slice() {
                    ["exists"] => match object.remove("exists") {
                        Some(Value::String(path)) => Ok(Self::Exists(path)),
                        _ => Err("`exists` takes a path".into()),
                    },
                    ["fields"] => match object.remove("fields") {
                        Some(Value::Object(fields)) => fields
                            .into_iter()
                            .map(|(name, value)| Ok((name, Self::try_from(value)?)))
                            .collect::<Result<_, String>>()
                            .map(Self::Fields),
                        _ => Err("`fields` takes a mapping of projections".into()),
                    },
                    ["each", "value"] | ["value", "each"] => {
                        let Some(Value::String(path)) = object.remove("each") else {
                            return Err("`each` takes a path".into());
                        };
                        let value = Self::try_from(object.remove("value").unwrap_or_default())?;
                        Ok(Self::Each {
                            path,
                            value: Box::new(value),
                        })
                    }
                    ["from"] | ["default", "from"] | ["from", "default"] => Ok(Self::From {
                        paths: paths(object.remove("from").unwrap_or_default())?,
                        default: object.remove("default").unwrap_or(Value::Null),
                    }),
                    _ => Err(format!(
                        "a projection object is {{from, default}}, {{exists}}, {{each, value}} \
                         or {{fields}}, not one with keys {keys:?}"
                    )),
                }
            }
            value => Ok(Self::From {
                paths: paths(value)?,
                default: Value::Null,
            }),
        }
    }
}

impl Projection {
    /// The projection of `answer`.
    pub fn apply(&self, answer: &Value) -> Value {
        match self {
            Self::From { paths, default } => paths
                .iter()
                .find_map(|path| lookup(answer, path).filter(|value| !value.is_null()))
                .unwrap_or(default)
                .clone(),
            Self::Exists(path) => Value::Bool(lookup(answer, path).is_some_and(|v| !v.is_null())),
            Self::Each { path, value } => Value::Array(
                lookup(answer, path)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|item| value.apply(item))
                    .filter(|item| !item.is_null())
                    .collect(),
            ),
            Self::Fields(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(name, projection)| (name.clone(), projection.apply(answer)))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

/// The value at the dotted `path` in `value` (`.` or the empty path is `value` itself); a
/// segment that is a number indexes a list. A key that holds dots itself (OData's
/// `@odata.nextLink`) is one segment: the longest key present wins.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() || path == "." {
        return Some(value);
    }
    match value {
        Value::Object(fields) => {
            if let Some(found) = fields.get(path) {
                return Some(found);
            }
            path.rmatch_indices('.').find_map(|(dot, _)| {
                let inner = fields.get(&path[..dot])?;
                lookup(inner, &path[dot + 1..])
            })
        }
        Value::Array(items) => {
            let (index, rest) = path.split_once('.').unwrap_or((path, ""));
            let item = items.get(index.parse::<usize>().ok()?)?;
            if rest.is_empty() {
                Some(item)
            } else {
                lookup(item, rest)
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn projection(yaml: &str) -> Projection {
        serde_saphyr::from_str(yaml).expect("a projection")
    }

    #[test]
    fn paths_alternatives_defaults_and_existence() {
        let answer = json!({
            "user": {"login": "octocat"}, "customer": "cus_1", "charge": {"id": "ch_1"},
            "pull_request": {"url": "u"}, "closed_at": null, "items": [{"id": 1}, {"id": 2}]
        });
        assert_eq!(projection("user.login").apply(&answer), json!("octocat"));
        assert_eq!(projection("items.1.id").apply(&answer), json!(2));
        let odata = json!({"@odata.nextLink": "https://n", "value": [{"@odata.etag": "W/1"}],
                           "a": {"b.c": {"d": 1}}, "a.b": {"c": {"d": 2}}});
        assert_eq!(
            projection("'@odata.nextLink'").apply(&odata),
            json!("https://n")
        );
        assert_eq!(
            projection("value.0.@odata.etag").apply(&odata),
            json!("W/1")
        );
        assert_eq!(
            projection("a.b.c.d").apply(&odata),
            json!(2),
            "the longest key wins"
        );
        assert_eq!(projection("a.b.c").apply(&odata), json!({"d": 2}));
        assert_eq!(projection("a.b.c.e").apply(&odata), Value::Null);
        assert_eq!(lookup(&json!([[1, 2]]), "0.1"), Some(&json!(2)));
        assert_eq!(projection("missing.deep").apply(&answer), Value::Null);
        let expandable = projection("[customer.id, customer]");
        assert_eq!(expandable.apply(&answer), json!("cus_1"));
        assert_eq!(
            projection("[charge.id, charge]").apply(&answer),
            json!("ch_1")
        );
        assert_eq!(
            projection("{from: comments, default: 0}").apply(&answer),
            json!(0)
        );
        assert_eq!(
            projection("{exists: pull_request}").apply(&answer),
            json!(true)
        );
        assert_eq!(
            projection("{exists: closed_at}").apply(&answer),
            json!(false)
        );
    }

    #[test]
    fn lists_are_projected_item_by_item() {
        let answer = json!([
            {"number": 1, "labels": [{"name": "bug"}, "ui", {"id": 3}], "assignees": []},
            {"number": 2, "labels": [], "pull_request": {}}
        ]);
        let issues = projection(
            "each: .\nvalue:\n  fields:\n    number: number\n    labels: {each: labels, value: [name, .]}\n    \
             assignees: {each: assignees, value: login}\n    is_pull_request: {exists: pull_request}\n",
        );
        assert_eq!(
            issues.apply(&answer),
            json!([
                {"number": 1, "labels": ["bug", "ui", {"id": 3}], "assignees": [], "is_pull_request": false},
                {"number": 2, "labels": [], "assignees": [], "is_pull_request": true}
            ])
        );
    }

    #[test]
    fn malformed_projections_are_refused() {
        for yaml in [
            "{each: items}",
            "{from: 3}",
            "{exists: [a]}",
            "{pick: a}",
            "[]",
        ] {
            assert!(
                serde_saphyr::from_str::<Projection>(yaml).is_err(),
                "{yaml} was accepted"
            );
        }
    }
}
