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

    // Before: added silently; every later login ended in "Permission denied".
    let cli = Cli::new();
    let out = cli.add_local(
        server.port,
        &host_key_fingerprint(&server),
        &["--identity", &identity],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("refused your key") && stderr.contains(&fingerprint),
        "{stderr}"
    );
    assert!(stderr.contains("shed-server keys add"), "{stderr}");

    // Once the server lists the key, the same add is quiet.
    server.authorize(&key);
    let cli = Cli::new();
    let out = cli.add_local(
        server.port,
        &host_key_fingerprint(&server),
        &["--identity", &identity],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
