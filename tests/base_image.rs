//! The production image (docker/Dockerfile, built by
//! docker/build-base-image.sh without any registry): a shed made from it
//! runs as its normal user, with sudo, the everyday tools and a UTF-8
//! locale, through the API, tmux and the SSH gateway.

mod common;

use common::http::post;
use common::*;
use std::process::Command;
use std::time::Instant;

const BASE_IMAGE: &str = "shed-base:latest";

/// Builds (or, with the cache, re-checks in a second) the base image from
/// the current Dockerfile, under a lock so parallel test binaries wait for
/// one build.
fn base_image() -> &'static str {
    require_docker();
    let started = Instant::now();
    let out = Command::new("flock")
        .arg("/tmp/shed-base-image.lock")
        .arg("bash")
        .arg(repo_root().join("docker/build-base-image.sh"))
        .arg(BASE_IMAGE)
        .output()
        .expect("running flock/bash");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "building {BASE_IMAGE} failed:\n{log}");
    // The step timings, for the CI log (shown with --nocapture or on failure).
    for line in log.lines().filter(|l| l.starts_with("build-base-image:")) {
        println!("{line}");
    }
    println!("base image ready in {:?}", started.elapsed());
    BASE_IMAGE
}

/// Runs `script` through the gateway and returns (stdout, stderr, status).
fn ssh_sh(server: &TestServer, key: &SshKey, shed: &str, script: &str) -> (String, String, i32) {
    let out = server.ssh(key, shed, &[]).arg(script).output().unwrap();
    let (stdout, stderr) = texts(&out);
    (stdout, stderr, out.status.code().unwrap_or(-1))
}

#[tokio::test]
async fn a_shed_from_the_base_image_runs_as_its_user_with_the_everyday_tools() {
    let image = base_image();
    let server = TestServer::start();
    let key = SshKey::generate();
    server.authorize(&key);
    let r = post(
        &server.url("/api/sheds"),
        &format!(r#"{{"name":"base","image":"{image}"}}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let container = server.container("base");

    // Execs (gateway and docker exec alike) run as the image's user, uid 1000,
    // since no container_user is configured.
    let (out, err, code) = ssh_sh(&server, &key, "base", "id -u; id -un; echo $HOME; pwd");
    assert_eq!(
        (out.as_str(), code),
        ("1000\nshed\n/home/shed\n/workspace\n", 0),
        "{err}"
    );
    assert_eq!(docker(&["exec", &container, "id", "-u"]).trim(), "1000");

    // Passwordless sudo, and the sudoers file is one sudo accepts.
    let (out, err, code) = ssh_sh(
        &server,
        &key,
        "base",
        "sudo -n true && sudo -n id -u && stat -c %a /etc/sudoers.d/shed",
    );
    assert_eq!((out.as_str(), code), ("0\n440\n", 0), "{err}");

    // The tools the README promises, and the contract's own needs.
    let tools = "git curl make python3 vim less tmux bash ssh ps sudo sleep tail mktemp tee";
    let (out, err, code) = ssh_sh(
        &server,
        &key,
        "base",
        &format!("for t in {tools}; do command -v $t >/dev/null || echo missing $t; done"),
    );
    assert_eq!((out.as_str(), code), ("", 0), "{err}");

    // A UTF-8 locale that exists, so tmux and Python agree on it.
    let (out, err, code) = ssh_sh(
        &server,
        &key,
        "base",
        "echo $LANG; locale 2>&1 >/dev/null; locale -a | grep -ix -e c.utf8 -e en_us.utf8; \
         python3 -c 'import sys; print(sys.stdout.encoding)'",
    );
    assert_eq!(
        (out.as_str(), code),
        ("C.UTF-8\nC.utf8\nen_US.utf8\nutf-8\n", 0),
        "{err}"
    );

    // The new workspace volume took its ownership from the image's
    // /workspace, so the user can write there.
    let (out, err, code) = ssh_sh(
        &server,
        &key,
        "base",
        "stat -c %U /workspace && touch /workspace/probe && stat -c %u /workspace/probe",
    );
    assert_eq!((out.as_str(), code), ("shed\n1000\n", 0), "{err}");
    let volume = docker(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Name}}{{end}}",
        &container,
    ]);
    assert_eq!(volume.trim(), server.volume("base"));

    // The README's `shed exec demo -- make ...`, through the CLI and the gateway.
    let cli = Cli::new();
    cli.add_server_with_key(&server, "local", &key);
    let out = cli.ok(&["exec", "base", "--", "make", "--version"]);
    assert!(out.starts_with("GNU Make"), "{out}");
    let out = cli.ok(&[
        "exec",
        "base",
        "--",
        "sh",
        "-c",
        "printf 'test:\\n\\t@echo made by $$(id -un)\\n' > Makefile && make test",
    ]);
    assert_eq!(out, "made by shed\n");

    // A tmux session's pane runs as the same user.
    let r = post(
        &server.url("/api/sheds/base/sessions"),
        r#"{"name":"agent","command":"echo pane-uid=$(id -u); exec sleep 300"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let (seen, text) = output_containing(&server, "base", "agent", "pane-uid=").await;
    assert!(seen && text.contains("pane-uid=1000"), "{text}");
    let processes = docker(&["exec", &container, "ps", "-eo", "user=,comm="]);
    let tmux_users: Vec<&str> = processes
        .lines()
        .filter(|l| l.contains("tmux"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        !tmux_users.is_empty() && tmux_users.iter().all(|u| *u == "shed"),
        "{processes}"
    );

    // `shed exec --session` needs GNU tail --pid and friends: the whole path works.
    let out = cli.ok(&[
        "exec",
        "base",
        "--session",
        "agent",
        "--",
        "python3",
        "-c",
        "print('é ok')",
    ]);
    assert!(out.contains("é ok"), "{out:?}");
}

#[test]
fn the_test_image_stays_separate_from_the_base_image() {
    let base = base_image();
    let test = test_image();
    let id = |image: &str| docker(&["image", "inspect", "--format", "{{.Id}}", image]);
    assert_ne!(id(base), id(test));
    let label = |image: &str| {
        docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"shed.test-image\"}}",
            image,
        ])
        .trim()
        .to_string()
    };
    assert_eq!(label(test), "true");
    assert_ne!(label(base), "true");
    let user = docker(&["image", "inspect", "--format", "{{.Config.User}}", base]);
    assert_eq!(user.trim(), "shed");
}
