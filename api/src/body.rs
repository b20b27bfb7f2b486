//! JSON request bodies, read the same way on every route: a JSON `Content-Type` (415
//! `unsupported_media_type` otherwise), at most the app's `PayloadConfig` limit (413
//! `payload_too_large`), and no object with the same key twice at any depth (400
//! `invalid_input`; serde_json would silently keep the last one). Authentication runs as route
//! middleware before any extractor (see [`crate::auth`]), so none of this is reached without a
//! valid credential.

use std::collections::HashSet;
use std::fmt;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::ApiError;

/// A required JSON body deserialized into `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read(request, payload);
        Box::pin(async move {
            match body.await? {
                Some(value) => Ok(Self(value)),
                None => Err(ApiError::InvalidInput(
                    "the request needs a JSON body".into(),
                )),
            }
        })
    }
}

/// An optional JSON body: `None` when the body is empty or only whitespace (whatever its
/// `Content-Type`), else a [`Json`] body.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read(request, payload);
        Box::pin(async move { body.await.map(Self) })
    }
}

fn read<T: DeserializeOwned + 'static>(
    request: &HttpRequest,
    payload: &mut Payload,
) -> LocalBoxFuture<'static, Result<Option<T>, ApiError>> {
    let request = request.clone();
    let bytes = web::Bytes::from_request(&request, payload);
    Box::pin(async move {
        let body = bytes
            .await
            .map_err(|error| ApiError::Status(error.as_response_error().status_code()))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        require_json_content_type(&request)?;
        parse(&body).map(Some)
    })
}

/// 415 unless the request says its body is JSON (`application/json` or `application/*+json`).
pub fn require_json_content_type(request: &HttpRequest) -> Result<(), ApiError> {
    let media_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_json = media_type == "application/json"
        || media_type
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"));
    if is_json {
        Ok(())
    } else if media_type.is_empty() {
        Err(ApiError::UnsupportedMediaType(
            "send the body as JSON with `Content-Type: application/json`".into(),
        ))
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "send the body as JSON with `Content-Type: application/json`, not `{media_type}`"
        )))
    }
}

/// Parses `body` into `T`, refusing invalid JSON and duplicate object keys (400).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    check_unique_keys(body)
        .and_then(|()| serde_json::from_slice(body))
        .map_err(|error| ApiError::InvalidInput(format!("invalid JSON body: {error}")))
}

/// Checks that `body` is one JSON value whose objects never repeat a key. serde_json reports
/// where (`at line L column C`).
pub fn check_unique_keys(body: &[u8]) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    deserializer.deserialize_any(UniqueKeys)?;
    deserializer.end()
}

/// Walks a JSON value, remembering each object's keys; values are not kept.
struct UniqueKeys;

impl<'de> de::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeys)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self, A::Error> {
        while items.next_element::<UniqueKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self, A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = entries.next_key::<String>()? {
            if keys.contains(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            entries.next_value::<UniqueKeys>()?;
            keys.insert(key);
        }
        Ok(self)
    }
}
