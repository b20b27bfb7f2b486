//! Webhook ingestion: look up the source, verify the delivery, then record it and start the
//! runs of every subscribed workflow in one write transaction.
//!
//! Deduplication is the unique (source, delivery id) index of `webhook_deliveries`: the insert
//! is `ON CONFLICT DO NOTHING`, so of two copies racing (on Postgres the second waits for the
//! first's transaction; on SQLite `BEGIN IMMEDIATE` serialises them) exactly one inserts and
//! starts runs, and the other answers with the first one's run ids. A delivery without an id
//! is never deduplicated.

use std::sync::Arc;

use chrono::Utc;
use http::HeaderMap;
use serde::Serialize;
use serde_json::{Map, Value, json};
use stepwise_integrations::SecretValue;
use stepwise_integrations::webhooks::{self, Rejection, WebhookScheme};
use stepwise_workflows::WebhookTrigger;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::ingest_cache::VerifyingSource;
use crate::starts::DeliveryRequest;
use crate::store::runs::Page;
use crate::store::webhooks::{DeliveryInfo, RejectionInfo, Source, SourceInfo};
use crate::store::workflows::VersionRef;
use crate::store::{now_ms, webhooks as store, workflows};

/// The run's `trigger_kind` for webhook runs.
pub const TRIGGER_KIND: &str = "webhook";

/// Credential headers never stored or shown; so are the webhook schemes' signature headers
/// (`webhooks::secret_headers`, from the provider declarations) and the generic scheme's
/// configured signature header.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// What an accepted delivery did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ingested {
    /// The source's tenant, which owns the runs.
    #[serde(skip)]
    pub tenant_id: String,
    /// The sender's delivery id, when it sent one.
    pub delivery_id: Option<String>,
    /// The runs this delivery started; for a duplicate, the runs the first copy started.
    pub run_ids: Vec<String>,
    /// A copy of a delivery already accepted: nothing was started.
    pub duplicate: bool,
    /// Slack `url_verification`: echo this back; nothing was stored or started.
    pub challenge: Option<String>,
}

/// Why a delivery was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No source with this id, or it belongs to another provider.
    #[error("no such webhook source")]
    UnknownSource,
    /// The signature or the request did not check out; recorded in the rejection log.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<sea_orm::DbErr> for IngestError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Engine(error.into())
    }
}

/// Whether a workflow listening to `events` wants `event`: no events means every event; an
/// entry ending in `*` matches by prefix (`invoice.*`, `*`).
pub fn event_matches(events: &[String], event: Option<&str>) -> bool {
    if events.is_empty() {
        return true;
    }
    let Some(event) = event else {
        return false;
    };
    events
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => event.starts_with(prefix),
            None => pattern == event,
        })
}

/// The request headers as a JSON object (lower-case names; repeated headers joined with
/// `, `), without secret-bearing ones.
pub fn safe_headers(headers: &HeaderMap, scheme: &WebhookScheme) -> Value {
    let extra = match scheme {
        WebhookScheme::Generic(generic) => Some(generic.header.to_ascii_lowercase()),
        _ => None,
    };
    let mut out = Map::new();
    for name in headers.keys() {
        let name = name.as_str();
        if CREDENTIAL_HEADERS.contains(&name)
            || webhooks::secret_headers().any(|secret| secret == name)
            || extra.as_deref() == Some(name)
        {
            continue;
        }
        let value = headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        out.insert(name.to_owned(), Value::String(value));
    }
    Value::Object(out)
}

/// The body for `trigger.body`: JSON when it parses as JSON, else the text.
pub fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

impl Engine {
    /// Creates a webhook source; its ingest URL is `/webhooks/{provider}/{id}`.
    pub async fn create_source(
        &self,
        tenant_id: &str,
        name: &str,
        scheme: &WebhookScheme,
        secret: &SecretValue,
    ) -> Result<SourceInfo, EngineError> {
        let created = store::create(
            &self.inner.db.conn,
            &self.inner.vault,
            tenant_id,
            name,
            scheme,
            secret,
        )
        .await;
        self.inner.ingest_cache.forget_sources(tenant_id);
        created
    }

    /// Replaces the source's signing secret. The old one keeps verifying for
    /// `previous_valid_for` (none: it stops at once), so senders can be switched over.
    pub async fn rotate_source_secret(
        &self,
        tenant_id: &str,
        name: &str,
        secret: &SecretValue,
        previous_valid_for: Option<std::time::Duration>,
    ) -> Result<SourceInfo, EngineError> {
        let until = previous_valid_for.map(|valid_for| {
            now_ms().saturating_add(i64::try_from(valid_for.as_millis()).unwrap_or(i64::MAX))
        });
        let rotated = store::rotate(
            &self.inner.db.conn,
            &self.inner.vault,
            tenant_id,
            name,
            secret,
            until,
        )
        .await;
        self.inner.ingest_cache.forget_sources(tenant_id);
        rotated
    }

