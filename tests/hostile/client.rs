//! Hostile-input tests: a malicious API server against the CLI.
//!
//! [`FakeApi`] (in `tests/common/fake_api.rs`) is a tiny HTTP/1.1 server
//! (optionally behind TLS) that answers whatever a test tells it to, and
//! records every request that reached it.
//! The CLI runs as a real process against it; the assertions are on the files
//! the CLI writes and on what it prints.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::common::fake_api::FakeApi;
use crate::common::{texts, Cli};

/// The gateway key the fake server usually reports.
const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHGnER1S4HN16Tnx7DGsFnq+EObcznxvGJyO+DBbbVJ";
/// Another key, for "the key changed" and for an attacker's key.
const KEY_B: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIWWTdiZSKd9Jz9QiF2U6cB9tSejJpoEtJyoqjnFpFBX";
/// The SSH port the fake server announces.
const SSH_PORT: u16 = 2299;

/// `ssh-keygen -lf` form of a public key's fingerprint.
fn ssh_fingerprint(key: &str) -> String {
    russh::keys::ssh_key::PublicKey::from_openssh(key)
        .unwrap()
        .fingerprint(russh::keys::ssh_key::HashAlg::Sha256)
        .to_string()
}

/// A lying shed-server on 127.0.0.1, answering `/api/info` and
/// `/api/ssh-host-key` as a shed-server would until a test says otherwise.
impl FakeApi {
    /// Plain HTTP.
    fn plain() -> FakeApi {
        FakeApi::start(None)
    }

    /// HTTPS with `tls`.
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> FakeApi {
        let fake = FakeApi::bare(tls);
        fake.route("GET /api/info", 200, info("evil"));
        fake.route("GET /api/ssh-host-key", 200, host_key(KEY_A));
        fake
    }
}

fn info(name: &str) -> Value {
    json!({"name": name, "version": "9.9.9", "http_port": 8080, "ssh_port": SSH_PORT})
}

fn host_key(public_key: &str) -> Value {
    json!({
        "public_key": public_key,
        "ssh_port": SSH_PORT,
        "known_hosts": format!("[127.0.0.1]:{SSH_PORT} {public_key}"),
    })
}

fn shed(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "status": "running",
        "created_at": "2026-01-01T00:00:00Z",
        "image": image,
        "repo": null,
        "container_id": "c0ffee",
        "server": "evil",
    })
}

fn session(shed: &str, name: &str, command: &str) -> Value {
    json!({
        "name": name,
        "shed": shed,
        "server": "evil",
        "created_at": "2026-01-01T00:00:00Z",
        "last_activity": "2026-01-01T00:00:00Z",
        "idle_seconds": 5,
        "attached": 0,
        "windows": 1,
        "current_command": command,
        "cwd": "/workspace",
        "status": "idle",
    })
}

/// A CLI whose config already points at `fake` (no `server add`), with `extra` TOML lines.
fn cli_for(fake: &FakeApi, extra: &str) -> Cli {
    let cli = Cli::new();
    std::fs::write(
        cli.config_path(),
        format!(
            "default_server = \"evil\"\n[servers.evil]\nhost = \"127.0.0.1\"\nhttp_port = {}\nssh_port = {SSH_PORT}\n{extra}",
            fake.port
        ),
    )
    .unwrap();
    cli
}

