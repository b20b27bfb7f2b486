//! Master keys: the [`KeyProvider`] seam (a KMS plugs in here) and the local implementation,
//! keys from `STEPWISE_MASTER_KEY` or a key file.
//!
//! A key file holds one base64-encoded 32-byte key per line; `#` starts a comment. The first key
//! is the current one (new data keys are wrapped under it); the others only unwrap, which is what
//! lets `stepwise keys rotate` run without downtime. `STEPWISE_MASTER_KEY` holds the same list
//! separated by commas. A key's id is derived from the key (`local-` and 16 hex digits of a
//! SHA-256), so an id can never name the wrong key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Payload};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use stepwise_integrations::SecretValue;
use zeroize::Zeroizing;

use super::{KEY_FILE_NAME, NONCE_LEN};

/// A record's 256-bit data key. Never leaves the process unwrapped; zeroed on drop.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn generate() -> Self {
        Self(Zeroizing::new(rand::random()))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw key, for a provider that wraps it.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    pub(super) fn cipher(&self) -> Aes256Gcm {
        super::cipher(&self.0)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// A data key encrypted by the master key `key_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    #[error("no master key is configured")]
    NoMasterKey,
    /// The named key is not loaded.
    #[error("master key `{0}` is not loaded")]
    UnknownKey(String),
    /// The key is loaded but the wrapped data key does not decrypt under it.
    #[error("the data key does not decrypt with master key `{0}`")]
    Unwrap(String),
    #[error("invalid master key: {0}")]
    Invalid(String),
    #[error("key file {path}: {message}")]
    KeyFile { path: PathBuf, message: String },
    /// A remote provider (KMS) failed.
    #[error("key provider: {0}")]
    Provider(String),
}

/// Holds the master keys and wraps / unwraps data keys with them. Implement it over a KMS to
/// keep master keys out of the process: `wrap` is the KMS' encrypt with `aad` as encryption
/// context, `unwrap` its decrypt.
#[async_trait]
pub trait KeyProvider: Send + Sync + 'static {
    /// The key new data keys are wrapped under.
    async fn current_key_id(&self) -> Result<String, KeyError>;

    /// Wraps `data_key` under the current key. `aad` must be given again to unwrap.
    async fn wrap(&self, data_key: &DataKey, aad: &[u8]) -> Result<WrappedKey, KeyError>;

    /// Unwraps with the key `wrapped.key_id`; [`KeyError::UnknownKey`] when it is not held.
    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, KeyError>;
}

/// A local 256-bit master key with its derived id. Debug shows the id only.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl MasterKey {
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"stepwise master key id\0");
        hasher.update(bytes);
        let digest = hasher.finalize();
        let id = digest[..8]
            .iter()
            .fold(String::from("local-"), |mut id, byte| {
                id.push_str(&format!("{byte:02x}"));
                id
            });
        Self {
            id,
            key: Zeroizing::new(bytes),
        }
    }

    /// Standard base64 of exactly 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            KeyError::Invalid("not base64 (expected the base64 of 32 random bytes)".into())
        })?);
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            KeyError::Invalid(format!(
                "{} bytes after base64 decoding; a master key is 32 bytes",
                decoded.len()
            ))
        })?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.key.as_slice()))
    }

    fn cipher(&self) -> Aes256Gcm {
        super::cipher(&self.key)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, ***)", self.id)
    }
}

/// Master keys, the current one first.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<MasterKey>,
}

impl KeyRing {
    /// `keys[0]` is current. Duplicates are dropped.
    pub fn new(keys: Vec<MasterKey>) -> Self {
        let mut unique: Vec<MasterKey> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.iter().any(|known| known.id == key.id) {
                unique.push(key);
            }
        }
        Self { keys: unique }
    }

    /// The comma-separated list of `STEPWISE_MASTER_KEY`.
    pub fn from_list(text: &str) -> Result<Self, KeyError> {
        Self::parse(text.split(','))
    }

    /// The lines of a key file.
    pub fn from_key_file_text(text: &str) -> Result<Self, KeyError> {
        Self::parse(
            text.lines()
                .filter(|line| !line.trim_start().starts_with('#')),
        )
    }

    fn parse<'a>(parts: impl Iterator<Item = &'a str>) -> Result<Self, KeyError> {
        let keys = parts
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .enumerate()
            .map(|(index, part)| {
                MasterKey::from_base64(part).map_err(|error| match error {
                    KeyError::Invalid(message) => {
                        KeyError::Invalid(format!("key #{}: {message}", index + 1))
                    }
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeyError::Invalid("no key given".into()));
        }
        Ok(Self::new(keys))
    }

    pub fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    pub fn keys(&self) -> &[MasterKey] {
        &self.keys
    }

    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|key| key.id == id)
    }

    /// `new` as current, the present keys kept behind it for unwrapping.
    pub fn with_current(&self, new: MasterKey) -> Self {
        Self::new(std::iter::once(new).chain(self.keys.clone()).collect())
    }

    /// Only the current key.
    pub fn current_only(&self) -> Self {
        Self::new(vec![self.current().clone()])
    }

    /// The key file text.
    pub fn to_key_file_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::from(
            "# Stepwise master keys (base64, 32 bytes). The first key is current; the others\n\
             # only decrypt until `stepwise keys rotate` has re-wrapped everything under it.\n\
             # Without these keys the secrets in the database cannot be decrypted: back it up.\n",
        ));
        for key in &self.keys {
            text.push_str(&key.to_base64());
            text.push('\n');
        }
        text
    }
}

