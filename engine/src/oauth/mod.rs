//! OAuth 2.0 for connections: the authorization-code flow with `state` and PKCE S256
//! ([`authorize`], [`complete`]), RFC 7009 revocation ([`revoke`]), the token manager
//! ([`tokens`]) and authorization server metadata discovery ([`discovery`]).
//!
//! A `state` is 128 random bits, single use, bound to its tenant and connection and valid for
//! [`STATE_TTL_MS`]; only its SHA-256 is stored, next to the sealed PKCE verifier (empty when
//! the provider's declaration turns PKCE off). The provider's declaration adds its extra
//! authorization parameters, fills `{name}` placeholders of the endpoints from the
//! connection's parameters, and says how its token answer is read (`providers/auth.rs`).

pub mod client;
pub mod discovery;
pub mod tokens;

use std::collections::BTreeMap;

use oauth2::{AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, TokenResponse};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};
use stepwise_integrations::SecretValue;
use stepwise_integrations::http::{HttpClient, build_request};
use stepwise_integrations::providers::{ClientAuthMethod, ConnectionValues, provider, render_url};

use crate::db::begin_write;
use crate::error::EngineError;
use crate::store::connections::{
    self, Connection, ConnectionInfo, ConnectionKind, Credentials, NewTokens,
};
use crate::store::entities::oauth_state;
use crate::store::now_ms;
use crate::store::oauth_apps::{self, OAuthApp};
use crate::vault::{AadContext, Envelope, Vault};
use client::{TokenEndpoint, app_client, classify, scope_parameter};

/// How long an authorization `state` is accepted: 10 minutes.
pub const STATE_TTL_MS: i64 = 10 * 60 * 1000;

const STATE_KIND: &str = "oauth_state";
const STATE_FIELD: &str = "pkce_verifier";

