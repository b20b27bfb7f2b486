//! Inbound TLS for `serve --tls-cert --tls-key`: rustls, TLS 1.3 preferred and 1.2 accepted,
//! the certificate and key re-read on SIGHUP, so a renewed certificate is served without a
//! restart (connections already open keep theirs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Where the PEM certificate chain (leaf first) and its private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// A certificate or key that cannot be served. Messages name the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {message}")]
    Certificate { path: String, message: String },
    #[error("cannot read the TLS private key {path}: {message}")]
    Key { path: String, message: String },
    #[error("the TLS private key {key} does not fit the certificate {certificate}: {message}")]
    Mismatch {
        certificate: String,
        key: String,
        message: String,
    },
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// The certificate being served, replaced whole by [`ReloadableCertificate::reload`].
#[derive(Debug)]
pub struct ReloadableCertificate {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCertificate {
    pub fn load(files: TlsFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let current = RwLock::new(Arc::new(read(&files, &provider)?));
        Ok(Self {
            files,
            provider,
            current,
        })
    }

    /// Reads the files again; on error the certificate being served stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(read(&self.files, &self.provider)?);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        )
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn read(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let certificate_error = |message: String| TlsError::Certificate {
        path: display(&files.certificate),
        message,
    };
    let chain = CertificateDer::pem_file_iter(&files.certificate)
        .map_err(|error| certificate_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| certificate_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(certificate_error("no PEM certificate in it".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| TlsError::Key {
        path: display(&files.key),
        message: error.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| TlsError::Mismatch {
        certificate: display(&files.certificate),
        key: display(&files.key),
        message: error.to_string(),
    })
}

/// The server configuration: TLS 1.3 and 1.2 (rustls picks 1.3 when the client offers it),
/// no client certificates, the certificate from `certificate` at each handshake.
pub fn server_config(certificate: Arc<ReloadableCertificate>) -> Result<ServerConfig, TlsError> {
    Ok(
        ServerConfig::builder_with_provider(certificate.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(certificate),
    )
}

/// Re-reads the certificate at every SIGHUP for as long as the process runs; a file that
/// cannot be served is logged and the previous certificate kept.
#[cfg(unix)]
pub async fn reload_on_sighup(certificate: Arc<ReloadableCertificate>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(message = "Cannot listen for SIGHUP; the TLS certificate will not be reloaded.", %error);
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match certificate.reload() {
            Ok(()) => tracing::info!(
                message = "Reloaded the TLS certificate.",
                path = %certificate.files.certificate.display()
            ),
            Err(error) => {
                tracing::error!(message = "Keeping the TLS certificate being served.", %error)
            }
        }
    }
}
