//! The credential vault: AES-256-GCM envelope encryption of secret fields.
//!
//! Every sealed value gets its own random 256-bit data key. The value is encrypted with the
//! data key; the data key is wrapped (encrypted) by a master key that a [`KeyProvider`] holds
//! (a local key file or environment variable today, a KMS tomorrow). The stored [`Envelope`]
//! records the envelope version, the master key's id, the wrapped data key, the value's nonce and
//! its ciphertext. Rotating the master key re-wraps data keys only; ciphertexts never change.
//!
//! Both encryptions carry associated data that binds the tenant, the record (kind and id) and
//! the field name ([`AadContext`]): an envelope copied to another row, tenant or column fails to
//! decrypt instead of yielding the other record's secret.
//!
//! Architecture invariant: plaintext leaves the vault only as [`SecretValue`] or
//! [`Zeroizing`] bytes; nothing here logs or formats a value or a key.

mod keys;

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use stepwise_integrations::SecretValue;
use zeroize::Zeroizing;

pub use keys::{
    DataKey, KeyError, KeyProvider, KeyRing, LocalKeyProvider, MasterKey, MasterKeySettings,
    WrappedKey, default_key_file, key_provider, read_key_file, write_key_file,
};

/// The envelope layout this version writes (and the only one it reads).
pub const ENVELOPE_VERSION: u8 = 1;

/// Length of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;

/// Name of the embedded default key file, next to the SQLite database.
pub const KEY_FILE_NAME: &str = "stepwise.key";

/// What a sealed value belongs to. Bound into the associated data of both encryptions.
#[derive(Debug, Clone, Copy)]
pub struct AadContext<'a> {
    pub tenant_id: &'a str,
    /// The kind of record, e.g. `secret`, `source`, `connection`.
    pub kind: &'a str,
    /// The record's identity within its kind (for a secret: its name).
    pub record: &'a str,
    /// The field of the record, e.g. `value`, `signing_secret`.
    pub field: &'a str,
}

impl AadContext<'_> {
    /// Unambiguous bytes: a label, the version and each part length-prefixed.
    fn bytes(&self, purpose: &str, version: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"stepwise-vault");
        out.push(version);
        for part in [purpose, self.tenant_id, self.kind, self.record, self.field] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }

    /// For messages: names the record, never its content.
    fn describe(&self) -> String {
        format!(
            "{} `{}` (field `{}`, tenant {})",
            self.kind, self.record, self.field, self.tenant_id
        )
    }
}

/// A sealed value as stored. None of its parts is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub version: u8,
    /// Id of the master key that wrapped `wrapped_key`.
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
    /// Nonce of the value encryption.
    pub nonce: Vec<u8>,
    /// The value encrypted with the data key, GCM tag appended.
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "no master key is configured: set STEPWISE_MASTER_KEY (base64 of 32 bytes) or \
         --master-key-file; processes that share a database must share the key"
    )]
    NoMasterKey,
    #[error(
        "{what} was sealed with master key `{key_id}`, which is not loaded: add that key to the \
         key file or STEPWISE_MASTER_KEY (the current key goes first); nothing was changed"
    )]
    UnknownKey { what: String, key_id: String },
    #[error(
        "cannot decrypt {what} with master key `{key_id}`: the stored data was altered or copied \
         from another record, or the key is wrong; nothing was changed"
    )]
    Decrypt { what: String, key_id: String },
    #[error("{what} has envelope version {version}, which this version of Stepwise cannot read")]
    UnsupportedVersion { what: String, version: u8 },
    #[error(transparent)]
    Key(KeyError),
}

impl VaultError {
    fn from_key(error: KeyError, what: &AadContext<'_>) -> Self {
        match error {
            KeyError::NoMasterKey => Self::NoMasterKey,
            KeyError::UnknownKey(key_id) => Self::UnknownKey {
                what: what.describe(),
                key_id,
            },
            KeyError::Unwrap(key_id) => Self::Decrypt {
                what: format!("the data key of {}", what.describe()),
                key_id,
            },
            other => Self::Key(other),
        }
    }
}

impl From<KeyError> for VaultError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::NoMasterKey => Self::NoMasterKey,
            other => Self::Key(other),
        }
    }
}

/// Seals and opens envelopes with the master keys of a [`KeyProvider`]. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    keys: Arc<dyn KeyProvider>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault")
    }
}

