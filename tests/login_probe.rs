//! `shed server add` tests a login to the real gateway with the real
//! OpenSSH client, and says which key the server must list when refused.

mod common;

use common::*;

#[test]
fn server_add_names_the_key_the_gateway_refuses() {
    let server = TestServer::start();
    let key = SshKey::generate();
    let fingerprint = String::from_utf8_lossy(
        &std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.private.with_extension("pub"))
            .output()
            .unwrap()
            .stdout,
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_string();
    let identity = key.private.to_string_lossy().into_owned();

    // A fresh `shed server add` of the gateway with `key`: it succeeds
    // either way; its stderr.
    let add = || {
        let out = Cli::new().add_local(
            server.port,
            &host_key_fingerprint(&server),
            &["--identity", &identity],
        );
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        stderr
    };

    // Before: added silently; every later login ended in "Permission denied".
    let stderr = add();
    assert!(
        stderr.contains("refused your key") && stderr.contains(&fingerprint),
        "{stderr}"
    );
    assert!(stderr.contains("shed-server keys add"), "{stderr}");

    // Once the server lists the key, the same add is quiet.
    server.authorize(&key);
    let stderr = add();
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn console_and_exec_explain_a_refused_key_after_ssh_fails() {
    let server = TestServer::start();
    let key = SshKey::generate();
    let cli = Cli::new();
    cli.add_server_with_key(&server, "local", &key);
    // The shed exists (made over HTTP); only the key is missing.
    cli.ok(&["create", "demo"]);
    let public = key.private.with_extension("pub");
    let public = public.to_string_lossy();

    for args in [
        &["exec", "demo", "--", "true"][..],
        // Without a terminal, as a script would run it.
        &["console", "demo"],
    ] {
        let out = cli.run(args);
        let (stdout, stderr) = texts(&out);
        // ssh's own status and line, then shed's explanation.
        assert_eq!(out.status.code(), Some(255), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("Permission denied"), "{args:?}: {stderr}");
        let explained: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("refused your key"))
            .collect();
        assert_eq!(explained.len(), 1, "{args:?}: {stderr}");
        assert!(
            explained[0].contains(&format!("authorized_keys must list {public}"))
                && explained[0].contains("shed-server keys add"),
            "{args:?}: {stderr}"
        );
    }

    // Listed, the same commands work and explain nothing; a remote failure
    // that is not a refusal is never blamed on the key.
    server.authorize(&key);
    let out = cli.run(&["exec", "demo", "--", "echo", "in"]);
    assert_eq!(texts(&out), ("in\n".to_string(), String::new()));
    let out = cli.run(&["exec", "demo", "--", "sh", "-c", "kill -TERM $$"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(!stderr.contains("refused your key"), "{stderr}");
}