/// Why a callback was refused; each maps to one page and status in the API.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("this authorization link is unknown or was already used; start the connection again")]
    UnknownState,
    #[error("this authorization link expired (they last 10 minutes); start the connection again")]
    Expired,
    #[error("this authorization belongs to another tenant")]
    OtherTenant,
    #[error("the provider refused the authorization: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Provider {
        error: String,
        description: Option<String>,
    },
    #[error("exchanging the authorization code failed: {0}")]
    Exchange(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What the provider sent back to the callback.
#[derive(Debug)]
pub enum CallbackOutcome {
    Code(SecretValue),
    Error {
        error: String,
        description: Option<String>,
    },
}

fn hash_state(state: &str) -> String {
    hex_digest(Sha256::digest(state.as_bytes()).as_slice())
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn state_context<'a>(tenant_id: &'a str, state_hash: &'a str) -> AadContext<'a> {
    AadContext {
        tenant_id,
        kind: STATE_KIND,
        record: state_hash,
        field: STATE_FIELD,
    }
}

/// Loads an OAuth connection's app, checking the connection is OAuth 2.0 for `integration`.
async fn oauth_connection(
    db: &DatabaseConnection,
    vault: &Vault,
    tenant_id: &str,
    integration: &str,
    name: &str,
) -> Result<(ConnectionInfo, OAuthApp), EngineError> {
    let connection = connections::get(db, tenant_id, name).await?;
    if connection.kind != ConnectionKind::Oauth2 {
        return Err(EngineError::InvalidInput(format!(
            "connection `{name}` is a `{}` connection; only `oauth2` connections are authorized",
            connection.kind.as_str()
        )));
    }
    if connection.integration != integration {
        return Err(EngineError::InvalidInput(format!(
            "connection `{name}` belongs to integration `{}`, not `{integration}`",
            connection.integration
        )));
    }
    let app_name = connection
        .oauth_app
        .clone()
        .unwrap_or_else(|| oauth_apps::default_name(&connection.integration));
    let app = oauth_apps::load(db, vault, tenant_id, &app_name).await?;
    Ok((connection, app))
}

/// Starts authorizing connection `name`: stores a fresh state with its PKCE verifier and returns
/// the provider's authorization URL to redirect the user to.
pub async fn authorize(
    db: &DatabaseConnection,
    vault: &Vault,
    tenant_id: &str,
    integration: &str,
    name: &str,
    redirect_uri: &str,
) -> Result<String, EngineError> {
    let (connection, app) = oauth_connection(db, vault, tenant_id, integration, name).await?;
    let values = endpoint_values(integration, &connection.params, &BTreeMap::new())
        .map_err(EngineError::InvalidInput)?;
    let client =
        app_client(&app, Some(redirect_uri), &values).map_err(EngineError::InvalidInput)?;
    let declared = provider(integration).and_then(|spec| spec.oauth2.as_ref());
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scope_parameter(&app.info.integration, &app.info.scopes));
    for (parameter, value) in declared.into_iter().flat_map(|o| &o.authorize_params) {
        request = request.add_extra_param(parameter, value);
    }
    let verifier = if declared.is_none_or(|o| o.pkce) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        request = request.set_pkce_challenge(challenge);
        verifier.secret().clone()
    } else {
        String::new()
    };
    let verifier = zeroize::Zeroizing::new(verifier);
    let (url, state) = request.url();
    let state_hash = hash_state(state.secret());
    let sealed = vault
        .seal(&state_context(tenant_id, &state_hash), verifier.as_bytes())
        .await?;
    let now = now_ms();
    let tx = begin_write(db).await?;
    // Expired states are useless; pruning here keeps the table small without a sweeper.
    oauth_state::Entity::delete_many()
        .filter(oauth_state::Column::ExpiresAt.lt(now))
        .exec(&tx)
        .await?;
    oauth_state::ActiveModel {
        state_hash: Set(state_hash),
        tenant_id: Set(tenant_id.to_owned()),
        connection_id: Set(connection.id),
        envelope_version: Set(i16::from(sealed.version)),
        key_id: Set(sealed.key_id),
        wrapped_key: Set(sealed.wrapped_key),
        nonce: Set(sealed.nonce),
        ciphertext: Set(sealed.ciphertext),
        expires_at: Set(now + STATE_TTL_MS),
        created_at: Set(now),
    }
    .insert(&tx)
    .await?;
    tx.commit().await?;
    Ok(url.to_string())
}