impl Vault {
    pub fn new(keys: Arc<dyn KeyProvider>) -> Self {
        Self { keys }
    }

    pub fn key_provider(&self) -> &Arc<dyn KeyProvider> {
        &self.keys
    }

    /// Id of the master key new envelopes are wrapped under.
    pub async fn current_key_id(&self) -> Result<String, VaultError> {
        Ok(self.keys.current_key_id().await?)
    }

    /// Encrypts `plaintext` under a fresh data key wrapped by the current master key.
    pub async fn seal(
        &self,
        context: &AadContext<'_>,
        plaintext: &[u8],
    ) -> Result<Envelope, VaultError> {
        let data_key = DataKey::generate();
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ciphertext = data_key
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad: &context.bytes("value", ENVELOPE_VERSION),
                },
            )
            .map_err(|_| KeyError::Provider("AES-GCM encryption failed".into()))?;
        let wrapped = self
            .keys
            .wrap(&data_key, &context.bytes("data-key", ENVELOPE_VERSION))
            .await
            .map_err(|error| VaultError::from_key(error, context))?;
        Ok(Envelope {
            version: ENVELOPE_VERSION,
            key_id: wrapped.key_id,
            wrapped_key: wrapped.bytes,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts an envelope sealed for exactly this context.
    pub async fn open(
        &self,
        context: &AadContext<'_>,
        envelope: &Envelope,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let data_key = self.unwrap_data_key(context, envelope).await?;
        let Some(nonce) = gcm_nonce(&envelope.nonce) else {
            return Err(self.decrypt_error(context, envelope));
        };
        data_key
            .cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: &envelope.ciphertext,
                    aad: &context.bytes("value", envelope.version),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| self.decrypt_error(context, envelope))
    }

    /// [`Vault::open`] for UTF-8 text.
    pub async fn open_string(
        &self,
        context: &AadContext<'_>,
        envelope: &Envelope,
    ) -> Result<SecretValue, VaultError> {
        let bytes = self.open(context, envelope).await?;
        match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(SecretValue::new(text)),
            Err(_) => Err(self.decrypt_error(context, envelope)),
        }
    }

    /// The data key re-wrapped under the current master key, or `None` when it already is.
    /// Only `key_id` and `wrapped_key` change; the ciphertext stays as it is.
    pub async fn rewrap(
        &self,
        context: &AadContext<'_>,
        envelope: &Envelope,
    ) -> Result<Option<WrappedKey>, VaultError> {
        let current = self.current_key_id().await?;
        if envelope.key_id == current {
            return Ok(None);
        }
        let data_key = self.unwrap_data_key(context, envelope).await?;
        let wrapped = self
            .keys
            .wrap(&data_key, &context.bytes("data-key", envelope.version))
            .await
            .map_err(|error| VaultError::from_key(error, context))?;
        Ok(Some(wrapped))
    }

    async fn unwrap_data_key(
        &self,
        context: &AadContext<'_>,
        envelope: &Envelope,
    ) -> Result<DataKey, VaultError> {
        if envelope.version != ENVELOPE_VERSION {
            return Err(VaultError::UnsupportedVersion {
                what: context.describe(),
                version: envelope.version,
            });
        }
        let wrapped = WrappedKey {
            key_id: envelope.key_id.clone(),
            bytes: envelope.wrapped_key.clone(),
        };
        self.keys
            .unwrap(&wrapped, &context.bytes("data-key", envelope.version))
            .await
            .map_err(|error| VaultError::from_key(error, context))
    }

    fn decrypt_error(&self, context: &AadContext<'_>, envelope: &Envelope) -> VaultError {
        VaultError::Decrypt {
            what: context.describe(),
            key_id: envelope.key_id.clone(),
        }
    }
}

/// AES-256-GCM with `key`.
fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
}

