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

/// Runs `shed-server ARGS --config CONFIG`.
fn shed_server(args: &[&str], config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shed-server"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running shed-server")
}

/// `ssh-keygen -lf FILE`: `BITS SHA256:... COMMENT (TYPE)`.
fn ssh_keygen_fingerprint(file: &std::path::Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", texts(&out));
    texts(&out).0.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn keys_subcommand_manages_the_default_authorized_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    let data = dir.path().join("data");
    std::fs::write(&config, format!("data_dir = {data:?}\n")).unwrap();
    let key = SshKey::generate();
    let pub_file = key.private.with_extension("pub");
    let fingerprint = ssh_keygen_fingerprint(&pub_file);

    let out = shed_server(&["keys", "add", pub_file.to_str().unwrap()], &config);
    assert!(out.status.success(), "{:?}", texts(&out));
    let file = data.join("authorized_keys");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let again = shed_server(&["keys", "add", key.public.trim()], &config);
    assert!(!again.status.success());
    assert!(
        texts(&again).1.contains("already listed"),
        "{:?}",
        texts(&again)
    );
    let bad = shed_server(&["keys", "add", "ssh-ed25519 not-a-key"], &config);
    assert!(!bad.status.success());
    let refused = shed_server(
        &[
            "keys",
            "add",
            &format!("command=\"ls\" {}", key.public.trim()),
        ],
        &config,
    );
    assert!(
        texts(&refused).1.contains("command"),
        "{:?}",
        texts(&refused)
    );

    let list = shed_server(&["keys", "list"], &config);
    assert_eq!(
        texts(&list).0.trim(),
        format!("{fingerprint} ssh-ed25519 shed-test")
    );
    let out = shed_server(&["keys", "remove", "shed-test"], &config);
    assert!(out.status.success(), "{:?}", texts(&out));
    assert_eq!(texts(&shed_server(&["keys", "list"], &config)).0, "");

    let with_from = format!("from=\"10.0.0.0/8\" {}", key.public.trim());
    let out = shed_server(&["keys", "add", &with_from], &config);
    assert!(out.status.success(), "{:?}", texts(&out));
    let list = shed_server(&["keys", "list"], &config);
    assert_eq!(
        texts(&list).0.trim(),
        format!("{fingerprint} ssh-ed25519 shed-test from=\"10.0.0.0/8\"")
    );
    let out = shed_server(&["keys", "remove", &fingerprint], &config);
    assert!(out.status.success(), "{:?}", texts(&out));

    // `-` reads the key from standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_shed-server"))
        .args(["keys", "add", "-", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(key.public.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", texts(&out));
    assert!(texts(&shed_server(&["keys", "list"], &config))
        .0
        .contains(&fingerprint));
}

#[test]
fn host_key_prints_the_fingerprint_the_server_uses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, format!("data_dir = {data:?}\n")).unwrap();
    let first = shed_server(&["host-key"], &config);
    assert!(first.status.success(), "{:?}", texts(&first));
    let printed = texts(&first).0;
    assert_eq!(printed.lines().count(), 1, "{printed:?}");
    let printed = printed.trim().to_string();
    assert!(
        shed::api::fingerprint::is_fingerprint(&printed),
        "{printed}"
    );
    assert_eq!(
        printed,
        ssh_keygen_fingerprint(&data.join("ssh_host_ed25519_key"))
    );
    assert_eq!(
        texts(&shed_server(&["host-key"], &config)).0.trim(),
        printed
    );

    let server = TestServer::start_with(ServerOpts {
        data_dir: Some(data),
        ..Default::default()
    });
    assert!(server.log().contains(&printed), "{}", server.log());
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("server.toml"),
        format!(
            "http_port = 0\nssh_port = 0\ndata_dir = {:?}\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    // prlimit execs the server in its own process, with a low soft limit.
    let mut cmd = Command::new("prlimit");
    cmd.current_dir(dir.path())
        .env("HOME", dir.path())
        .env_remove("SHED_SERVER_CONFIG")
        .args(["--nofile=256:4096", "--"])
        .arg(env!("CARGO_BIN_EXE_shed-server"))
        .arg("serve");
    let (child, _) = spawn_from(&mut cmd, dir.path());
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.0.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["4096", "4096"], "{line}");
}

#[test]
fn serve_flags_override_the_configs_bind_and_ports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    // Through a flag, a public bind without a token fails exactly as in the file.
    let from_file = start_fails(dir.path(), &path, "bind = \"0.0.0.0\"\nhttp_port = 0\n");
    std::fs::write(&path, "http_port = 0\n").unwrap();
    let out = server_cmd(dir.path())
        .args(["serve", "--bind", "0.0.0.0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), from_file);

    require_docker();
    // Ports the config names that the flags must replace: this one is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    std::fs::write(
        &path,
        format!(
            "name = \"flags\"\nhttp_port = {taken_port}\nssh_port = {taken_port}\ndata_dir = {:?}\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let mut child = ChildGuard(
        server_cmd(dir.path())
            .args([
                "serve",
                "--bind",
                "127.0.0.2",
                "--port",
                "0",
                "--ssh-port",
                "0",
            ])
            .arg("--config")
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let ports = parse_listening(&line).unwrap_or_else(|| {
        panic!("{line:?}: {}", std::fs::read_to_string(&log).unwrap());
    });
    assert!(
        line.contains("http://127.0.0.2:") && line.contains("ssh://127.0.0.2:"),
        "{line}"
    );
    assert_ne!(ports.http, taken_port);
    assert_ne!(ports.ssh, taken_port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let info = rt.block_on(async {
        common::http::get(&format!("http://127.0.0.2:{}/api/info", ports.http))
            .await
            .json
    });
    assert_eq!(info["name"], "flags");
    drop(child);
}

#[test]
fn install_writes_a_systemd_unit_and_uninstall_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    let config = dir.path().join("my config.toml");
    std::fs::write(&config, "name = \"installed\"\n").unwrap();
    let run = |args: &[&str]| {
        let out = server_cmd(dir.path())
            .args(args)
            .env("SHED_SYSTEMD_DIR", &units)
            .output()
            .unwrap();
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        stdout
    };
    let unit_path = units.join("shed-server.service");
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_shed-server")).unwrap();
    let config_abs = std::fs::canonicalize(&config).unwrap();
    let exec_start = format!(
        "ExecStart={} serve --config \"{}\"",
        binary.display(),
        config_abs.display()
    );

    let config_arg = config.to_str().unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    let mut args = vec!["install", "--config", config_arg];
    if root {
        args.extend(["--user", "nobody"]);
    }

    // --dry-run shows the unit and writes nothing.
    let shown = run(&[&args[..], &["--dry-run"]].concat());
    assert!(shown.contains(&exec_start), "{shown}");
    assert!(!unit_path.exists());

    // A config that would not start is refused before anything is written.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "bind = \"0.0.0.0\"\n").unwrap();
    let out = server_cmd(dir.path())
        .args(["install", "--config"])
        .arg(&broken)
        .env("SHED_SYSTEMD_DIR", &units)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(texts(&out).1.contains("api_token"), "{:?}", texts(&out));
    assert!(!unit_path.exists());

    // Without systemd (or with the directory overridden) it writes the unit
    // and says what to run, instead of failing.
    let said = run(&args);
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(unit.lines().any(|l| l == exec_start), "{unit}");
    assert!(unit.lines().any(|l| l == "Restart=on-failure"), "{unit}");
    if root {
        assert!(unit.lines().any(|l| l == "User=nobody"), "{unit}");
        assert!(unit.contains("After=docker.service"), "{unit}");
    }
    assert!(
        said.contains("daemon-reload") && said.contains("enable --now shed-server.service"),
        "{said}"
    );
    assert_eq!(
        shown.lines().skip(1).collect::<Vec<_>>(),
        unit.lines().collect::<Vec<_>>()
    );

    let said = run(&["uninstall"]);
    assert!(!unit_path.exists(), "{said}");
    assert!(said.contains("disable --now shed-server.service"), "{said}");
    // A second uninstall has nothing to do and says so.
    let said = run(&["uninstall"]);
    assert!(said.contains("nothing to do"), "{said}");
}
