//! The real `stepwise` binary, for tests that spawn it (crash, shutdown).

use std::net::TcpListener;
use std::process::Command;

/// A port free on loopback at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// The binary with quiet logs and no failpoints. Every process of a test shares one master
/// key, as processes sharing a database must.
pub fn stepwise() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise"));
    command
        .env_remove("FAILPOINTS")
        .env("STEPWISE_LOG", "warn")
        .env(
            "STEPWISE_MASTER_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        );
    command
}

/// Creates the tenant `name` with `stepwise tenants create` and returns its API key.
pub fn create_tenant(database_url: &str, name: &str) -> String {
    let output = stepwise()
        .args(["tenants", "create", name, "--database-url", database_url])
        .output()
        .expect("run tenants create");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "tenants create failed: {stdout}");
    stdout
        .split("API key (shown once): ")
        .nth(1)
        .expect("key in output")
        .trim()
        .to_owned()
}
