use stepwise_workflows::Diagnostic;

/// Errors at the engine boundary; `api` maps each variant to one HTTP status and code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidInput(String),
    /// The workflow is disabled: it starts no new run until it is enabled.
    #[error("{0}")]
    WorkflowDisabled(String),
    /// A retried run would exceed its workflow's `concurrency` limit, whose `on_limit` is
    /// `cancel_new`: the retry is refused and the run left as it was.
    #[error("{0}")]
    ConcurrencyLimit(String),
    /// The workflow source has errors; each diagnostic is located.
    #[error("workflow has {} error(s)", .0.len())]
    InvalidWorkflow(Vec<Diagnostic>),
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("queue: {0}")]
    Queue(String),
    /// A secret could not be sealed or opened: no or wrong master key, or altered data.
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl From<serde_json::Error> for EngineError {
    fn from(error: serde_json::Error) -> Self {
        Self::Corrupt(error.to_string())
    }
}

impl From<crate::status::UnknownStatus> for EngineError {
    fn from(error: crate::status::UnknownStatus) -> Self {
        Self::Corrupt(error.to_string())
    }
}

impl From<crate::vault::KeyError> for EngineError {
    fn from(error: crate::vault::KeyError) -> Self {
        Self::Vault(error.into())
    }
}
