//! Hostile-input tests: hostile clients of the SSH gateway.
//!
//! Floods come from other loopback addresses (127.0.0.2, ...), so the
//! per-address caps bite them and not the real `ssh` logins from 127.0.0.1.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::common::*;

/// A shed that does not exist: a login to it authenticates, opens a channel
/// and gets this error, without creating any container.
const NO_SHED: &str = "nosuchshed";

/// Opens a TCP connection to the gateway from loopback address `source`.
async fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("binding a loopback source address");
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("connecting to the gateway")
}

/// Reads until the server closes the connection: the bytes it sent, or
/// `None` if it is still open at `deadline`.
async fn read_until_closed(
    stream: &mut TcpStream,
    deadline: tokio::time::Instant,
) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether the server greets this connection with its SSH version line
/// (admitted) rather than closing it (refused at once).
async fn greeted(stream: &mut TcpStream) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.contains(&b'\n') {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    got.starts_with(b"SSH-2.0-")
}

/// Runs a real `ssh` login as `user` from 127.0.0.1.
fn login(server: &TestServer, key: &SshKey, user: &str) -> Output {
    server
        .ssh(key, user, &["-b", "127.0.0.1", "-o", "ConnectTimeout=10"])
        .arg("true")
        .output()
        .expect("running ssh")
}

/// Whether `out` is a successful login to [`NO_SHED`]: authentication and
/// the channel worked, and the gateway said the shed does not exist.
fn logged_in(out: &Output) -> bool {
    String::from_utf8_lossy(&out.stderr).contains("no shed named")
}

/// Retries a real login to [`NO_SHED`] for up to `limit`: whether one got
/// in, and the last attempt.
async fn login_within(server: &TestServer, key: &SshKey, limit: Duration) -> (bool, Output) {
    eventually(limit, || async {
        let out = login(server, key, NO_SHED);
        (logged_in(&out), out)
    })
    .await
}

fn denied(out: &Output) -> bool {
    String::from_utf8_lossy(&out.stderr).contains("Permission denied")
}

fn server_with(extra: &str) -> (TestServer, SshKey) {
    let server = TestServer::start_with_config(extra);
    let key = SshKey::generate();
    server.authorize(&key);
    (server, key)
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_login_grace_time() {
    let (server, key) = server_with(
        "ssh_login_grace_secs = 3\nssh_max_unauthenticated = 50\n\
         ssh_max_unauthenticated_per_ip = 20\n",
    );
    // Slowloris: connect and never send a version string. Bounded, loopback only.
    const FLOOD: usize = 300;
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        flood.push(connect_from([127, 0, 0, 2], server.ssh_port).await);
    }

    let out = login(&server, &key, NO_SHED);
    assert!(
        logged_in(&out),
        "a real login failed during the flood: {:?}",
        texts(&out)
    );

    let mut still_open = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for stream in &mut flood {
        if read_until_closed(stream, deadline).await.is_none() {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "idle pre-auth connections outlived the login grace time"
    );
    let health = http::get(&server.url("/api/health")).await;
    assert_eq!(health.status, 200, "{}", health.json);
}

#[tokio::test]
async fn unauthenticated_connections_are_capped_per_address_and_in_total() {
    let (server, key) = server_with(
        "ssh_max_connections = 6\nssh_max_unauthenticated = 4\n\
         ssh_max_unauthenticated_per_ip = 2\n",
    );
    let port = server.ssh_port;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from([127, 0, 0, 2], port).await;
        assert!(greeted(&mut s).await);
        held.push(s);
    }
    let mut over_address = connect_from([127, 0, 0, 2], port).await;
    assert!(
        !greeted(&mut over_address).await,
        "a third idle connection from one address was admitted"
    );
    for _ in 0..2 {
        let mut s = connect_from([127, 0, 0, 3], port).await;
        assert!(greeted(&mut s).await);
        held.push(s);
    }
    let mut over_total = connect_from([127, 0, 0, 4], port).await;
    assert!(
        !greeted(&mut over_total).await,
        "a fifth idle connection was admitted"
    );
    let log = server.log();
    assert!(
        log.contains("ssh_max_unauthenticated_per_ip reached")
            && log.contains("ssh_max_unauthenticated reached"),
        "{log}"
    );

    // Closing them gives the slots back.
    drop(held);
    let (ok, out) = login_within(&server, &key, Duration::from_secs(10)).await;
    assert!(ok, "no login after the flood ended: {:?}", texts(&out));
}

