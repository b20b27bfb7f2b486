use std::time::Duration;

/// Why an action failed; the class decides whether the engine retries the step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    /// A transient failure (429, 5xx, timeout, connection error): retried per the step's policy.
    /// `retry_after` is the provider's requested delay, honoured when longer than the backoff.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// A failure that will not go away by retrying (4xx, business errors).
    #[error("{0}")]
    Permanent(String),
    /// The step's `with` does not fit the action's input.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl ActionError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// The same error with every secret value in its message replaced by `***`.
    pub fn redacted(self, redactor: &crate::Redactor) -> Self {
        let redact = |message: String| redactor.redact_str(&message).into_owned();
        match self {
            Self::Retryable {
                message,
                retry_after,
            } => Self::Retryable {
                message: redact(message),
                retry_after,
            },
            Self::Permanent(message) => Self::Permanent(redact(message)),
            Self::InvalidInput(message) => Self::InvalidInput(redact(message)),
        }
    }

    /// Stable machine-readable class, stored with the attempt.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Retryable { .. } => "retryable",
            Self::Permanent(_) => "permanent",
            Self::InvalidInput(_) => "invalid_input",
        }
    }
}