/// Reads a key file.
pub fn read_key_file(path: &Path) -> Result<KeyRing, KeyError> {
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|error| KeyError::KeyFile {
                path: path.to_owned(),
                message: error.to_string(),
            })?,
        );
    KeyRing::from_key_file_text(&text).map_err(|error| KeyError::KeyFile {
        path: path.to_owned(),
        message: error.to_string(),
    })
}

/// Replaces the key file atomically (write a temporary file, then rename), mode 0600.
pub fn write_key_file(path: &Path, ring: &KeyRing) -> Result<(), KeyError> {
    let failed = |error: std::io::Error| KeyError::KeyFile {
        path: path.to_owned(),
        message: error.to_string(),
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    write_new_file(&temporary, &ring.to_key_file_text(), true).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)?;
    Ok(())
}

/// Writes `text` to a new file readable by the owner only; `replace` truncates an existing one.
fn write_new_file(path: &Path, text: &str, replace: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Where the embedded default keeps its key: `stepwise.key` next to a SQLite database file.
/// `None` for Postgres and in-memory SQLite.
pub fn default_key_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") || rest.contains("mode=memory") {
        return None;
    }
    let parent = Path::new(path)
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some(parent.join(KEY_FILE_NAME))
}

/// How the operator configured the master key.
#[derive(Debug, Clone, Default)]
pub struct MasterKeySettings {
    /// `STEPWISE_MASTER_KEY`: base64 keys separated by commas, the current one first.
    pub keys: Option<SecretValue>,
    /// `--master-key-file` / `STEPWISE_MASTER_KEY_FILE`.
    pub key_file: Option<PathBuf>,
}

/// The key provider the settings describe. With neither keys nor a key file: for a SQLite file
/// database, `stepwise.key` next to it (created with a new key the first time a key is needed);
/// for in-memory SQLite a throw-away key; otherwise none (sealing fails with a clear error).
pub fn key_provider(
    settings: &MasterKeySettings,
    database_url: &str,
) -> Result<Arc<dyn KeyProvider>, KeyError> {
    let provider = match (&settings.keys, &settings.key_file) {
        (Some(_), Some(_)) => {
            return Err(KeyError::Invalid(
                "both STEPWISE_MASTER_KEY and a master key file are set; use one".into(),
            ));
        }
        (Some(keys), None) => LocalKeyProvider::new(KeyRing::from_list(keys.expose())?),
        (None, Some(path)) => LocalKeyProvider::key_file(path)?,
        (None, None) => match default_key_file(database_url) {
            Some(path) => LocalKeyProvider::embedded_default(path),
            None if database_url.starts_with("sqlite:") => {
                LocalKeyProvider::new(KeyRing::new(vec![MasterKey::generate()]))
            }
            None => LocalKeyProvider::unconfigured(),
        },
    };
    Ok(Arc::new(provider))
}

enum Source {
    Fixed(Arc<KeyRing>),
    File { path: PathBuf, create: bool },
    None,
}

/// Master keys held in this process: fixed (environment, tests) or read from a key file, which
/// is re-read when it changes, so a running server picks up a rotation.
pub struct LocalKeyProvider {
    source: Source,
    /// The keys parsed from the key file, with the SHA-256 of the text they were parsed from.
    cached: RwLock<Option<([u8; 32], Arc<KeyRing>)>>,
}

impl LocalKeyProvider {
    pub fn new(ring: KeyRing) -> Self {
        Self::with_source(Source::Fixed(Arc::new(ring)))
    }