/// Completes an authorization: consumes the state (whatever happens next, it is never accepted
/// again), checks it, exchanges the code with the PKCE verifier and stores the tokens.
/// `expected_tenant` is the tenant of the request's API key, when it carries one.
pub async fn complete(
    db: &DatabaseConnection,
    vault: &Vault,
    http: &HttpClient,
    expected_tenant: Option<&str>,
    state: &str,
    outcome: CallbackOutcome,
    redirect_uri: &str,
) -> Result<ConnectionInfo, CallbackError> {
    let state_hash = hash_state(state);
    let tx = begin_write(db).await.map_err(EngineError::from)?;
    let row = oauth_state::Entity::find_by_id(state_hash.clone())
        .one(&tx)
        .await
        .map_err(EngineError::from)?;
    let Some(row) = row else {
        return Err(CallbackError::UnknownState);
    };
    let deleted = oauth_state::Entity::delete_many()
        .filter(oauth_state::Column::StateHash.eq(state_hash.as_str()))
        .exec(&tx)
        .await
        .map_err(EngineError::from)?;
    tx.commit().await.map_err(EngineError::from)?;
    if deleted.rows_affected == 0 {
        // A concurrent callback with the same state consumed it first.
        return Err(CallbackError::UnknownState);
    }
    if expected_tenant.is_some_and(|tenant| tenant != row.tenant_id) {
        return Err(CallbackError::OtherTenant);
    }
    if row.expires_at < now_ms() {
        return Err(CallbackError::Expired);
    }
    let code = match outcome {
        CallbackOutcome::Code(code) => code,
        CallbackOutcome::Error { error, description } => {
            return Err(CallbackError::Provider { error, description });
        }
    };
    let verifier = vault
        .open_string(
            &state_context(&row.tenant_id, &state_hash),
            &Envelope {
                version: u8::try_from(row.envelope_version).unwrap_or(u8::MAX),
                key_id: row.key_id.clone(),
                wrapped_key: row.wrapped_key.clone(),
                nonce: row.nonce.clone(),
                ciphertext: row.ciphertext.clone(),
            },
        )
        .await
        .map_err(EngineError::from)?;
    let connection_row = connections::find_by_id(db, &row.connection_id)
        .await?
        .ok_or(CallbackError::UnknownState)?;
    let connection = connections::connection(vault, &connection_row).await?;
    let app_name = connection_row
        .oauth_app
        .clone()
        .unwrap_or_else(|| oauth_apps::default_name(&connection_row.integration));
    let app = oauth_apps::load(db, vault, &row.tenant_id, &app_name).await?;
    let values = endpoint_values(
        &connection.info.integration,
        &connection.info.params,
        &BTreeMap::new(),
    )
    .map_err(CallbackError::Exchange)?;
    let client = app_client(&app, Some(redirect_uri), &values).map_err(CallbackError::Exchange)?;
    let tls = connection.tls_options().map_err(CallbackError::Exchange)?;
    let endpoint = TokenEndpoint::new(http, &tls, &connection.info.integration);
    let mut exchange = client.exchange_code(AuthorizationCode::new(code.expose().to_owned()));
    if !verifier.is_empty() {
        exchange = exchange.set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_owned()));
    }
    let token = exchange
        .request_async(&endpoint)
        .await
        .map_err(|error| CallbackError::Exchange(classify(error).message().to_owned()))?;
    let requested = provider(&app.info.integration).map_or(&app.info.scopes[..], |spec| {
        spec.requested_scopes(&app.info.scopes)
    });
    let tokens = new_tokens(
        &token,
        None,
        endpoint.kept(),
        &connection.credentials,
        requested,
    );
    connections::store_tokens(db, vault, &row.tenant_id, &row.connection_id, &tokens, None).await?;
    Ok(connections::get(db, &row.tenant_id, &connection_row.name).await?)
}

/// What the `{name}` placeholders of `integration`'s endpoints and base URL stand for: the
/// connection's parameters (and their declared defaults) and its kept token values.
pub(crate) fn endpoint_values(
    integration: &str,
    params: &BTreeMap<String, String>,
    kept: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    provider(integration).map_or_else(
        || Ok(BTreeMap::new()),
        |spec| {
            spec.url_values(&ConnectionValues {
                params: params.clone(),
                kept: kept.clone(),
            })
        },
    )
}

/// The tokens of a token response. A response without a refresh token keeps `previous_refresh`
/// (RFC 6749 6: the server may keep the old one); without `scope`, the requested scopes were
/// granted (RFC 6749 5.1). The client key of `stored` (the connection's current credentials)
/// is carried over: the tokens replace the whole sealed envelope. `kept` (the values the
/// declaration keeps from this answer) replaces the stored ones it names; the others stay, as
/// a refresh answer may leave them out.
pub(crate) fn new_tokens(
    token: &oauth2::basic::BasicTokenResponse,
    previous_refresh: Option<SecretValue>,
    kept: BTreeMap<String, String>,
    stored: &Credentials,
    requested: &[String],
) -> NewTokens {
    let mut kept_values = stored.kept.clone();
    kept_values.extend(kept);
    let scopes = match token.scopes() {
        Some(scopes) => scopes.iter().map(|scope| scope.to_string()).collect(),
        None => requested.to_vec(),
    };
    let lifetime_ms = token
        .expires_in()
        .map(|lifetime| i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX));
    NewTokens {
        credentials: Credentials {
            access_token: Some(SecretValue::new(token.access_token().secret().as_str())),
            refresh_token: token
                .refresh_token()
                .map(|refresh| SecretValue::new(refresh.secret().as_str()))
                .or(previous_refresh),
            client_key: stored.client_key.clone(),
            kept: kept_values,
            ..Credentials::default()
        },
        scopes,
        expires_at: lifetime_ms.map(|lifetime| now_ms().saturating_add(lifetime)),
        lifetime_ms,
    }
}

