//! Secret values in memory: a type that never formats its content and is wiped when dropped.
//!
//! `Debug` and `Display` print `***`; there is no `Serialize`. The only way to the text is
//! [`SecretValue::expose`], so every place that reads a secret is a visible call to grep for.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use stepwise_workflows::SecretsRead;

use crate::redact::Redactor;

/// What a secret prints as, everywhere.
pub const MASK: &str = "***";

/// A secret string: prints as `***`, zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret itself. Never log, format or return it to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Secrets arrive in request bodies; they are never serialized back out.
impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// In the OpenAPI document: a write-only string, so every request field holding a secret is
/// documented as one without a per-field annotation.
impl utoipa::PartialSchema for SecretValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
            .write_only(true)
            .description(Some(
                "A secret: accepted, stored encrypted, never returned.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for SecretValue {}

/// A tenant's decrypted secrets by name, for `${{ secrets.NAME }}` and for redaction.
/// `Debug` lists the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(BTreeMap<String, SecretValue>);

impl SecretValues {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, value: SecretValue) {
        self.0.insert(name.into(), value);
    }

    pub fn get(&self, name: &str) -> Option<&SecretValue> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretValue)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A redactor that masks the values of the secrets `read` includes.
    pub fn redactor_for(&self, read: &SecretsRead) -> Redactor {
        Redactor::new(
            self.0
                .iter()
                .filter(|(name, _)| read.includes(name))
                .map(|(_, value)| value.expose()),
        )
    }

    /// `{"NAME": "value", ...}`: the `secrets` object of an expression context. The result holds
    /// the plain values; render with it, then redact what you keep.
    pub fn expose_as_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(name, value)| (name.clone(), value.expose().into()))
                .collect(),
        )
    }
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, MASK)))
            .finish()
    }
}

impl FromIterator<(String, SecretValue)> for SecretValues {
    fn from_iter<T: IntoIterator<Item = (String, SecretValue)>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let value = SecretValue::new("hunter2");
        assert_eq!(format!("{value}"), "***");
        assert_eq!(format!("{value:?}"), "***");
        assert_eq!(format!("{:#?}", Some(&value)), "Some(\n    ***,\n)");
        let values: SecretValues = [("API_TOKEN".to_owned(), value.clone())]
            .into_iter()
            .collect();
        let debug = format!("{values:?}");
        assert_eq!(debug, r#"{"API_TOKEN": "***"}"#);
        assert!(!debug.contains("hunter2"));
        assert_eq!(value.expose(), "hunter2");
    }

    #[test]
    fn deserializes_from_a_json_string() {
        #[derive(Debug, Deserialize)]
        struct Body {
            value: SecretValue,
        }
        let body: Body = serde_json::from_str(r#"{"value": "s3cret"}"#).expect("parse");
        assert_eq!(body.value.expose(), "s3cret");
        assert_eq!(format!("{body:?}"), "Body { value: *** }");
    }

    #[test]
    fn context_object_and_redactor_cover_every_value() {
        let mut values = SecretValues::new();
        values.insert("A", SecretValue::new("alpha"));
        values.insert("B", SecretValue::new("beta"));
        assert_eq!(
            values.expose_as_json(),
            serde_json::json!({"A": "alpha", "B": "beta"})
        );
        assert_eq!(
            values
                .redactor_for(&SecretsRead::All)
                .redact_str("alpha+beta"),
            "***+***"
        );
        let only_beta = SecretsRead::Only(["B".to_owned()].into());
        assert_eq!(
            values.redactor_for(&only_beta).redact_str("alpha+beta"),
            "alpha+***"
        );
    }
}