    /// Keys from an existing key file.
    pub fn key_file(path: &Path) -> Result<Self, KeyError> {
        if !path.is_file() {
            return Err(KeyError::KeyFile {
                path: path.to_owned(),
                message: "does not exist".into(),
            });
        }
        Ok(Self::with_source(Source::File {
            path: path.to_owned(),
            create: false,
        }))
    }

    /// Keys from `path`, which is created with a new key the first time one is needed.
    pub fn embedded_default(path: PathBuf) -> Self {
        Self::with_source(Source::File { path, create: true })
    }

    /// No key at all: every operation fails with [`KeyError::NoMasterKey`].
    pub fn unconfigured() -> Self {
        Self::with_source(Source::None)
    }

    fn with_source(source: Source) -> Self {
        Self {
            source,
            cached: RwLock::new(None),
        }
    }

    /// The key file, when the keys come from one.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            Source::File { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The keys now; `need_current` creates the embedded default file when it is missing.
    pub fn ring(&self, need_current: bool) -> Result<Arc<KeyRing>, KeyError> {
        let (path, create) = match &self.source {
            Source::Fixed(ring) => return Ok(ring.clone()),
            Source::None => return Err(KeyError::NoMasterKey),
            Source::File { path, create } => (path, *create),
        };
        if !path.exists() {
            if !(create && need_current) {
                return Err(KeyError::NoMasterKey);
            }
            create_default_key_file(path)?;
        }
        // The file is read on every call (it is tiny) and parsed again only when its contents
        // changed: modification times are too coarse to notice two quick rewrites.
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|error| KeyError::KeyFile {
                    path: path.clone(),
                    message: error.to_string(),
                })?,
            );
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        {
            let cached = self
                .cached
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((seen, ring)) = cached.as_ref()
                && *seen == digest
            {
                return Ok(ring.clone());
            }
        }
        let ring =
            Arc::new(
                KeyRing::from_key_file_text(&text).map_err(|error| KeyError::KeyFile {
                    path: path.clone(),
                    message: error.to_string(),
                })?,
            );
        *self
            .cached
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((digest, ring.clone()));
        Ok(ring)
    }
}

fn create_default_key_file(path: &Path) -> Result<(), KeyError> {
    let ring = KeyRing::new(vec![MasterKey::generate()]);
    match write_new_file(path, &ring.to_key_file_text(), false) {
        Ok(()) => {
            tracing::warn!(
                message = "Created a master key file for the embedded database. Back it up: \
                           without it the secrets stored in this database cannot be decrypted.",
                path = %path.display(),
                key_id = ring.current().id(),
            );
            Ok(())
        }
        // Another process created it first: use that one.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(KeyError::KeyFile {
            path: path.to_owned(),
            message: format!("cannot create: {error}"),
        }),
    }
}

/// `aad` labelled for key wrapping, so a wrapped key can never be mistaken for a value.
fn wrap_aad(aad: &[u8]) -> Vec<u8> {
    let mut out = b"stepwise-local-wrap\0".to_vec();
    out.extend_from_slice(aad);
    out
}

#[async_trait]
impl KeyProvider for LocalKeyProvider {
    async fn current_key_id(&self) -> Result<String, KeyError> {
        Ok(self.ring(true)?.current().id().to_owned())
    }

