//! Docker objects of a test server: raw `docker` calls, the containers and
//! volumes of an isolation prefix, and cleanup by prefix.

use std::process::{Command, Stdio};

use std::time::Duration;

use super::http::{get, post, Reply};
use super::{build_image, eventually, TestServer};

/// Runs `docker ARGS` and returns trimmed stdout; panics on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether `docker ARGS` succeeds.
pub fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Names of containers carrying this prefix's marker label.
pub fn containers_with_prefix(prefix: &str) -> Vec<String> {
    let filter = format!("label={prefix}.shed=true");
    lines(&docker(&[
        "ps",
        "-a",
        "--filter",
        &filter,
        "--format",
        "{{.Names}}",
    ]))
}

/// Names of volumes carrying this prefix's marker label.
pub fn volumes_with_prefix(prefix: &str) -> Vec<String> {
    let filter = format!("label={prefix}.shed=true");
    lines(&docker(&["volume", "ls", "-q", "--filter", &filter]))
}

fn lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// Removes every container and volume of a prefix, by label and by name.
pub fn cleanup_prefix(prefix: &str) {
    let by_name = format!("name=^{prefix}\\.shed-");
    let mut containers = containers_with_prefix(prefix);
    containers.extend(lines(&docker(&[
        "ps",
        "-a",
        "--filter",
        &by_name,
        "--format",
        "{{.Names}}",
    ])));
    for c in containers {
        let _ = Command::new("docker").args(["rm", "-f", "-v", &c]).output();
    }
    let mut volumes = volumes_with_prefix(prefix);
    volumes.extend(lines(&docker(&[
        "volume", "ls", "-q", "--filter", &by_name,
    ])));
    for v in volumes {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &v])
            .output();
    }
}

/// Creates shed `name` on `server` through the API, and checks it was made.
pub async fn make_shed(server: &TestServer, name: &str) {
    let r = post(
        &server.url("/api/sheds"),
        &format!(r#"{{"name":"{name}"}}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
}

/// Builds the test image without tmux, creates shed `name` from it on
/// `server` and checks it was made; the create's answer.
pub async fn make_shed_without_tmux(server: &TestServer, name: &str) -> Reply {
    const IMAGE: &str = "shed-test-notmux:latest";
    build_image(&["--no-tmux"], IMAGE);
    let r = post(
        &server.url("/api/sheds"),
        &format!(r#"{{"name":"{name}","image":"{IMAGE}"}}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    r
}

/// Polls the last 20 lines of session `session` of shed `shed` until they
/// contain `want`, for 10 s at most; whether they did, and the last read.
pub async fn output_containing(
    server: &TestServer,
    shed: &str,
    session: &str,
    want: &str,
) -> (bool, String) {
    let output = server.url(&format!(
        "/api/sheds/{shed}/sessions/{session}/output?lines=20"
    ));
    eventually(Duration::from_secs(10), || async {
        let text = get(&output).await.json["output"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (text.contains(want), text)
    })
    .await
}

/// Whether `container` is running, as Docker reports it.
pub fn is_running(container: &str) -> bool {
    docker(&["inspect", "-f", "{{.State.Running}}", container]) == "true"
}
