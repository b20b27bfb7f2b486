//! Steps parked in `core.wait_for_webhook`: one row per waiting step, read by the transaction
//! that accepts a delivery on the step's source and deleted when it resumes the step or the
//! run ends.

use sea_orm::{ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Map, Value};

use super::entities::webhook_wait;
use super::now_ms;
use crate::error::EngineError;

/// A parked step's subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookWait {
    pub run_id: String,
    pub step_id: String,
    pub events: Vec<String>,
    pub matches: Map<String, Value>,
}

/// Registers (or replaces, for a step that waits again) a step's subscription.
pub async fn insert(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    source: &str,
    wait: &WebhookWait,
) -> Result<(), EngineError> {
    remove(db, &wait.run_id, &wait.step_id).await?;
    webhook_wait::Entity::insert(webhook_wait::ActiveModel {
        run_id: ActiveValue::Set(wait.run_id.clone()),
        step_id: ActiveValue::Set(wait.step_id.clone()),
        tenant_id: ActiveValue::Set(tenant_id.to_owned()),
        source: ActiveValue::Set(source.to_owned()),
        events: ActiveValue::Set(serde_json::to_value(&wait.events)?),
        matches: ActiveValue::Set(Value::Object(wait.matches.clone())),
        created_at: ActiveValue::Set(now_ms()),
    })
    .exec(db)
    .await?;
    Ok(())
}

/// Every step waiting on the tenant's source.
pub async fn on_source(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    source: &str,
) -> Result<Vec<WebhookWait>, EngineError> {
    webhook_wait::Entity::find()
        .filter(webhook_wait::Column::TenantId.eq(tenant_id))
        .filter(webhook_wait::Column::Source.eq(source))
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            Ok(WebhookWait {
                run_id: row.run_id,
                step_id: row.step_id,
                events: serde_json::from_value(row.events)?,
                matches: match row.matches {
                    Value::Object(matches) => matches,
                    _ => Map::new(),
                },
            })
        })
        .collect()
}

pub async fn remove(
    db: &impl ConnectionTrait,
    run_id: &str,
    step_id: &str,
) -> Result<(), EngineError> {
    webhook_wait::Entity::delete_many()
        .filter(webhook_wait::Column::RunId.eq(run_id))
        .filter(webhook_wait::Column::StepId.eq(step_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Drops every subscription of a run that ended.
pub async fn remove_run(db: &impl ConnectionTrait, run_id: &str) -> Result<(), EngineError> {
    webhook_wait::Entity::delete_many()
        .filter(webhook_wait::Column::RunId.eq(run_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Whether `trigger` holds every expected value, each at its dotted path.
pub fn matches(expected: &Map<String, Value>, trigger: &Value) -> bool {
    expected.iter().all(|(path, value)| {
        path.split('.')
            .try_fold(trigger, |node, key| match node {
                Value::Object(map) => map.get(key),
                Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            })
            .is_some_and(|found| found == value)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dotted_paths_match_values_exactly() {
        let trigger = json!({
            "event": "pull_request",
            "body": {"action": "closed", "pull_request": {"number": 42}, "labels": ["a", "b"]}
        });
        let expect = |value: Value| value.as_object().cloned().unwrap();
        assert!(matches(&Map::new(), &trigger));
        assert!(matches(
            &expect(json!({"body.action": "closed", "body.pull_request.number": 42})),
            &trigger
        ));
        assert!(matches(&expect(json!({"body.labels.1": "b"})), &trigger));
        assert!(!matches(
            &expect(json!({"body.pull_request.number": "42"})),
            &trigger
        ));
        assert!(!matches(&expect(json!({"body.missing": null})), &trigger));
        assert!(!matches(&expect(json!({"event.x": "y"})), &trigger));
    }
}