    /// The tenant's webhook sources (never their secrets).
    pub async fn list_sources(&self, tenant_id: &str) -> Result<Vec<SourceInfo>, EngineError> {
        store::list(&self.inner.db.conn, tenant_id).await
    }

    /// Deletes the source, its deliveries and its rejection log.
    pub async fn delete_source(&self, tenant_id: &str, name: &str) -> Result<(), EngineError> {
        let deleted = store::delete(&self.inner.db.conn, tenant_id, name).await;
        self.inner.ingest_cache.forget_sources(tenant_id);
        if deleted? {
            Ok(())
        } else {
            Err(EngineError::NotFound(format!("source `{name}` not found")))
        }
    }

    /// The source's most recent rejected deliveries, newest first.
    pub async fn recent_rejections(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Vec<RejectionInfo>, EngineError> {
        store::rejections(&self.inner.db.conn, tenant_id, name).await
    }

    /// The source's accepted deliveries, newest first, in keyset pages (`cursor` is the
    /// previous page's `next_cursor`).
    pub async fn recent_deliveries(
        &self,
        tenant_id: &str,
        name: &str,
        cursor: Option<&str>,
        limit: u64,
    ) -> Result<Page<DeliveryInfo>, EngineError> {
        store::deliveries(&self.inner.db.conn, tenant_id, name, cursor, limit).await
    }

    /// Verifies and accepts one delivery to `POST /webhooks/{provider}/{source_id}`. Returns
    /// only once the delivery and its runs are committed.
    pub async fn ingest(
        &self,
        provider: &str,
        source_id: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Ingested, IngestError> {
        let verifying = self.verifying_source(source_id).await?;
        let (source, secrets) = (&verifying.source, &verifying.secrets);
        if source.info.provider != provider {
            return Err(IngestError::UnknownSource);
        }
        let now = Utc::now();
        let verified = match webhooks::verify(&source.info.scheme, secrets, headers, body, now) {
            Ok(verified) => verified,
            Err(rejection) => {
                self.reject(source, headers, &rejection).await;
                return Err(rejection.into());
            }
        };
        if verified.secret_index > 0 {
            tracing::info!(
                message = "Webhook verified with the previous (rotated-out) secret.",
                source = source.info.name,
            );
        }
        if let Some(challenge) = verified.challenge {
            return Ok(Ingested {
                tenant_id: source.tenant_id.clone(),
                delivery_id: None,
                run_ids: Vec::new(),
                duplicate: false,
                challenge: Some(challenge),
            });
        }
        let delivery_id = verified.delivery_id.map(|id| id.value);
        let event = verified.event_type;
        let trigger = json!({
            "kind": TRIGGER_KIND,
            "source": source.info.name,
            "event": event,
            "delivery_id": delivery_id,
            "headers": safe_headers(headers, &source.info.scheme),
            "body": body_value(body),
        });
        // Read before the write transaction: on SQLite it holds the only connection.
        let subscribed = self.subscribed(source, event.as_deref(), &trigger).await?;

        let started = self
            .inner
            .starts
            .delivery(DeliveryRequest {
                source: verifying.clone(),
                delivery_id: delivery_id.clone(),
                event: event.clone(),
                trigger,
                subscribed,
            })
            .await?;
        let run_ids = started.run_ids;
        if started.duplicate {
            if let Some(id) = &delivery_id
                && let Err(error) =
                    store::count_duplicate(&self.inner.db.conn, &source.info.id, id).await
            {
                tracing::warn!(message = "Could not count a duplicate webhook delivery.", %error);
            }
            return Ok(Ingested {
                tenant_id: source.tenant_id.clone(),
                delivery_id,
                run_ids,
                duplicate: true,
                challenge: None,
            });
        }
        tracing::info!(
            message = "Webhook accepted.",
            source = source.info.name,
            event = event.as_deref().unwrap_or_default(),
            runs = run_ids.len(),
        );
        Ok(Ingested {
            tenant_id: source.tenant_id.clone(),
            delivery_id,
            run_ids,
            duplicate: false,
            challenge: None,
        })
    }

    /// The latest versions of the tenant's workflows that subscribe to this source and event
    /// and whose filter passes, each with its run input.
    async fn subscribed(
        &self,
        source: &Source,
        event: Option<&str>,
        trigger: &Value,
    ) -> Result<Vec<(workflows::VersionRef, Value)>, EngineError> {
        let context = json!({ "trigger": trigger });
        let mut out = Vec::new();
        for version in self.webhook_listeners(&source.tenant_id).await?.iter() {
            let Some(WebhookTrigger {
                source: name,
                events,
                filter,
            }) = &version.definition.on.webhook
            else {
                continue;
            };
            if *name != source.info.name || !event_matches(events, event) {
                continue;
            }
            let workflow = version.definition.name.clone();
            if let Some(filter) = filter {
                match self.inner.evaluator.condition(filter, &context) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(error) => {
                        tracing::warn!(
                            message = "Webhook filter failed; the workflow is not started.",
                            workflow,
                            %error,
                        );
                        continue;
                    }
                }
            }
            match version.definition.prepare_input(json!({})) {
                Ok(input) => out.push((version.clone(), input)),
                Err(error) => tracing::warn!(
                    message = "Webhook workflow needs inputs without defaults; not started.",
                    workflow,
                    %error,
                ),
            }
        }
        Ok(out)
    }

    /// The source by its id, with its signing secrets decrypted; from the ingest cache when
    /// it holds a fresh copy.
    async fn verifying_source(&self, source_id: &str) -> Result<Arc<VerifyingSource>, IngestError> {
        let ticket = match self.inner.ingest_cache.source(source_id) {
            Ok(cached) => return Ok(cached),
            Err(ticket) => ticket,
        };
        let source = store::find_by_id(&self.inner.db.conn, source_id)
            .await?
            .ok_or(IngestError::UnknownSource)?;
        let secrets = store::signing_secrets(&self.inner.vault, &source, now_ms()).await?;
        Ok(self
            .inner
            .ingest_cache
            .keep_source(ticket, VerifyingSource { source, secrets }))
    }

    /// The tenant's latest workflow versions with an `on: webhook` trigger; from the ingest
    /// cache when it holds a fresh copy.
    async fn webhook_listeners(
        &self,
        tenant_id: &str,
    ) -> Result<Arc<Vec<VersionRef>>, EngineError> {
        let ticket = match self.inner.ingest_cache.listeners(tenant_id) {
            Ok(cached) => return Ok(cached),
            Err(ticket) => ticket,
        };
        let db = &self.inner.db.conn;
        let mut listeners = Vec::new();
        for latest in workflows::latest_all(db, tenant_id).await? {
            // A disabled workflow is not started; the delivery is still recorded and answered.
            if !latest.enabled {
                continue;
            }
            let version = self.inner.with_definition(db, latest).await?;
            if version.definition.on.webhook.is_some() {
                listeners.push(version);
            }
        }
        Ok(self
            .inner
            .ingest_cache
            .keep_listeners(ticket, tenant_id, listeners))
    }

    /// Records a refused delivery in the source's rejection log. A failure to record is
    /// logged and does not change the answer.
    async fn reject(&self, source: &Source, headers: &HeaderMap, rejection: &Rejection) {
        if matches!(rejection, Rejection::NoUsableSecret) {
            tracing::warn!(
                message = "Webhook source has no usable signing secret.",
                source = source.info.name,
            );
        }
        let headers = safe_headers(headers, &source.info.scheme);
        if let Err(error) = store::record_rejection(
            &self.inner.db.conn,
            source,
            rejection.code(),
            &rejection.to_string(),
            headers,
        )
        .await
        {
            tracing::warn!(message = "Could not record a webhook rejection.", %error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn events_match_exactly_by_prefix_wildcard_or_all() {
        let events = |list: &[&str]| list.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>();
        assert!(event_matches(&[], Some("push")));
        assert!(event_matches(&[], None));
        assert!(event_matches(&events(&["push"]), Some("push")));
        assert!(!event_matches(&events(&["push"]), Some("pushed")));
        assert!(!event_matches(&events(&["push"]), None));
        assert!(event_matches(&events(&["invoice.*"]), Some("invoice.paid")));
        assert!(!event_matches(&events(&["invoice.*"]), Some("charge.paid")));
        assert!(event_matches(&events(&["a", "*"]), Some("anything")));
    }

    #[test]
    fn secret_bearing_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-hub-signature-256", "sha256=abc"),
            ("authorization", "Bearer x"),
            ("cookie", "a=b"),
            ("x-sig", "generic"),
            ("x-github-event", "push"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers.append("x-github-event", HeaderValue::from_static("again"));
        let generic: WebhookScheme = serde_json::from_value(json!({
            "provider": "generic", "header": "X-Sig", "algorithm": "sha256", "encoding": "hex"
        }))
        .unwrap();
        assert_eq!(
            safe_headers(&headers, &generic),
            json!({"x-github-event": "push, again"})
        );
        assert_eq!(body_value(b"{\"a\":1}"), json!({"a": 1}));
        assert_eq!(body_value(b"a=1&b=2"), json!("a=1&b=2"));
    }
}
