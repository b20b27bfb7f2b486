//! Inbound TLS against the real binary: `serve --tls-cert --tls-key` with certificates made
//! here (rcgen) negotiates TLS 1.3, still accepts 1.2, serves a renewed certificate after
//! SIGHUP (and keeps the current one when the new files are broken), and refuses to start
//! with a key that does not fit its certificate.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// Writes a `localhost` certificate issued by `ca` and its key to `dir`.
fn write_leaf(ca: &Ca, dir: &Path) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().expect("key");
    let certificate = params.signed_by(&key, ca).expect("sign");
    std::fs::write(dir.join("cert.pem"), certificate.pem()).expect("write certificate");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key");
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name}");
    }
}

fn serve(dir: &Path, port: u16, key: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise"));
    command
        .env("STEPWISE_LOG", "warn")
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}?mode=rwc",
            dir.join("stepwise.db").display()
        ))
        .arg("--tls-cert")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(key);
    command
}

/// A TLS handshake with `localhost` on `port`, trusting only `ca` and offering `versions`,
/// then `GET /healthz`: the negotiated version once the server answered 200.
async fn healthz(
    port: u16,
    ca: &Ca,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<ProtocolVersion, String> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).expect("root");
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|error| error.to_string())?;
    let server_name = ServerName::try_from("localhost").expect("name");
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|error| error.to_string())?;
    let version = tls.get_ref().1.protocol_version().expect("negotiated");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|error| error.to_string())?;
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    if answer.starts_with("HTTP/1.1 200") {
        Ok(version)
    } else {
        Err(format!("answered {answer}"))
    }
}

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Retries [`healthz`] for up to 30 s.
async fn eventually_healthz(port: u16, ca: &Ca) -> ProtocolVersion {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match healthz(port, ca, BOTH).await {
            Ok(version) => return version,
            Err(error) => {
                assert!(Instant::now() < deadline, "no TLS answer: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_and_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, renewed) = (ca("first CA"), ca("renewed CA"));
    write_leaf(&first, dir.path());
    let port = free_port();
    let server = Server(
        serve(dir.path(), port, &dir.path().join("key.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    assert_eq!(
        eventually_healthz(port, &first).await,
        ProtocolVersion::TLSv1_3
    );
    assert_eq!(
        healthz(port, &first, &[&rustls::version::TLS12]).await,
        Ok(ProtocolVersion::TLSv1_2),
        "TLS 1.2 is accepted"
    );

    write_leaf(&renewed, dir.path());
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while healthz(port, &renewed, BOTH).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        healthz(port, &first, BOTH).await.is_err(),
        "the first certificate is no longer served"
    );

    // A broken renewal keeps the certificate being served, and the process.
    std::fs::write(dir.path().join("key.pem"), "not a key").expect("write");
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        healthz(port, &renewed, BOTH).await,
        Ok(ProtocolVersion::TLSv1_3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_start_with_a_key_that_does_not_fit_the_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    write_leaf(&ca("CA"), dir.path());
    write_leaf(&ca("other CA"), other.path());
    let output = serve(dir.path(), free_port(), &other.path().join("key.pem"))
        .output()
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("does not fit the certificate"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "no key material: {stderr}");
}
