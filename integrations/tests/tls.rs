//! Outbound TLS against a local rustls server whose certificates are made at test time: the
//! platform roots plus the operator's extra CA, TLS 1.3 minimum unless an integration allows
//! 1.2, and a connection's client certificate for mutual TLS, through the integration runtime.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use reqwest::{Method, StatusCode};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use stepwise_integrations::http::{
    ClientIdentity, HttpClient, HttpConfig, TlsOptions, TlsVersion, install_crypto_provider,
};
use stepwise_integrations::providers::ConnectionValues;
use stepwise_integrations::runtime::{
    IntegrationPolicy, MetricsRegistry, RuntimeConfig, scheduler::InMemoryBuckets,
};
use stepwise_integrations::{
    ActionContext, ActionError, ActionOutcome, ActionServices, ConnectionAuth, ConnectionProvider,
    IntegrationCall, IntegrationRuntime, ResolvedConnection, SecretValue,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// A certificate issued by `ca`: (certificate PEM, key PEM, certificate DER, key DER).
struct Leaf {
    certificate_pem: String,
    key_pem: String,
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn leaf(ca: &Ca, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
    let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let certificate = params.signed_by(&key, ca).expect("sign");
    Leaf {
        certificate_pem: certificate.pem(),
        key_pem: key.serialize_pem(),
        certificate: certificate.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// A rustls HTTPS server on localhost answering every request `200 ok`; `client_ca` makes it
/// require a client certificate issued by that CA. Returns its URL.
async fn serve(
    server: &Leaf,
    versions: &[&'static SupportedProtocolVersion],
    client_ca: Option<&Ca>,
) -> String {
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der().clone()).expect("client CA");
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .expect("verifier"),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(vec![server.certificate.clone()], server.key.clone_key())
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0_u8; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://localhost:{port}/")
}

fn client(extra_ca: Option<&Ca>) -> HttpClient {
    HttpClient::new(HttpConfig {
        allow_private_networks: true,
        extra_ca_pem: extra_ca.map(|ca| ca.pem().into_bytes()),
        ..HttpConfig::default()
    })
    .expect("client")
}

async fn get(http: &HttpClient, url: &str, tls: &TlsOptions) -> Result<StatusCode, ActionError> {
    let request = http.request(Method::GET, url)?.build().expect("request");
    http.execute_with(request, tls)
        .await
        .map(|response| response.status())
        .map_err(|failure| failure.error)
}

#[tokio::test]
async fn an_unknown_ca_is_refused_and_the_extra_ca_file_trusts_it() {
    let ca = ca("Stepwise test CA");
    let server = leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let url = serve(&server, &[&rustls::version::TLS13], None).await;

    let refused = get(&client(None), &url, &TlsOptions::default()).await;
    let Err(ActionError::Permanent(message)) = &refused else {
        panic!("an unknown CA must be refused permanently: {refused:?}");
    };
    assert!(message.contains("TLS error"), "{message}");
    assert_eq!(
        get(&client(Some(&ca)), &url, &TlsOptions::default()).await,
        Ok(StatusCode::OK)
    );
    let garbage = HttpClient::new(HttpConfig {
        extra_ca_pem: Some(b"not a certificate".to_vec()),
        ..HttpConfig::default()
    });
    assert!(
        garbage.is_err(),
        "an extra CA file without certificates is an error"
    );
}

#[tokio::test]
async fn a_tls_1_2_server_is_refused_unless_the_integration_allows_1_2() {
    let ca = ca("Stepwise test CA");
    let server = leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let url = serve(&server, &[&rustls::version::TLS12], None).await;
    let http = client(Some(&ca));
    let mut config = RuntimeConfig::default();
    let mut legacy = IntegrationPolicy::builtin("legacy");
    legacy.tls_min = Some(TlsVersion::Tls12);
    config.policies = HashMap::from([("legacy".to_owned(), legacy)]);
    let runtime = IntegrationRuntime::with_config(
        http.clone(),
        config,
        Arc::new(InMemoryBuckets::new()),
        &MetricsRegistry::new(),
    )
    .expect("runtime");
    let ctx = ActionContext::new(
        support::invocation("tls", 1),
        Arc::new(ActionServices::new(runtime)),
        CancellationToken::new(),
    );
    let send = |integration: &'static str| {
        let ctx = &ctx;
        let request = ctx.http().request(Method::GET, &url).expect("request");
        async move {
            ctx.send(IntegrationCall::new(integration, "get", request))
                .await
                .map(|outcome| match outcome {
                    ActionOutcome::Done(response) => response.status,
                    _ => panic!("not done"),
                })
        }
    };
    let refused = send("http").await;
    assert!(
        matches!(&refused, Err(ActionError::Permanent(message)) if message.contains("TLS error")),
        "TLS 1.3 is the default minimum: {refused:?}"
    );
    assert_eq!(send("legacy").await, Ok(StatusCode::OK));
    // A request's own options lower the floor too (a connection's `tls_min`).
    let lowered = TlsOptions {
        min_version: Some(TlsVersion::Tls12),
        identity: None,
    };
    assert_eq!(get(&http, &url, &lowered).await, Ok(StatusCode::OK));
}

/// Connections whose TLS settings the test decides: `mtls` presents `identity`.
struct Connections {
    identity: ClientIdentity,
}

#[async_trait]
impl ConnectionProvider for Connections {
    async fn resolve(&self, _: &str, connection: &str) -> Result<ResolvedConnection, ActionError> {
        Ok(ResolvedConnection {
            auth: ConnectionAuth::Bearer(SecretValue::new("token")),
            tls: TlsOptions {
                min_version: None,
                identity: (connection == "mtls").then(|| self.identity.clone()),
            },
            base_url: None,
            values: ConnectionValues::default(),
        })
    }

    async fn refresh_rejected(
        &self,
        _: &str,
        _: &str,
        _: &ConnectionAuth,
    ) -> Result<ConnectionAuth, ActionError> {
        Err(ActionError::Permanent("refused".into()))
    }
}

#[tokio::test]
async fn mutual_tls_presents_the_connections_certificate() {
    let ca = ca("Stepwise test CA");
    let clients = self::ca("Stepwise client CA");
    let server = leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let url = serve(&server, &[&rustls::version::TLS13], Some(&clients)).await;
    let client_leaf = leaf(&clients, "acme", ExtendedKeyUsagePurpose::ClientAuth);
    let key = SecretValue::new(&client_leaf.key_pem);
    let identity =
        ClientIdentity::new("connection-1", &client_leaf.certificate_pem, &key).expect("identity");
    assert!(!format!("{identity:?}").contains("PRIVATE KEY"));

    let http = client(Some(&ca));
    let runtime = IntegrationRuntime::new(http, &MetricsRegistry::new()).expect("runtime");
    let services =
        ActionServices::new(runtime).with_connections(Arc::new(Connections { identity }));
    let ctx = ActionContext::new(
        support::invocation("mtls", 1),
        Arc::new(services),
        CancellationToken::new(),
    );
    let send = |connection: &'static str| {
        let ctx = &ctx;
        let request = ctx.http().request(Method::GET, &url).expect("request");
        async move {
            ctx.send(
                IntegrationCall::new("http", "get", request).connection(Some(connection.into())),
            )
            .await
            .map(|outcome| match outcome {
                ActionOutcome::Done(response) => response.status,
                _ => panic!("not done"),
            })
        }
    };
    let refused = send("plain").await;
    assert!(
        refused.is_err(),
        "the server requires a client certificate: {refused:?}"
    );
    assert_eq!(send("mtls").await, Ok(StatusCode::OK));

    for (certificate, key, why) in [
        ("not pem", client_leaf.key_pem.as_str(), "no certificate"),
        (client_leaf.certificate_pem.as_str(), "not a key", "no key"),
        (
            client_leaf.certificate_pem.as_str(),
            server.key_pem.as_str(),
            "a key of another certificate",
        ),
    ] {
        let error = ClientIdentity::validate(certificate, &SecretValue::new(key)).expect_err(why);
        assert!(!error.contains("PRIVATE KEY"), "{error}");
    }
}