#[tokio::test]
async fn connections_are_capped_in_total_and_a_closed_one_frees_its_slot() {
    let (server, key) = server_with(
        "ssh_max_connections = 3\nssh_max_unauthenticated = 2\n\
         ssh_max_unauthenticated_per_ip = 2\n",
    );
    // Two logged-in connections and one that has not authenticated fill
    // the cap; the unauthenticated caps have room left.
    let (first, ok) = russh_login(&server, &key, NO_SHED).await;
    assert!(ok, "the first login failed");
    let (_second, ok) = russh_login(&server, &key, NO_SHED).await;
    assert!(ok, "the second login failed");
    let mut pending = connect_from([127, 0, 0, 2], server.ssh_port).await;
    assert!(
        greeted(&mut pending).await,
        "the pending connection was refused"
    );

    let mut over = connect_from([127, 0, 0, 3], server.ssh_port).await;
    assert!(
        !greeted(&mut over).await,
        "a connection over ssh_max_connections was admitted"
    );
    assert!(
        wait_until(Duration::from_secs(10), || server
            .log()
            .contains("ssh_max_connections reached")),
        "{}",
        server.log()
    );
    let out = login(&server, &key, NO_SHED);
    assert!(
        !logged_in(&out),
        "a login over ssh_max_connections worked: {:?}",
        texts(&out)
    );

    // Closing a logged-in connection gives its slot back to a real login.
    first
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await
        .expect("disconnecting");
    drop(first);
    let (ok, out) = login_within(&server, &key, Duration::from_secs(10)).await;
    assert!(ok, "no login after a connection closed: {:?}", texts(&out));
}

#[tokio::test]
async fn health_says_the_gateway_is_down_while_its_port_is_taken() {
    // Another program holds the SSH port when the server starts.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("holding a port");
    let port = squatter.local_addr().expect("its address").port();
    let server = TestServer::start_with(ServerOpts {
        ssh_port: Some(port),
        ..Default::default()
    });
    let key = SshKey::generate();
    server.authorize(&key);

    // Down, and still down after retries: not a moment of start-up.
    let binding = format!("binding the SSH gateway to 127.0.0.1:{port}");
    assert!(
        wait_until(Duration::from_secs(10), || server
            .log()
            .matches(&binding)
            .count()
            >= 3),
        "the bind was not retried:\n{}",
        server.log()
    );
    let health = http::get(&server.url("/api/health")).await;
    assert_eq!(health.status, 503, "{}", health.json);
    assert_eq!(health.json["status"], "degraded", "{}", health.json);
    assert_eq!(health.json["gateway"], "down", "{}", health.json);
    // The API serves meanwhile.
    let info = http::get(&server.url("/api/info")).await;
    assert_eq!(info.status, 200, "{}", info.json);
    assert_eq!(info.json["ssh_port"], port, "{}", info.json);

    // Once the port is free the gateway binds it (the retry backs off to
    // at most 10 s) and serves real logins.
    drop(squatter);
    let (up, last) = eventually(Duration::from_secs(30), || async {
        let health = http::get(&server.url("/api/health")).await;
        (health.status == 200, health.json)
    })
    .await;
    assert!(up, "health never recovered: {last}");
    assert_eq!(last["gateway"], "up", "{last}");
    let out = login(&server, &key, NO_SHED);
    assert!(logged_in(&out), "{:?}", texts(&out));
}

/// Sets the open-file limit of process `pid`, soft and hard.
fn set_nofile(pid: u32, limit: usize) {
    let out = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .output()
        .expect("prlimit (util-linux)");
    assert!(out.status.success(), "{:?}", texts(&out));
}

#[tokio::test]
async fn the_gateway_survives_running_out_of_file_descriptors() {
    let (server, key) = server_with("");
    let out = login(&server, &key, NO_SHED);
    assert!(logged_in(&out), "{:?}", texts(&out));

    // Leave a few descriptors, then take them with idle connections from
    // several addresses (under the per-address cap) until accept fails.
    let base = server.open_fds();
    set_nofile(server.pid(), base + 6);
    let mut held = Vec::new();
    'fill: for source in 2..=9u8 {
        for _ in 0..5 {
            held.push(connect_from([127, 0, 0, source], server.ssh_port).await);
            if server.log().contains("Too many open files") {
                break 'fill;
            }
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || server
            .log()
            .contains("Too many open files")),
        "accept never failed; open fds: {}",
        server.open_fds()
    );

    drop(held);
    let (ok, out) = login_within(&server, &key, Duration::from_secs(20)).await;
    assert!(
        ok,
        "the gateway did not recover from EMFILE: {:?}",
        texts(&out)
    );
    let health = http::get(&server.url("/api/health")).await;
    assert_eq!(health.status, 200, "{}", health.json);
    assert_eq!(health.json["gateway"], "up", "{}", health.json);
    assert!(
        server.log().contains("accept failed; going on"),
        "{}",
        server.log()
    );
}