fn known_hosts(cli: &Cli) -> PathBuf {
    cli.dir.path().join("known_hosts")
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// No terminal control character at all: ESC, other C0 (but newline), DEL, C1.
fn assert_no_controls(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(
        bad.is_empty(),
        "{what} has control characters {bad:?}:\n{text}"
    );
}

#[test]
fn ssh_config_never_writes_a_shed_name_with_a_newline() {
    let fake = FakeApi::plain();
    fake.route(
        "GET /api/sheds",
        200,
        json!({"sheds": [
            shed("good", "img"),
            shed("x\nMatch exec \"touch /tmp/shed-pwned\"", "img"),
            shed("Host *\n    ProxyCommand sh -c id", "img"),
        ]}),
    );
    let cli = cli_for(&fake, "");
    let out = cli.run(&["ssh-config", "--install"]);
    let (stdout, stderr) = texts(&out);
    let written = read(&cli.dir.path().join(".ssh").join("config"));
    assert!(!written.contains("Match"), "{written}");
    assert!(!written.contains("ProxyCommand"), "{written}");
    assert!(written.contains("Host shed-good\n"), "{written}\n{stderr}");
    assert!(stderr.contains("invalid shed name"), "{stderr}");
    assert_no_controls("stdout", &stdout);
    assert_no_controls("stderr", &stderr);
}

#[test]
fn host_key_with_an_extra_known_hosts_line_is_refused() {
    let fake = FakeApi::plain();
    let evil = format!("{KEY_A}\n@cert-authority * {KEY_B}");
    fake.route("GET /api/ssh-host-key", 200, host_key(&evil));
    let cli = Cli::new();
    let fp = ssh_fingerprint(KEY_A);
    let out = cli.add_local(fake.port, &fp, &[]);
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        !read(&known_hosts(&cli)).contains("cert-authority"),
        "{}",
        read(&known_hosts(&cli))
    );
    assert!(stderr.contains("host key"), "{stderr}");
    assert!(
        !cli.config_path().exists(),
        "config written after a bad key"
    );
}

#[test]
fn host_key_is_written_re_encoded_without_the_servers_comment() {
    let fake = FakeApi::plain();
    fake.route(
        "GET /api/ssh-host-key",
        200,
        host_key(&format!("{KEY_A} [127.0.0.1]:22 ssh-rsa AAAA")),
    );
    let cli = Cli::new();
    let fp = ssh_fingerprint(KEY_A);
    let out = cli.add_local(fake.port, &fp, &[]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        read(&known_hosts(&cli)),
        format!("[127.0.0.1]:{SSH_PORT} {KEY_A}\n")
    );
    assert_no_controls("stdout", &stdout);
}

#[test]
fn escapes_from_the_server_are_never_printed() {
    let fake = FakeApi::plain();
    fake.route(
        "GET /api/sheds",
        200,
        json!({"sheds": [shed("good", "img\u{1b}]0;owned\u{7}\u{1b}[31mred\u{9b}2J\u{202e}")]}),
    );
    fake.route("GET /api/sheds/good", 200, shed("good", "img"));
    fake.route(
        "POST /api/sheds/good/start",
        409,
        json!({"error": {"code": "conflict", "message": "no\u{1b}[2J\u{1b}]52;c;cHduZWQ=\u{7} way\u{85}"}}),
    );
    fake.route(
        "GET /api/sessions",
        200,
        json!({
            "sessions": [
                session("good", "fine", "vim\u{1b}]0;owned\u{7}"),
                session("good", "x\u{1b}[2J", "sh"),
                session("bad\nMatch all", "y", "sh"),
            ],
            "warnings": [{"shed": "good", "message": "bad\u{1b}[1;1H\u{1b}[2Jthing"}]
        }),
    );
    let cli = cli_for(&fake, "");
    for args in [
        &["list"][..],
        &["start", "good"],
        &["sessions"],
        &["server", "list"],
    ] {
        let out = cli.run(args);
        let (stdout, stderr) = texts(&out);
        assert_no_controls(&format!("stdout of {args:?}"), &stdout);
        assert_no_controls(&format!("stderr of {args:?}"), &stderr);
    }
    let (stdout, _) = texts(&cli.run(&["list"]));
    assert!(
        stdout.contains("good") && stdout.contains("red"),
        "{stdout}"
    );
    let (stdout, stderr) = texts(&cli.run(&["sessions"]));
    assert!(
        stdout.contains("fine") && stdout.contains("vim"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().count(),
        2,
        "invalid sessions listed: {stdout}"
    );
    assert!(stderr.contains("invalid shed or session name"), "{stderr}");
}

#[test]
fn a_server_name_with_escapes_is_refused() {
    let fake = FakeApi::plain();
    fake.route("GET /api/info", 200, info("evil\u{1b}[2J\nx"));
    let cli = Cli::new();
    let fp = ssh_fingerprint(KEY_A);
    let out = cli.add_local(fake.port, &fp, &[]);
    let (stdout, stderr) = texts(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("invalid server name"), "{stderr}");
    assert_no_controls("stderr", &stderr);
    assert!(!cli.config_path().exists());
}

#[test]
fn first_use_without_a_terminal_is_refused_with_the_fingerprint() {
    let fake = FakeApi::plain();
    let cli = Cli::new();
    let port = fake.port.to_string();
    let out = cli.run(&["server", "add", "127.0.0.1", "--port", &port]);
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "pinned without asking: {stderr}");
    let fp = ssh_fingerprint(KEY_A);
    assert!(stderr.contains(&format!("--fingerprint {fp}")), "{stderr}");
    assert!(!known_hosts(&cli).exists());
    assert!(!cli.config_path().exists());
}

