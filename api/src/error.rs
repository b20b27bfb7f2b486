//! The one error type of the HTTP boundary. Every failure becomes
//! `{"error": {"code": "...", "message": "..."}}` with the matching status; internal details
//! are logged, never sent.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use stepwise_engine::{EngineError, VaultError};
use stepwise_workflows::Diagnostic;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    WorkflowDisabled(String),
    #[error("{0}")]
    ConcurrencyLimit(String),
    /// Malformed request: bad JSON, bad query parameter, input that is not an object.
    #[error("{0}")]
    InvalidInput(String),
    /// A secret name outside `[A-Z_][A-Z0-9_]*`.
    #[error("{0}")]
    InvalidSecretName(String),
    #[error("the workflow has {} error(s)", .0.len())]
    InvalidWorkflow(Vec<Diagnostic>),
    #[error("missing or invalid API key; send `Authorization: Bearer <key>`")]
    Unauthorized,
    /// A state-changing request authenticated by the dashboard's session cookie without the
    /// anti-CSRF header (which a cross-site form or script cannot send).
    #[error("missing the `X-Stepwise-CSRF` header that session-cookie requests must send")]
    CsrfRejected,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// A webhook delivery that failed verification (status and code from the verifier).
    #[error(transparent)]
    Rejected(stepwise_integrations::webhooks::Rejection),
    /// A failure status produced outside our handlers (wrong method, body too large, ...),
    /// re-rendered as JSON by [`crate::startup`]'s fallback.
    #[error("{}", .0.canonical_reason().unwrap_or("error"))]
    Status(StatusCode),
    /// The detail is logged when the response is built and never reaches the client.
    #[error("internal server error")]
    Internal(String),
}

/// Every error response: `{"error": {"code": "not_found", "message": "..."}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable (`not_found`, `invalid_input`, ...): switch on this.
    #[schema(example = "not_found")]
    pub code: &'static str,
    /// For people; may change between versions.
    pub message: String,
    /// With `invalid_workflow`: every problem of the source, located.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<DiagnosticBody>>,
}

/// A located workflow problem on the wire.
#[derive(Serialize, ToSchema)]
pub struct DiagnosticBody {
    pub line: usize,
    pub column: usize,
    /// The diagnostic's code (`WF0001`, ...; see `workflows/DIAGNOSTICS.md`).
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// Stable machine-readable code; clients switch on it rather than on the message.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::WorkflowDisabled(_) => "workflow_disabled",
            Self::ConcurrencyLimit(_) => "concurrency_limit",
            Self::InvalidInput(_) => "invalid_input",
            Self::InvalidSecretName(_) => "invalid_secret_name",
            Self::InvalidWorkflow(_) => "invalid_workflow",
            Self::Unauthorized => "unauthorized",
            Self::CsrfRejected => "csrf_rejected",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unavailable(_) => "unavailable",
            Self::Rejected(rejection) => rejection.code(),
            Self::Status(status) => match *status {
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                status if status.is_server_error() => "internal",
                _ => "bad_request",
            },
            Self::Internal(_) => "internal",
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound(message) => Self::NotFound(message),
            EngineError::Conflict(message) => Self::Conflict(message),
            EngineError::WorkflowDisabled(message) => Self::WorkflowDisabled(message),
            EngineError::ConcurrencyLimit(message) => Self::ConcurrencyLimit(message),
            EngineError::InvalidInput(message) => Self::InvalidInput(message),
            EngineError::InvalidWorkflow(diagnostics) => Self::InvalidWorkflow(diagnostics),
            // A missing master key is the operator's to fix, not a bug: say what to set.
            EngineError::Vault(
                error @ (VaultError::NoMasterKey | VaultError::UnknownKey { .. }),
            ) => Self::Unavailable(error.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::WorkflowDisabled(_) | Self::ConcurrencyLimit(_) => {
                StatusCode::CONFLICT
            }
            Self::InvalidInput(_) | Self::InvalidSecretName(_) => StatusCode::BAD_REQUEST,
            Self::InvalidWorkflow(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::CsrfRejected => StatusCode::FORBIDDEN,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Rejected(rejection) => {
                StatusCode::from_u16(rejection.status().as_u16()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::Status(status) => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(detail) = self {
            tracing::error!(message = "Request failed.", error = %detail);
        }
        let diagnostics = match self {
            Self::InvalidWorkflow(diagnostics) => Some(
                diagnostics
                    .iter()
                    .map(|diagnostic| DiagnosticBody {
                        line: diagnostic.line,
                        column: diagnostic.column,
                        code: diagnostic.code,
                        message: diagnostic.message.clone(),
                    })
                    .collect(),
            ),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                diagnostics,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_detail() {
        let error = ApiError::from(EngineError::Config("password=hunter2".into()));
        assert_eq!(error.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.to_string(), "internal server error");
    }

    #[test]
    fn engine_errors_keep_their_class() {
        let cases = [
            (EngineError::NotFound("x".into()), StatusCode::NOT_FOUND),
            (EngineError::Conflict("x".into()), StatusCode::CONFLICT),
            (
                EngineError::WorkflowDisabled("x".into()),
                StatusCode::CONFLICT,
            ),
            (
                EngineError::ConcurrencyLimit("x".into()),
                StatusCode::CONFLICT,
            ),
            (
                EngineError::InvalidInput("x".into()),
                StatusCode::BAD_REQUEST,
            ),
            (
                EngineError::InvalidWorkflow(Vec::new()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(error).status_code(), status);
        }
    }
}