    async fn wrap(&self, data_key: &DataKey, aad: &[u8]) -> Result<WrappedKey, KeyError> {
        let ring = self.ring(true)?;
        let key = ring.current();
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = key
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: data_key.expose(),
                    aad: &wrap_aad(aad),
                },
            )
            .map_err(|_| KeyError::Provider("AES-GCM key wrapping failed".into()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(WrappedKey {
            key_id: key.id().to_owned(),
            bytes,
        })
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, KeyError> {
        let ring = match self.ring(false) {
            Ok(ring) => ring,
            Err(KeyError::NoMasterKey) => {
                return Err(KeyError::UnknownKey(wrapped.key_id.clone()));
            }
            Err(error) => return Err(error),
        };
        let key = ring
            .get(&wrapped.key_id)
            .ok_or_else(|| KeyError::UnknownKey(wrapped.key_id.clone()))?;
        if wrapped.bytes.len() <= NONCE_LEN {
            return Err(KeyError::Unwrap(wrapped.key_id.clone()));
        }
        let (nonce, sealed) = wrapped.bytes.split_at(NONCE_LEN);
        let nonce =
            super::gcm_nonce(nonce).ok_or_else(|| KeyError::Unwrap(wrapped.key_id.clone()))?;
        let plain = Zeroizing::new(
            key.cipher()
                .decrypt(
                    &nonce,
                    Payload {
                        msg: sealed,
                        aad: &wrap_aad(aad),
                    },
                )
                .map_err(|_| KeyError::Unwrap(wrapped.key_id.clone()))?,
        );
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Unwrap(wrapped.key_id.clone()))?;
        Ok(DataKey::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_stable_and_distinct() {
        let key = MasterKey::from_bytes([7; 32]);
        assert_eq!(key.id(), MasterKey::from_bytes([7; 32]).id());
        assert_ne!(key.id(), MasterKey::from_bytes([8; 32]).id());
        assert!(key.id().starts_with("local-") && key.id().len() == 22);
        let again = MasterKey::from_base64(&key.to_base64()).expect("parse");
        assert_eq!(again.id(), key.id());
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        let short = STANDARD.encode([1u8; 16]);
        let error = MasterKey::from_base64(&short).expect_err("short");
        assert!(error.to_string().contains("16 bytes"), "{error}");
        assert!(MasterKey::from_base64("not base64!").is_err());
        let error = KeyRing::from_list(&format!("{},{short}", STANDARD.encode([1u8; 32])))
            .expect_err("second is bad");
        assert!(error.to_string().contains("key #2"), "{error}");
    }

    #[test]
    fn key_file_round_trip_keeps_order_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys");
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let ring = KeyRing::new(vec![old.clone()]).with_current(new.clone());
        write_key_file(&path, &ring).expect("write");
        let read = read_key_file(&path).expect("read");
        let ids: Vec<_> = read.keys().iter().map(MasterKey::id).collect();
        assert_eq!(ids, [new.id(), old.id()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn default_key_file_sits_next_to_sqlite_only() {
        assert_eq!(
            default_key_file("sqlite:///var/lib/sw/stepwise.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/sw/stepwise.key"))
        );
        assert_eq!(
            default_key_file("sqlite://./stepwise.db?mode=rwc"),
            Some(PathBuf::from("./stepwise.key"))
        );
        assert_eq!(
            default_key_file("sqlite://stepwise.db"),
            Some(PathBuf::from("./stepwise.key"))
        );
        assert_eq!(default_key_file("sqlite::memory:"), None);
        assert_eq!(default_key_file("postgres://u@h/db"), None);
    }

    #[tokio::test]
    async fn embedded_default_creates_its_file_once_and_only_when_needed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE_NAME);
        let provider = LocalKeyProvider::embedded_default(path.clone());
        let wrapped = WrappedKey {
            key_id: "local-0000000000000000".into(),
            bytes: vec![0; 60],
        };
        assert!(matches!(
            provider.unwrap(&wrapped, b"").await,
            Err(KeyError::UnknownKey(_))
        ));
        assert!(!path.exists(), "reading must not create a key");
        let first = provider.current_key_id().await.expect("create");
        assert!(path.exists());
        let again = LocalKeyProvider::embedded_default(path.clone());
        assert_eq!(again.current_key_id().await.expect("read"), first);
    }

    #[tokio::test]
    async fn a_changed_key_file_is_picked_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys");
        let old = MasterKey::generate();
        write_key_file(&path, &KeyRing::new(vec![old.clone()])).expect("write");
        let provider = LocalKeyProvider::key_file(&path).expect("open");
        assert_eq!(provider.current_key_id().await.expect("id"), old.id());
        let new = MasterKey::generate();
        // Different length as well as time, so the change is seen even on coarse clocks.
        write_key_file(&path, &KeyRing::new(vec![old]).with_current(new.clone())).expect("write");
        assert_eq!(provider.current_key_id().await.expect("id"), new.id());
    }

    #[test]
    fn settings_choose_the_provider() {
        let both = MasterKeySettings {
            keys: Some(SecretValue::new(STANDARD.encode([1u8; 32]))),
            key_file: Some(PathBuf::from("/nope")),
        };
        assert!(key_provider(&both, "postgres://x").is_err());
        let missing = MasterKeySettings {
            keys: None,
            key_file: Some(PathBuf::from("/definitely/not/here.key")),
        };
        let error = key_provider(&missing, "postgres://x")
            .err()
            .expect("missing");
        assert!(error.to_string().contains("does not exist"), "{error}");
        assert!(key_provider(&MasterKeySettings::default(), "postgres://x").is_ok());
    }
}
