//! `POST /webhooks/{provider}/{source}`: the ingest endpoint senders call. No API key: the
//! signature authenticates the delivery, and `{source}` is the source's unguessable id.
//!
//! Answers 200 `{"delivery_id", "run_ids", "duplicate"}` once the delivery and its runs are
//! committed (a Slack `url_verification` gets `{"challenge"}`), 401/400/415 when the delivery
//! is refused, 404 for an unknown source and 413 beyond the configured size limit. Every
//! delivery is counted by provider and outcome.
//!
//! `?wait=30s` (at most [`MAX_WAIT`]) waits for the runs: 200 with each run's status and
//! outputs when all of them finish in time, else 202 with the run ids. A duplicate waits for
//! the runs of its first copy.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stepwise_engine::{IngestError, Ingested, RunStatus};
use stepwise_integrations::webhooks::WebhookSchemeName;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::metrics::outcome;
use crate::state::AppState;

/// The longest `?wait=` honoured; longer waits are cut to this.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The largest delivery body, in bytes (`STEPWISE_WEBHOOK_MAX_BYTES`).
#[derive(Debug, Clone, Copy)]
pub struct WebhookMaxBytes(pub usize);

/// What a delivery is answered with: its runs, or a Slack `url_verification`'s challenge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum IngestAnswer {
    Accepted(Accepted),
    Challenge(Challenge),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub delivery_id: Option<String>,
    pub run_ids: Vec<String>,
    pub duplicate: bool,
    /// With `?wait=`, once every run finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<FinishedRun>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FinishedRun {
    pub run_id: String,
    pub status: RunStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Challenge {
    pub challenge: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestQuery {
    /// How long to wait for the runs, e.g. `30s`.
    pub wait: Option<String>,
}

/// actix-web's headers (http 0.2) as the `http` 1 map the verifiers read.
fn header_map(request: &HttpRequest) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(request.headers().len());
    for (name, value) in request.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Verifies a delivery's signature and starts every subscribed workflow, in one transaction.
#[utoipa::path(
    post,
    path = "/webhooks/{provider}/{source}",
    tag = "webhooks",
    params(
        ("provider" = inline(WebhookSchemeName), Path, description = "The source's webhook scheme."),
        ("source" = String, Path, description = "The source's id (its `url` says the whole path)."),
        IngestQuery,
    ),
    request_body(
        description = "The delivery exactly as the provider signed it.",
        content(("application/json"), ("application/x-www-form-urlencoded")),
    ),
    responses(
        (status = 200, description = "Accepted (or a duplicate of an accepted delivery: `duplicate` is true, nothing new starts); with `?wait=`, every run finished and `runs` has their outputs. A Slack `url_verification` gets its `challenge` back.", body = IngestAnswer),
        (status = 202, description = "With `?wait=`: accepted, but the runs did not finish in time.", body = Accepted),
        (status = 400, description = "`malformed_header`, `malformed_body`, or `invalid_input` for a bad `wait`.", body = ErrorBody),
        (status = 401, description = "`missing_header`, `no_supported_signature`, `signature_mismatch`, `stale_timestamp`, `future_timestamp` or `no_usable_secret`: the delivery is refused and logged in the source's rejections.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such source for this provider.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: beyond `STEPWISE_WEBHOOK_MAX_BYTES`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a content type the provider never sends.", body = ErrorBody),
    )
)]
pub async fn ingest(
    state: web::Data<AppState>,
    max_bytes: web::Data<WebhookMaxBytes>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<IngestQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (provider, source) = path.into_inner();
    let received = Instant::now();
    let (label, handled, response) = receive(
        &state,
        &request,
        (provider.clone(), source),
        query.into_inner(),
        payload,
        max_bytes.0,
    )
    .await;
    state
        .metrics()
        .webhook_delivery(&provider, label, handled.duration_since(received));
    response
}

