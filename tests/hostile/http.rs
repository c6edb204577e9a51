//! Hostile-input tests: slow HTTP clients, cross-site requests, and the API
//! token kept off plain HTTP by TLS.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::http::{get, post, send, Reply};
use crate::common::{docker_ok, eventually, is_running, ServerOpts, TestServer};

/// Slow connections the slowloris test holds open at once.
const SLOW_CONNECTIONS: usize = 1_000;
/// The connection cap configured for that test, well under the slow ones.
const TEST_MAX_CONNECTIONS: usize = 256;
/// How long the slowloris test waits for the server to do its part.
const SLOWLORIS_DEADLINE: Duration = Duration::from_secs(25);

async fn send_with(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(String, String)],
) -> Reply {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    send(method, url, body, &headers).await
}

fn assert_forbidden(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: {}", reply.json);
    assert_eq!(reply.code(), "FORBIDDEN", "{what}: {}", reply.json);
    assert!(
        !reply.json["error"]["message"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{what}: {}",
        reply.json
    );
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn cross_site_stop_is_forbidden_and_the_shed_keeps_running() {
    let server = TestServer::start();
    let r = post(&server.url("/api/sheds"), r#"{"name":"demo"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert!(is_running(&server.container("demo")));

    let port = server.port;
    let own = format!("127.0.0.1:{port}");
    let evil_with_port = format!("evil.example:{port}");
    let wrong_scheme = format!("https://127.0.0.1:{port}");
    let lookalike = format!("http://127.0.0.1.evil.example:{port}");
    let attacks = [
        // The issue's curl: a page on a rebound name posting to "its own" origin.
        pairs(&[("host", "evil.example"), ("origin", "http://evil.example")]),
        // A page elsewhere posting straight to the loopback port.
        pairs(&[("origin", "http://evil.example")]),
        pairs(&[("host", &own), ("origin", "null")]),
        // DNS rebinding with no Origin at all.
        pairs(&[("host", &evil_with_port)]),
        pairs(&[("origin", &wrong_scheme)]),
        pairs(&[("origin", "http://127.0.0.1:1")]),
        pairs(&[("origin", &lookalike)]),
        pairs(&[("host", "127.0.0.1@evil.example")]),
    ];
    let stop = server.url("/api/sheds/demo/stop");
    for headers in &attacks {
        let reply = send_with("POST", &stop, None, headers).await;
        assert_forbidden(&reply, &format!("stop with {headers:?}"));
    }
    assert!(
        is_running(&server.container("demo")),
        "a refused stop stopped the shed"
    );

    // A rebound page can read nothing and create nothing, on any route.
    let rebound = pairs(&[("host", &evil_with_port)]);
    for (method, path, body) in [
        ("GET", "/api/sheds", None),
        ("GET", "/api/health", None),
        ("GET", "/api/openapi.json", None),
        ("GET", "/no/such/route", None),
        ("POST", "/api/sheds", Some(r#"{"name":"rebound"}"#)),
        (
            "POST",
            "/api/sheds/demo/sessions",
            Some(r#"{"name":"x","command":"touch /tmp/pwned"}"#),
        ),
    ] {
        let reply = send_with(method, &server.url(path), body, &rebound).await;
        assert_forbidden(&reply, &format!("{method} {path}"));
    }
    assert!(!docker_ok(&["inspect", &server.container("rebound")]));
    let sessions = get(&server.url("/api/sheds/demo/sessions")).await;
    assert_eq!(sessions.status, 200, "{}", sessions.json);
    assert_eq!(sessions.json["sessions"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn same_origin_and_no_origin_requests_work() {
    let server = TestServer::start();
    let port = server.port;
    let with_port = |host: &str| format!("{host}:{port}");
    let cases: Vec<Vec<(String, String)>> = vec![
        vec![],
        pairs(&[("origin", &format!("http://127.0.0.1:{port}"))]),
        pairs(&[
            ("host", &with_port("localhost")),
            ("origin", &format!("http://localhost:{port}")),
        ]),
        pairs(&[("host", &with_port("LOCALHOST."))]),
        pairs(&[
            ("host", &with_port("[::1]")),
            ("origin", &format!("http://[::1]:{port}")),
        ]),
        pairs(&[("host", "127.0.0.1"), ("origin", "http://127.0.0.1")]),
        pairs(&[("host", &with_port(&server.name))]),
    ];
    for headers in &cases {
        let reply = send_with("GET", &server.url("/api/info"), None, headers).await;
        assert_eq!(reply.status, 200, "{headers:?}: {}", reply.json);
    }
    let doc = get(&server.url("/api/openapi.json")).await;
    assert!(
        doc.json["paths"]["/api/sheds/{name}/stop"]["post"]["responses"]["403"].is_object(),
        "the OpenAPI document lists no 403: {}",
        doc.json["paths"]["/api/sheds/{name}/stop"]
    );
}

#[tokio::test]
async fn allowed_hosts_admits_a_configured_name() {
    let server =
        TestServer::start_with_config("allowed_hosts = [\"shed.example\", \"192.0.2.7\"]\n");
    let port = server.port;
    let ours = format!("shed.example:{port}");
    let info = server.url("/api/info");
    for headers in [
        pairs(&[("host", &ours)]),
        pairs(&[("host", &ours), ("origin", &format!("http://{ours}"))]),
        pairs(&[("host", &format!("Shed.Example.:{port}"))]),
        pairs(&[("host", &format!("192.0.2.7:{port}"))]),
    ] {
        let reply = send_with("GET", &info, None, &headers).await;
        assert_eq!(reply.status, 200, "{headers:?}: {}", reply.json);
    }
    for headers in [
        pairs(&[("host", &format!("other.example:{port}"))]),
        pairs(&[("host", &format!("sub.shed.example:{port}"))]),
        pairs(&[("host", &format!("192.0.2.8:{port}"))]),
        // Both names are ours, but a page on one is not the other's origin.
        pairs(&[("origin", &format!("http://{ours}"))]),
    ] {
        let reply = send_with("GET", &info, None, &headers).await;
        assert_forbidden(&reply, &format!("{headers:?}"));
    }
}

/// Raises this process's soft open-file limit to at least `want`, within the hard limit.
fn raise_fd_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= want,
        "the open-file limit ({}) is too low for this test",
        limit.rlim_max
    );
}

/// Whether the server closes `stream` before `deadline` (end of stream or a reset).
async fn closed_by_server(mut stream: TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 512];
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slowloris_connections_do_not_lock_out_a_client_and_are_closed() {
    raise_fd_limit(SLOW_CONNECTIONS as u64 + 1_000);
    let server = TestServer::start_with_config(format!(
        "http_header_timeout_secs = 2\nhttp_max_connections = {TEST_MAX_CONNECTIONS}\n"
    ));
    let fds_before = server.open_fds();
    let mut slow = Vec::with_capacity(SLOW_CONNECTIONS);
    for i in 0..SLOW_CONNECTIONS {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .expect("connecting a slow client");
        // Half send nothing; half stop in the middle of their headers. A
        // write may fail when the server has already closed the connection.
        if i % 2 == 1 {
            let _ = stream
                .write_all(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await;
        }
        slow.push(stream);
    }

    // While the slow clients hold their connections, a real one gets in.
    for _ in 0..5 {
        let reply = get(&server.url("/api/info")).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
    }
    let deadline = Instant::now() + SLOWLORIS_DEADLINE;
    let (bounded, fds) = eventually(SLOWLORIS_DEADLINE, || async {
        let fds = server.open_fds();
        (fds <= fds_before + TEST_MAX_CONNECTIONS, fds)
    })
    .await;
    assert!(
        bounded,
        "the server holds {fds} descriptors (started with {fds_before}, cap {TEST_MAX_CONNECTIONS})"
    );

    // And the server itself closes every slow connection.
    let closed =
        futures_util::future::join_all(slow.into_iter().map(|s| closed_by_server(s, deadline)))
            .await;
    let still_open = closed.iter().filter(|c| !**c).count();
    assert_eq!(
        still_open, 0,
        "{still_open} slow connections were never closed"
    );
    let reply = get(&server.url("/api/health")).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
}

const TOKEN: &str = "hostile-http-token-0123456789";

/// The certificate the server at `url` presents, accepting it unchecked.
async fn presented_certificate(url: &str) -> Vec<u8> {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .unwrap();
    let response = client.get(url).send().await.expect("TLS request");
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("TLS info");
    info.peer_certificate().expect("a certificate").to_vec()
}

#[tokio::test]
async fn tls_keeps_the_token_off_plain_http_with_a_stable_certificate() {
    let data = tempfile::tempdir().unwrap();
    let opts = ServerOpts {
        extra: format!("tls = \"on\"\napi_token = {TOKEN:?}\n"),
        data_dir: Some(data.path().to_path_buf()),
        ..ServerOpts::default()
    };
    let server = TestServer::start_with(opts.clone());
    let port = server.port;
    let config = shed::server::config::ServerConfig {
        data_dir: data.path().to_path_buf(),
        ..Default::default()
    };
    let fingerprint = shed::server::tls::certificate_fingerprint(&config).unwrap();
    assert!(shed::api::fingerprint::is_fingerprint(&fingerprint));
    assert!(
        server.log().contains(&fingerprint),
        "fingerprint not logged"
    );

    let der = presented_certificate(&format!("https://127.0.0.1:{port}/api/health")).await;
    assert_eq!(
        shed::api::fingerprint::sha256_fingerprint(&der),
        fingerprint
    );

    // A client that pins the certificate reaches the API by name and by address.
    let pinned = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(&der).unwrap())
        .build()
        .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{port}/api/info");
        let r = pinned.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let r = pinned.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{url} without the token");
        let r = pinned
            .get(&url)
            .header("origin", format!("http://{host}:{port}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{url} with a plain-HTTP origin");
    }
    // Nobody else trusts it.
    let default = reqwest::Client::new();
    assert!(default
        .get(format!("https://127.0.0.1:{port}/api/health"))
        .send()
        .await
        .is_err());
    // Plain HTTP gets no answer at all: the port speaks only TLS.
    let plain = default
        .get(format!("http://127.0.0.1:{port}/api/info"))
        .bearer_auth(TOKEN)
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // A restart serves the same certificate.
    drop(server);
    let again = TestServer::start_with(opts);
    let der_again =
        presented_certificate(&format!("https://127.0.0.1:{}/api/health", again.port)).await;
    assert_eq!(
        shed::api::fingerprint::sha256_fingerprint(&der_again),
        fingerprint
    );
}

/// Writes `request` on a new connection to the server.
async fn raw_request(server: &TestServer, request: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connecting");
    stream.write_all(request).await.expect("sending");
    stream
}

/// Reads until the server closes `stream` or `limit` passes; returns what
/// arrived and whether the server closed it.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into(), false),
        }
    }
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    // The header timeout is far longer than the test waits, so only the
    // idle timeout can close the connection in time.
    let server = TestServer::start_with_config(
        "http_header_timeout_secs = 120\nhttp_idle_timeout_secs = 1\n",
    );
    let mut stream = raw_request(
        &server,
        b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(30)).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(closed, "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn a_trickled_request_body_gets_408_and_the_connection_closes() {
    let server = TestServer::start_with_config("http_header_timeout_secs = 2\n");
    // A complete head announcing 100 bytes of body, then only the start of it.
    let mut stream = raw_request(
        &server,
        b"POST /api/sheds HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"name\":",
    )
    .await;
    let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(30)).await;
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(received.contains("REQUEST_TIMEOUT"), "{received}");
    assert!(closed, "the connection stayed open after the timeout");
    assert!(crate::common::containers_with_prefix(&server.prefix).is_empty());
}

/// Runs prlimit(1) on the open-file limit of process `pid` with `args`; returns its output.
fn prlimit_nofile(pid: u32, args: &[&str]) -> String {
    let out = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .args(args)
        .output()
        .expect("prlimit (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn running_out_of_descriptors_is_survived() {
    let server = TestServer::start_with_config("http_header_timeout_secs = 2\n");
    let pid = server.pid();
    let soft = prlimit_nofile(pid, &["--nofile", "--output=SOFT", "--noheadings"]);
    // Leave the server two spare descriptors, then knock with more.
    let tight = format!("--nofile={}:", server.open_fds() + 2);
    prlimit_nofile(pid, &[&tight]);
    let mut knocking = Vec::new();
    for _ in 0..10 {
        knocking.push(
            TcpStream::connect(("127.0.0.1", server.port))
                .await
                .expect("connecting"),
        );
    }
    let (logged, _) = eventually(Duration::from_secs(20), || async {
        (
            server.log().contains("accepting an HTTP connection failed"),
            (),
        )
    })
    .await;
    assert!(logged, "no accept error was logged");
    drop(knocking);
    prlimit_nofile(pid, &[&format!("--nofile={soft}:")]);
    let (ok, last) = eventually(Duration::from_secs(20), || async {
        match reqwest::get(server.url("/api/health")).await {
            Ok(r) => (r.status() == 200, r.status().to_string()),
            Err(e) => (false, e.to_string()),
        }
    })
    .await;
    assert!(ok, "the server did not recover: {last}");
}