/// Connects with russh and tries `key` as `user`; the handle and whether
/// authentication succeeded.
async fn russh_login(
    server: &TestServer,
    key: &SshKey,
    user: &str,
) -> (russh::client::Handle<AnyHostKey>, bool) {
    let config = Arc::new(russh::client::Config::default());
    let mut handle = russh::client::connect(config, ("127.0.0.1", server.ssh_port), AnyHostKey)
        .await
        .expect("connecting with russh");
    let private = russh::keys::load_secret_key(&key.private, None).expect("loading the test key");
    let auth = handle
        .authenticate_publickey(
            user,
            russh::keys::PrivateKeyWithHashAlg::new(Arc::new(private), None),
        )
        .await
        .expect("authenticating");
    (handle, auth.success())
}

#[tokio::test]
async fn user_names_cannot_forge_log_lines() {
    let (server, _authorized) = server_with("");
    let stranger = SshKey::generate();
    let forged = "2030-01-01T00:00:00.000000Z  INFO shed::server::ssh: FORGED ssh login";
    let user = format!("nobody\n{forged}");
    let (_handle, ok) = russh_login(&server, &stranger, &user).await;
    assert!(!ok);
    assert!(
        wait_until(Duration::from_secs(10), || server.log().contains("FORGED")),
        "the attempt was not logged at all"
    );
    let log = server.log();
    assert!(
        !log.lines().any(|line| line.starts_with("2030-01-01")),
        "a client forged a log line:\n{log}"
    );
}

#[tokio::test]
async fn an_invalid_shed_name_cannot_log_in_or_forward() {
    let (server, key) = server_with("");
    for user in ["../../containers/json?all=1#", "Bad Name", "x%2F..%2F"] {
        let (handle, ok) = russh_login(&server, &key, user).await;
        assert!(!ok, "{user:?} authenticated");
        let forward = handle
            .channel_open_direct_tcpip("127.0.0.1", 22, "127.0.0.1", 5000)
            .await;
        assert!(forward.is_err(), "{user:?} opened a direct-tcpip channel");
    }
    assert!(server.log().contains("not a valid shed name"));
}

#[tokio::test]
async fn authorized_keys_options_are_enforced() {
    let (server, key) = server_with("");
    let path = server.dir.path().join("authorized_keys");
    let with_options = |options: &str| {
        std::fs::write(&path, format!("{options} {}", key.public)).unwrap();
    };
    for refused in [
        "from=\"10.0.0.0/8\"",
        "from=\"*,!127.0.0.1\"",
        "expiry-time=\"20000101\"",
        "command=\"/bin/true\"",
        "restrict",
        "no-pty",
    ] {
        with_options(refused);
        let out = login(&server, &key, NO_SHED);
        assert!(denied(&out), "{refused}: {:?}", texts(&out));
    }
    for allowed in ["from=\"127.0.0.0/8\"", "expiry-time=\"29991231Z\""] {
        with_options(allowed);
        let out = login(&server, &key, NO_SHED);
        assert!(logged_in(&out), "{allowed}: {:?}", texts(&out));
    }
    // Each refusal names the option it could not honour.
    for option in ["command", "restrict", "no-pty"] {
        let named = format!("option {option:?} is not supported by shed");
        assert!(
            wait_until(Duration::from_secs(10), || server.log().contains(&named)),
            "no refusal naming {option}:\n{}",
            server.log()
        );
    }
}

#[tokio::test]
async fn channels_per_connection_are_capped() {
    let (server, key) = server_with("ssh_max_channels_per_connection = 2\n");
    let (handle, ok) = russh_login(&server, &key, NO_SHED).await;
    assert!(ok);
    // Session channels that never ask for a shell hold their slot.
    let first = handle.channel_open_session().await.expect("first channel");
    let _second = handle.channel_open_session().await.expect("second channel");
    assert!(
        handle.channel_open_session().await.is_err(),
        "a channel over ssh_max_channels_per_connection was opened"
    );
    assert!(wait_until(Duration::from_secs(10), || server
        .log()
        .contains("ssh_max_channels_per_connection reached")));
    // Closing one gives its slot back.
    first.close().await.expect("closing a channel");
    let (reopened, _) = eventually(Duration::from_secs(10), || async {
        (handle.channel_open_session().await.is_ok(), ())
    })
    .await;
    assert!(reopened);
}

#[tokio::test]
async fn health_reports_the_gateway() {
    let (server, _key) = server_with("");
    let health = http::get(&server.url("/api/health")).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json["status"], "ok");
    assert_eq!(health.json["gateway"], "up");
}