#[test]
fn a_wrong_fingerprint_is_refused() {
    let fake = FakeApi::plain();
    let cli = Cli::new();
    let other = ssh_fingerprint(KEY_B);
    let out = cli.add_local(fake.port, &other, &[]);
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&ssh_fingerprint(KEY_A)), "{stderr}");
    assert!(!known_hosts(&cli).exists());
    assert!(!cli.config_path().exists());
}

#[test]
fn a_changed_host_key_is_refused_until_replaced() {
    let fake = FakeApi::plain();
    fake.route("GET /api/ssh-host-key", 200, host_key(KEY_B));
    let cli = Cli::new();
    let old = format!("[127.0.0.1]:{SSH_PORT} {KEY_A}\n");
    std::fs::write(known_hosts(&cli), &old).unwrap();
    let fp = ssh_fingerprint(KEY_B);
    let add = |extra: &[&str]| cli.add_local(fake.port, &fp, extra);
    let out = add(&[]);
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "re-pinned silently: {stderr}");
    assert!(stderr.contains("--replace-host-key"), "{stderr}");
    assert_eq!(read(&known_hosts(&cli)), old);
    assert!(!cli.config_path().exists());
    let out = add(&["--replace-host-key"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_eq!(
        read(&known_hosts(&cli)),
        format!("[127.0.0.1]:{SSH_PORT} {KEY_B}\n")
    );
}

/// A self-signed certificate for 127.0.0.1, its rustls server config and fingerprint.
fn tls_server() -> (Arc<rustls::ServerConfig>, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let der = certified.cert.der().clone();
    let fingerprint = shed::api::fingerprint::sha256_fingerprint(der.as_ref());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    (Arc::new(config), fingerprint)
}

#[test]
fn tls_pinned_certificate_works_and_carries_the_token() {
    let (tls, cert_fp) = tls_server();
    let fake = FakeApi::start(Some(tls));
    fake.route(
        "GET /api/sheds",
        200,
        json!({"sheds": [shed("good", "img")]}),
    );
    let cli = Cli::new();
    let url = format!("https://127.0.0.1:{}", fake.port);
    let fp = ssh_fingerprint(KEY_A);
    cli.ok(&[
        "server",
        "add",
        &url,
        "--tls-fingerprint",
        &cert_fp,
        "--fingerprint",
        &fp,
        "--token",
        "t0ken",
    ]);
    let config = read(&cli.config_path());
    assert!(config.contains(&cert_fp), "{config}");
    let out = cli.ok(&["list"]);
    assert!(out.contains("good"), "{out}");
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.starts_with("GET /api/sheds") && r.contains("Bearer t0ken")),
        "{:?}",
        fake.requests()
    );
}

