//! shed-server start-up: config discovery, config errors, and the bind guard.

mod common;

use common::*;
use std::process::Command;

fn server_cmd(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shed-server"));
    cmd.current_dir(dir)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env_remove("SHED_SERVER_CONFIG");
    cmd
}

/// Writes `config` to `path`, runs the server on it, expects it to refuse
/// to start, and returns what it printed on stderr.
fn start_fails(dir: &std::path::Path, path: &std::path::Path, config: &str) -> String {
    std::fs::write(path, config).unwrap();
    let out = server_cmd(dir)
        .args(["serve", "--config"])
        .arg(path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with {config:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_key_fails_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    let err = start_fails(dir.path(), &path, "http_port = 0\ndefualt_image = \"x\"\n");
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("defualt_image"),
        "{err}"
    );

    let err = start_fails(dir.path(), &path, "http_port = 99999\n");
    assert!(err.contains("http_port"), "{err}");
}

#[test]
fn env_var_and_cwd_config_are_found() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    // ./server.toml is picked up from the working directory.
    std::fs::write(
        dir.path().join("server.toml"),
        "name = \"from-cwd\"\nhttp_port = 0\nssh_port = 0\n",
    )
    .unwrap();
    let (child, port) = spawn_from(server_cmd(dir.path()).arg("serve"), dir.path());
    let info = fetch_info(port);
    drop(child);
    assert_eq!(info["name"], "from-cwd");

    // $SHED_SERVER_CONFIG beats ./server.toml.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "name = \"from-env\"\nhttp_port = 0\nssh_port = 0\n").unwrap();
    let mut cmd = server_cmd(dir.path());
    cmd.arg("serve").env("SHED_SERVER_CONFIG", &other);
    let (child, port) = spawn_from(&mut cmd, dir.path());
    let info = fetch_info(port);
    drop(child);
    assert_eq!(info["name"], "from-env");
}

#[test]
fn runs_with_no_config_file_at_all() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let child = ChildGuard(
        server_cmd(dir.path())
            .arg("serve")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // Defaults bind 127.0.0.1:8080 and :2222. If another program holds one the
    // server still got past config loading, which is what is under test.
    let ok = wait_until(std::time::Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("shed-server listening")
            || text.contains("binding the HTTP API to 127.0.0.1:8080")
            || text.contains("binding the SSH gateway to 127.0.0.1:2222")
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    drop(child);
    assert!(ok, "{text}");
    assert!(text.contains("built-in defaults"), "{text}");
}

#[test]
fn public_bind_needs_a_token_or_an_explicit_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    let err = start_fails(dir.path(), &path, "bind = \"0.0.0.0\"\nhttp_port = 0\n");
    assert!(
        err.contains("api_token") && err.contains("insecure_no_auth"),
        "{err}"
    );

    require_docker();
    std::fs::write(
        &path,
        "bind = \"0.0.0.0\"\nhttp_port = 0\nssh_port = 0\ninsecure_no_auth = true\n",
    )
    .unwrap();
    let mut cmd = server_cmd(dir.path());
    cmd.args(["serve", "--config"]).arg(&path);
    let (child, _port) = spawn_from(&mut cmd, dir.path());
    drop(child);
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(
        log.contains("WARN") && log.contains("without authentication"),
        "{log}"
    );
}

#[test]
fn default_config_prints_a_valid_example() {
    let dir = tempfile::tempdir().unwrap();
    let out = server_cmd(dir.path())
        .arg("default-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("isolation_prefix") && text.contains("api_token"));
    let path = dir.path().join("example.toml");
    std::fs::write(&path, &text).unwrap();
    shed::server::config::ServerConfig::from_file(&path).unwrap();
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = TestServer::start();
    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert!(server.log().contains("shed-server stopped"));
}

fn spawn_from(cmd: &mut Command, dir: &std::path::Path) -> (ChildGuard, u16) {
    let log = dir.join("server.log");
    let mut child = ChildGuard(
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let ports = parse_listening(&line).unwrap_or_else(|| {
        panic!(
            "no ports in {line:?}: {}",
            std::fs::read_to_string(&log).unwrap()
        )
    });
    (child, ports.http)
}

fn fetch_info(port: u16) -> serde_json::Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        common::http::get(&format!("http://127.0.0.1:{port}/api/info"))
            .await
            .json
    })
}
