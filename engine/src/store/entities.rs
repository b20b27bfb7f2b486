//! sea-orm entities, one module per table. Timestamps are epoch milliseconds (see migrations).

pub mod tenant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub key_hash: String,
        pub prefix: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod workflow {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "workflows")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub latest_version: i32,
        pub created_at: i64,
        pub updated_at: i64,
        /// False while the workflow is disabled: it starts no new run.
        pub enabled: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod workflow_version {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "workflow_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workflow_id: String,
        pub tenant_id: String,
        pub version: i32,
        #[sea_orm(column_type = "Text")]
        pub source: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub definition: Json,
        pub content_hash: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub workflow_id: String,
        pub workflow_version_id: String,
        pub workflow_name: String,
        pub workflow_version: i32,
        pub status: String,
        pub trigger_kind: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub input: Json,
        #[sea_orm(column_type = "JsonBinary")]
        pub trigger: Json,
        #[sea_orm(column_type = "JsonBinary", nullable)]
        pub output: Option<Json>,
        #[sea_orm(column_type = "Text", nullable)]
        pub error: Option<String>,
        pub created_at: i64,
        pub started_at: Option<i64>,
        pub finished_at: Option<i64>,
        pub deadline_at: Option<i64>,
        pub retries: i32,
        pub rerun_of: Option<String>,
        pub parent_run_id: Option<String>,
        pub parent_step_id: Option<String>,
        pub concurrency_key: Option<String>,
        /// The run's output before masking, sealed (see `store::unmasked`); null when masking
        /// changed nothing.
        #[sea_orm(column_type = "Blob", nullable)]
        pub sealed_unmasked: Option<Vec<u8>>,
        /// Bytes of step inputs and outputs stored for the run (their JSON text).
        pub stored_bytes: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod step {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "steps")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub run_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub step_id: String,
        pub position: i32,
        pub status: String,
        pub attempts: i32,
        pub dispatch: i32,
        #[sea_orm(column_type = "JsonBinary", nullable)]
        pub input: Option<Json>,
        #[sea_orm(column_type = "JsonBinary", nullable)]
        pub output: Option<Json>,
        #[sea_orm(column_type = "JsonBinary", nullable)]
        pub error: Option<Json>,
        pub wake_at: Option<i64>,
        pub queued_at: Option<i64>,
        pub started_at: Option<i64>,
        pub finished_at: Option<i64>,
        pub attempt_offset: i32,
        /// The row's input and output before masking, sealed (see `store::unmasked`); null
        /// when masking changed neither.
        #[sea_orm(column_type = "Blob", nullable)]
        pub sealed_unmasked: Option<Vec<u8>>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod step_attempt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "step_attempts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub run_id: String,
        pub step_id: String,
        pub attempt: i32,
        pub status: String,
        pub worker: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub error: Option<String>,
        pub error_class: Option<String>,
        #[sea_orm(column_type = "JsonBinary", nullable)]
        pub logs: Option<Json>,
        pub started_at: i64,
        pub finished_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod step_outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "step_outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub run_id: String,
        pub step_id: String,
        pub dispatch: i32,
        pub available_at: i64,
        pub created_at: i64,
        /// The worker (apalis worker id) executing this step after claiming it in the commit
        /// that wrote the row; the relay leaves the row alone while that worker is alive.
        pub held_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod secret {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "secrets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub envelope_version: i16,
        pub key_id: String,
        #[sea_orm(column_type = "Blob")]
        pub wrapped_key: Vec<u8>,
        #[sea_orm(column_type = "Blob")]
        pub nonce: Vec<u8>,
        #[sea_orm(column_type = "Blob")]
        pub ciphertext: Vec<u8>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook_source {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_sources")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub provider: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub scheme: Json,
        pub envelope_version: i16,
        pub key_id: String,
        #[sea_orm(column_type = "Blob")]
        pub wrapped_key: Vec<u8>,
        #[sea_orm(column_type = "Blob")]
        pub nonce: Vec<u8>,
        #[sea_orm(column_type = "Blob")]
        pub ciphertext: Vec<u8>,
        pub previous_envelope_version: Option<i16>,
        pub previous_key_id: Option<String>,
        #[sea_orm(column_type = "Blob", nullable)]
        pub previous_wrapped_key: Option<Vec<u8>>,
        #[sea_orm(column_type = "Blob", nullable)]
        pub previous_nonce: Option<Vec<u8>>,
        #[sea_orm(column_type = "Blob", nullable)]
        pub previous_ciphertext: Option<Vec<u8>>,
        pub previous_valid_until: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook_delivery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub source_id: String,
        pub delivery_id: Option<String>,
        pub event_type: Option<String>,
        pub received_at: i64,
        #[sea_orm(column_type = "JsonBinary")]
        pub run_ids: Json,
        pub duplicates: i32,
        pub last_duplicate_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook_rejection {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_rejections")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub source_id: String,
        pub received_at: i64,
        pub code: String,
        #[sea_orm(column_type = "Text")]
        pub message: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub headers: Json,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod oauth_app {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "oauth_apps")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub integration: String,
        pub client_id: String,
        pub auth_method: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub scopes: Json,
        pub authorize_url: Option<String>,
        pub token_url: Option<String>,
        pub revoke_url: Option<String>,
        pub base_url: Option<String>,
        pub envelope_version: Option<i16>,
        pub key_id: Option<String>,
        #[sea_orm(column_type = "Blob", nullable)]
        pub wrapped_key: Option<Vec<u8>>,
        #[sea_orm(column_type = "Blob", nullable)]
        pub nonce: Option<Vec<u8>>,
        #[sea_orm(column_type = "Blob", nullable)]
        pub ciphertext: Option<Vec<u8>>,
        pub created_at: i64,
        pub updated_at: i64,
        pub issuer: Option<String>,
        pub refresh_margin_ms: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod connection {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "connections")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub integration: String,
        pub kind: String,
        pub oauth_app: Option<String>,
        pub status: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub status_reason: Option<String>,
        #[sea_orm(column_type = "JsonBinary")]
        pub scopes: Json,
        pub expires_at: Option<i64>,
        pub username: Option<String>,
        pub api_key_header: Option<String>,
        pub envelope_version: Option<i16>,
        pub key_id: Option<String>,
        #[sea_orm(column_type = "Blob", nullable)]
        pub wrapped_key: Option<Vec<u8>>,
        #[sea_orm(column_type = "Blob", nullable)]
        pub nonce: Option<Vec<u8>>,
        #[sea_orm(column_type = "Blob", nullable)]
        pub ciphertext: Option<Vec<u8>>,
        pub refresh_lease_owner: Option<String>,
        pub refresh_lease_until: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
        #[sea_orm(column_type = "Text", nullable)]
        pub probe_url: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub client_cert: Option<String>,
        pub tls_min: Option<String>,
        pub token_lifetime_ms: Option<i64>,
        #[sea_orm(column_type = "JsonBinary", nullable)]
        pub params: Option<Json>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod oauth_state {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "oauth_states")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub state_hash: String,
        pub tenant_id: String,
        pub connection_id: String,
        pub envelope_version: i16,
        pub key_id: String,
        #[sea_orm(column_type = "Blob")]
        pub wrapped_key: Vec<u8>,
        #[sea_orm(column_type = "Blob")]
        pub nonce: Vec<u8>,
        #[sea_orm(column_type = "Blob")]
        pub ciphertext: Vec<u8>,
        pub expires_at: i64,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod schedule {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "schedules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub workflow_id: String,
        pub workflow_name: String,
        pub entry: i32,
        pub expression: String,
        pub timezone: String,
        pub catch_up: String,
        pub max_catch_up: i32,
        pub overlap: String,
        pub next_fire_at: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod schedule_fire {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "schedule_fires")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub schedule_id: String,
        pub tenant_id: String,
        pub slot_at: i64,
        pub outcome: String,
        pub run_id: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub error: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook_wait {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_waits")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub run_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub step_id: String,
        pub tenant_id: String,
        pub source: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub events: Json,
        #[sea_orm(column_type = "JsonBinary")]
        pub matches: Json,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod dashboard_session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "dashboard_sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub tenant_id: String,
        pub created_at: i64,
        pub expires_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod rate_limit_bucket {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rate_limit_buckets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub integration: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub bucket: Json,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