/// A 96-bit GCM nonce, or `None` when `bytes` has another length.
fn gcm_nonce(bytes: &[u8]) -> Option<aes_gcm::Nonce<aes_gcm::aead::consts::U12>> {
    let array: [u8; NONCE_LEN] = bytes.try_into().ok()?;
    Some(array.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(key: MasterKey) -> Vault {
        Vault::new(Arc::new(LocalKeyProvider::new(KeyRing::new(vec![key]))))
    }

    fn context<'a>(tenant: &'a str, record: &'a str) -> AadContext<'a> {
        AadContext {
            tenant_id: tenant,
            kind: "secret",
            record,
            field: "value",
        }
    }

    #[tokio::test]
    async fn round_trip_and_fresh_randomness() {
        let vault = vault(MasterKey::generate());
        let ctx = context("t1", "API_TOKEN");
        let first = vault.seal(&ctx, b"hunter2").await.expect("seal");
        let second = vault.seal(&ctx, b"hunter2").await.expect("seal");
        assert_ne!(first.ciphertext, second.ciphertext);
        assert_ne!(first.wrapped_key, second.wrapped_key);
        assert_eq!(first.nonce.len(), NONCE_LEN);
        assert_eq!(first.version, ENVELOPE_VERSION);
        let opened = vault.open_string(&ctx, &first).await.expect("open");
        assert_eq!(opened.expose(), "hunter2");
    }

    #[tokio::test]
    async fn every_bound_part_of_the_context_matters() {
        let vault = vault(MasterKey::generate());
        let sealed = vault
            .seal(&context("t1", "A"), b"value")
            .await
            .expect("seal");
        let others = [
            context("t2", "A"),
            context("t1", "B"),
            AadContext {
                kind: "source",
                ..context("t1", "A")
            },
            AadContext {
                field: "other",
                ..context("t1", "A")
            },
        ];
        for other in others {
            let error = vault.open(&other, &sealed).await.expect_err("must fail");
            assert!(matches!(error, VaultError::Decrypt { .. }), "{error}");
        }
    }

    #[tokio::test]
    async fn tampering_is_detected() {
        let vault = vault(MasterKey::generate());
        let ctx = context("t1", "A");
        let sealed = vault.seal(&ctx, b"value").await.expect("seal");
        for tamper in [
            |e: &mut Envelope| e.ciphertext[0] ^= 1,
            |e: &mut Envelope| e.nonce[0] ^= 1,
            |e: &mut Envelope| e.wrapped_key[20] ^= 1,
            |e: &mut Envelope| e.ciphertext.truncate(3),
        ] {
            let mut altered = sealed.clone();
            tamper(&mut altered);
            let error = vault.open(&ctx, &altered).await.expect_err("tampered");
            assert!(error.to_string().contains(&sealed.key_id), "{error}");
        }
        let mut future = sealed.clone();
        future.version = 9;
        assert!(matches!(
            vault.open(&ctx, &future).await,
            Err(VaultError::UnsupportedVersion { version: 9, .. })
        ));
    }

    #[tokio::test]
    async fn wrong_key_names_the_missing_key() {
        let ctx = context("t1", "A");
        let sealed = vault(MasterKey::generate())
            .seal(&ctx, b"value")
            .await
            .expect("seal");
        let error = vault(MasterKey::generate())
            .open(&ctx, &sealed)
            .await
            .expect_err("wrong key");
        assert!(matches!(error, VaultError::UnknownKey { .. }), "{error}");
        assert!(error.to_string().contains(&sealed.key_id), "{error}");
    }

    #[tokio::test]
    async fn rewrap_changes_only_the_wrapped_key() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let new_id = new.id().to_owned();
        let ctx = context("t1", "A");
        let sealed = vault(old.clone()).seal(&ctx, b"value").await.expect("seal");
        let both = vault_with(vec![new.clone(), old]);
        let wrapped = both
            .rewrap(&ctx, &sealed)
            .await
            .expect("rewrap")
            .expect("changed");
        assert_eq!(wrapped.key_id, new_id);
        let rewrapped = Envelope {
            key_id: wrapped.key_id,
            wrapped_key: wrapped.bytes,
            ..sealed.clone()
        };
        assert!(
            both.rewrap(&ctx, &rewrapped)
                .await
                .expect("rewrap")
                .is_none()
        );
        let opened = vault(new).open(&ctx, &rewrapped).await.expect("open");
        assert_eq!(opened.as_slice(), b"value");
    }

    fn vault_with(keys: Vec<MasterKey>) -> Vault {
        Vault::new(Arc::new(LocalKeyProvider::new(KeyRing::new(keys))))
    }

    #[test]
    fn debug_output_hides_keys() {
        let key = MasterKey::generate();
        let encoded = key.to_base64();
        let debug = format!("{key:?} {:?}", KeyRing::new(vec![key.clone()]));
        assert!(!debug.contains(encoded.as_str()), "{debug}");
        assert!(debug.contains(key.id()), "{debug}");
    }
}