/// Handles one delivery; returns its metrics outcome and when it was handled (before any
/// `?wait=`) beside the answer.
async fn receive(
    state: &AppState,
    request: &HttpRequest,
    (provider, source): (String, String),
    query: IngestQuery,
    payload: web::Payload,
    max_bytes: usize,
) -> (&'static str, Instant, Result<HttpResponse, ApiError>) {
    let wait = match query.wait.as_deref().map(parse_wait).transpose() {
        Ok(wait) => wait,
        Err(error) => return ("bad_request", Instant::now(), Err(error)),
    };
    let body = match read_body(request, payload, max_bytes).await {
        Ok(body) => body,
        Err(error) => return (outcome::TOO_LARGE, Instant::now(), Err(error)),
    };
    let headers = header_map(request);
    let ingested = state
        .call_with(
            move |engine| async move { engine.ingest(&provider, &source, &headers, &body).await },
        )
        .await;
    let ingested = match ingested {
        Ok(ingested) => ingested,
        Err(error) => return (refusal(&error), Instant::now(), Err(error)),
    };
    let label = if ingested.challenge.is_some() {
        outcome::CHALLENGE
    } else if ingested.duplicate {
        outcome::DUPLICATE
    } else {
        outcome::ACCEPTED
    };
    (label, Instant::now(), answer(state, ingested, wait).await)
}

/// The metrics outcome of a refused delivery.
fn refusal(error: &ApiError) -> &'static str {
    match error {
        ApiError::NotFound(_) => outcome::UNKNOWN_SOURCE,
        ApiError::Rejected(rejection) => rejection.code(),
        _ => outcome::ERROR,
    }
}

fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    let wait = humantime::parse_duration(text).map_err(|error| {
        ApiError::InvalidInput(format!("invalid `wait` ({error}): use e.g. `wait=30s`"))
    })?;
    Ok(wait.min(MAX_WAIT))
}

/// Reads the body, refusing it with 413 when its announced length or the bytes received so
/// far exceed `max_bytes`.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    max_bytes: usize,
) -> Result<web::Bytes, ApiError> {
    let too_large = || ApiError::Status(StatusCode::PAYLOAD_TOO_LARGE);
    let announced = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if announced.is_some_and(|length| length > max_bytes) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(announced.unwrap_or_default());
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| ApiError::InvalidInput(error.to_string()))?;
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

async fn answer(
    state: &AppState,
    ingested: Ingested,
    wait: Option<Duration>,
) -> Result<HttpResponse, ApiError> {
    if let Some(challenge) = ingested.challenge {
        return Ok(HttpResponse::Ok().json(IngestAnswer::Challenge(Challenge { challenge })));
    }
    let mut accepted = Accepted {
        delivery_id: ingested.delivery_id,
        run_ids: ingested.run_ids,
        duplicate: ingested.duplicate,
        runs: None,
    };
    let Some(wait) = wait.filter(|_| !accepted.run_ids.is_empty()) else {
        return Ok(HttpResponse::Ok().json(IngestAnswer::Accepted(accepted)));
    };
    let tenant_id = ingested.tenant_id;
    let run_ids = accepted.run_ids.clone();
    let finished = state
        .call(move |engine| async move {
            let all = futures::future::try_join_all(
                run_ids
                    .iter()
                    .map(|run_id| engine.wait_for_run(&tenant_id, run_id)),
            );
            // Elapsed: the runs are still going.
            tokio::time::timeout(wait, all).await.ok().transpose()
        })
        .await?;
    match finished {
        Some(runs) => {
            accepted.runs = Some(
                runs.into_iter()
                    .map(|run| FinishedRun {
                        run_id: run.summary.id,
                        status: run.summary.status,
                        output: run.output,
                        error: run.summary.error,
                    })
                    .collect(),
            );
            Ok(HttpResponse::Ok().json(IngestAnswer::Accepted(accepted)))
        }
        None => Ok(HttpResponse::Accepted().json(accepted)),
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::UnknownSource => Self::NotFound("no such webhook source".into()),
            IngestError::Rejected(rejection) => Self::Rejected(rejection),
            IngestError::Engine(error) => error.into(),
        }
    }
}