/// Revokes the connection's tokens at the app's RFC 7009 endpoint: the refresh token first
/// (which revokes its access tokens at most providers), then the access token; with the
/// connection's TLS options, so its client certificate is presented there too.
///
/// Hand-written rather than oauth2's `revoke_token`, which refuses `http://` endpoints: local
/// and self-hosted providers (and our tests) are often plain HTTP, and the token endpoint,
/// which carries the same secrets, is accepted over HTTP too.
pub async fn revoke(
    http: &HttpClient,
    app: &OAuthApp,
    connection: &Connection,
) -> Result<bool, String> {
    let credentials = &connection.credentials;
    let Some(revoke_url) = &app.info.revoke_url else {
        return Ok(false);
    };
    let values = endpoint_values(
        &connection.info.integration,
        &connection.info.params,
        &credentials.kept,
    )?;
    let revoke_url = &render_url(revoke_url, &values)?;
    let tokens = [
        (&credentials.refresh_token, "refresh_token"),
        (&credentials.access_token, "access_token"),
    ];
    let tls = connection.tls_options()?;
    let mut revoked = false;
    for (token, hint) in tokens {
        let Some(token) = token else { continue };
        let mut request = http
            .request(http::Method::POST, revoke_url)
            .map_err(|error| error.to_string())?
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .timeout(client::TOKEN_REQUEST_TIMEOUT);
        // The serializer is not Send: the body is finished before anything is awaited.
        let body = {
            let mut form = oauth2::url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token.expose())
                .append_pair("token_type_hint", hint);
            match (app.info.auth_method, &app.client_secret) {
                (ClientAuthMethod::ClientSecretBasic, Some(secret)) => {
                    request = request.header(
                        http::header::AUTHORIZATION,
                        basic_authorization(&app.info.client_id, secret),
                    );
                }
                _ => {
                    form.append_pair("client_id", &app.info.client_id);
                    if let Some(secret) = &app.client_secret {
                        form.append_pair("client_secret", secret.expose());
                    }
                }
            }
            zeroize::Zeroizing::new(form.finish())
        };
        let request = build_request(request.body(body.as_str().to_owned()))
            .map_err(|error| error.to_string())?;
        let response = http
            .execute_with(request, &tls)
            .await
            .map_err(|failure| failure.error.to_string())?;
        // RFC 7009 2.2: 200 also for a token that was already invalid.
        if !response.status().is_success() {
            return Err(format!(
                "the revocation endpoint answered HTTP {}",
                response.status().as_u16()
            ));
        }
        revoked = true;
    }
    Ok(revoked)
}

/// RFC 6749 2.3.1: client id and secret are form-urlencoded, then joined and base64-encoded.
fn basic_authorization(client_id: &str, secret: &SecretValue) -> http::HeaderValue {
    use base64::Engine as _;
    let encode = |text: &str| {
        oauth2::url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
    };
    let pair =
        zeroize::Zeroizing::new(format!("{}:{}", encode(client_id), encode(secret.expose())));
    let mut value = http::HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
    ))
    .unwrap_or_else(|_| http::HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_before_base64() {
        use base64::Engine as _;
        let value = basic_authorization("id:with space", &SecretValue::new("s3cr+t/&=:%"));
        let encoded = value.to_str().expect("ascii").trim_start_matches("Basic ");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        assert_eq!(
            String::from_utf8(decoded).expect("utf-8"),
            "id%3Awith+space:s3cr%2Bt%2F%26%3D%3A%25"
        );
    }

    #[test]
    fn states_are_stored_hashed() {
        let hash = hash_state("abc");
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, "abc");
        assert_eq!(hash, hash_state("abc"));
    }
}