#[test]
fn tls_certificate_mismatch_is_refused_before_any_request() {
    let (tls, _) = tls_server();
    let (_, other_fp) = tls_server();
    let fake = FakeApi::start(Some(tls));
    fake.route(
        "GET /api/sheds",
        200,
        json!({"sheds": [shed("good", "img")]}),
    );
    let cli = cli_for(
        &fake,
        &format!("token = \"t0ken\"\nscheme = \"https\"\ntls_fingerprint = \"{other_fp}\"\n"),
    );
    let out = cli.run(&["list"]);
    let (stdout, stderr) = texts(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains(&other_fp), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

#[test]
fn tls_first_use_without_a_terminal_is_refused_with_the_fingerprint() {
    let (tls, cert_fp) = tls_server();
    let fake = FakeApi::start(Some(tls));
    let cli = Cli::new();
    let url = format!("https://127.0.0.1:{}", fake.port);
    let out = cli.run(&["server", "add", &url, "--token", "t0ken"]);
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("--tls-fingerprint {cert_fp}")),
        "{stderr}"
    );
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    assert!(!cli.config_path().exists());
}

#[test]
fn a_token_is_never_sent_in_clear_text_to_a_remote_host() {
    // 192.0.2.1 (TEST-NET-1) is not loopback; both refusals happen before
    // any connection is attempted.
    let cli = Cli::new();
    let out = cli.run(&["server", "add", "http://192.0.2.1", "--token", "t0ken"]);
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("clear text"), "{stderr}");
    assert!(stderr.contains("--allow-plain-http"), "{stderr}");
    assert!(!cli.config_path().exists());

    std::fs::write(
        cli.config_path(),
        "[servers.far]\nhost = \"192.0.2.1\"\ntoken = \"t0ken\"\n",
    )
    .unwrap();
    let out = cli.run(&["list"]);
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("clear text"), "{stderr}");
}

#[test]
fn on_a_terminal_the_fingerprint_is_shown_and_asked_for() {
    let fake = FakeApi::plain();
    let cli = Cli::new();
    let host = crate::common::HostTmux::new();
    let env = cli.env();
    let add = format!(
        "{} server add 127.0.0.1 --port {}",
        env!("CARGO_BIN_EXE_shed"),
        fake.port
    );
    let fp = ssh_fingerprint(KEY_A);

    host.start("no", 200, 20, &env, &add);
    host.wait_for("no", "the prompt", |s| s.contains("Trust it? [y/N]"));
    assert!(host.screen("no").contains(&fp), "{}", host.screen("no"));
    host.keys("no", &["n", "Enter"]);
    host.wait_for("no", "the refusal", |s| s.contains("error: not added"));
    assert!(!known_hosts(&cli).exists());
    assert!(!cli.config_path().exists());

    host.start("yes", 200, 20, &env, &add);
    host.wait_for("yes", "the prompt", |s| s.contains("Trust it? [y/N]"));
    host.keys("yes", &["y", "Enter"]);
    host.wait_for("yes", "the result", |s| s.contains("Added server evil"));
    assert_eq!(
        read(&known_hosts(&cli)),
        format!("[127.0.0.1]:{SSH_PORT} {KEY_A}\n")
    );
}

#[test]
fn kept_volumes_from_a_lying_server_are_validated_and_escaped() {
    let fake = FakeApi::plain();
    fake.route(
        "GET /api/sheds",
        200,
        json!({
            "sheds": [],
            "kept_volumes": [
                {"name": "good", "volume": "vol\u{1b}]0;owned\u{7}\u{1b}[2Jume"},
                {"name": "bad\u{1b}[2J`rm -rf ~`", "volume": "v"},
            ]
        }),
    );
    let cli = cli_for(&fake, "");
    let out = cli.run(&["list"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_no_controls("stdout of list", &stdout);
    assert_no_controls("stderr of list", &stderr);
    assert!(
        stdout.contains("Kept volume for good") && stdout.contains("`shed create good`"),
        "{stdout}"
    );
    assert!(!stdout.contains("rm -rf"), "{stdout}");
    assert!(stderr.contains("invalid shed name"), "{stderr}");
    // An older server's answer, without the field, still parses.
    fake.route(
        "GET /api/sheds",
        200,
        json!({"sheds": [shed("old", "img")]}),
    );
    let out = cli.run(&["list", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["kept_volumes"], json!([]), "{json}");
    assert_eq!(json["sheds"][0]["name"], "old", "{json}");
}
