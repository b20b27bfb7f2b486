//! `POST /webhooks/{provider}/{source}`: the ingest endpoint senders call. No API key: the
//! signature authenticates the delivery, and `{source}` is the source's unguessable id.
//!
//! Answers 200 `{"delivery_id", "run_ids", "duplicate"}` once the delivery and its runs are
//! committed (a Slack `url_verification` gets `{"challenge"}`), 401/400/415 when the delivery
//! is refused, 404 for an unknown source and 413 beyond the configured size limit.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use stepwise_engine::IngestError;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct Accepted {
    pub delivery_id: Option<String>,
    pub run_ids: Vec<String>,
    pub duplicate: bool,
}

#[derive(Debug, Serialize)]
pub struct Challenge {
    pub challenge: String,
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

pub async fn ingest(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (provider, source) = path.into_inner();
    let headers = header_map(&request);
    let ingested = state
        .call_with(
            move |engine| async move { engine.ingest(&provider, &source, &headers, &body).await },
        )
        .await?;
    Ok(match ingested.challenge {
        Some(challenge) => HttpResponse::Ok().json(Challenge { challenge }),
        None => HttpResponse::Ok().json(Accepted {
            delivery_id: ingested.delivery_id,
            run_ids: ingested.run_ids,
            duplicate: ingested.duplicate,
        }),
    })
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
