//! Load: 100 concurrent API clients for a minute (SHED_LOAD_SECS), mixing
//! lists, outputs and shed gets, while 10 SSH sessions stream output.
//! Zero errors, and afterwards no leaked fds in the server and no leftover
//! processes in the shed.

mod common;

use common::http::post;
use common::*;
use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 100;
const SSH_STREAMS: usize = 10;

fn exec_ids(container: &str) -> usize {
    docker(&["inspect", "-f", "{{len .ExecIDs}}", container])
        .parse()
        .unwrap()
}

async fn alive_tasks(server: &TestServer) -> u64 {
    common::http::get(&server.url("/api/health")).await.json["alive_tasks"]
        .as_u64()
        .expect("alive_tasks in /api/health")
}

fn container_processes(container: &str) -> usize {
    docker(&["top", container, "-eo", "pid"])
        .lines()
        .skip(1)
        .count()
}

/// Runs the API mix from `CLIENTS` tasks for `duration`; returns (requests, failures).
async fn api_load(server: &TestServer, duration: Duration) -> (usize, Vec<String>) {
    let client = reqwest::Client::new();
    let paths = [
        "/api/sheds",
        "/api/sheds/load",
        "/api/sheds/load/sessions",
        "/api/sheds/load/sessions/s1/output?lines=20",
        "/api/sessions",
    ];
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let client = client.clone();
        let urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
        let done = done.clone();
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = i;
            while Instant::now() < deadline {
                let url = &urls[n % urls.len()];
                n += 1;
                match client.get(url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let body = r.bytes().await.unwrap_or_default();
                        if url.ends_with("/api/sessions") {
                            // A shed that timed out under load is a failure too.
                            let json: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            if json["warnings"] != serde_json::json!([]) {
                                failures.lock().unwrap().push(format!("{url}: {json}"));
                            }
                        }
                    }
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{url}: {status} {body}"));
                    }
                    Err(e) => failures.lock().unwrap().push(format!("{url}: {e}")),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    (done.load(Ordering::Relaxed), failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clients_and_ten_ssh_streams_without_errors_or_leaks() {
    let secs: u64 = std::env::var("SHED_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = TestServer::start();
    let key = SshKey::generate();
    server.authorize(&key);
    let r = post(&server.url("/api/sheds"), r#"{"name":"load"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    for s in ["s1", "s2", "s3"] {
        let r = post(
            &server.url("/api/sheds/load/sessions"),
            &format!(r#"{{"name":"{s}"}}"#),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.json);
    }
    let container = server.container("load");

    // Warm up (connection pools fill), then take the baseline.
    let (_, warm_failures) = api_load(&server, Duration::from_secs(3)).await;
    assert!(
        warm_failures.is_empty(),
        "{:?}",
        &warm_failures[..warm_failures.len().min(5)]
    );
    let procs_before = container_processes(&container);
    let fds_before = server.open_fds();
    let execs_before = exec_ids(&container);
    let tasks_before = alive_tasks(&server).await;

    let streamed = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::new();
    for _ in 0..SSH_STREAMS {
        let mut child = ChildGuard(
            server
                .ssh(&key, "load", &[])
                .arg("while :; do echo streaming-output-line; sleep 0.01; done")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut stdout = child.0.stdout.take().unwrap();
        let streamed = streamed.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                streamed.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
        streams.push(child);
    }

    let (requests, failures) = api_load(&server, Duration::from_secs(secs)).await;
    eprintln!(
        "load: {requests} requests in {secs}s from {CLIENTS} clients, {} bytes streamed over {SSH_STREAMS} ssh sessions",
        streamed.load(Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(requests > CLIENTS, "the load never ran");
    assert!(
        streamed.load(Ordering::Relaxed) > 0,
        "no ssh output streamed"
    );

    drop(streams);
    // Every stream's exec is hung up, and the server's fds come back down.
    assert!(
        wait_until(Duration::from_secs(20), || container_processes(&container)
            <= procs_before),
        "processes left in the shed: {} before, {} after:\n{}",
        procs_before,
        container_processes(&container),
        docker(&["top", &container, "-eo", "pid,args"])
    );
    assert!(
        wait_until(Duration::from_secs(20), || server.open_fds()
            <= fds_before + 4),
        "server fds grew from {fds_before} to {}",
        server.open_fds()
    );
    assert!(
        wait_until(Duration::from_secs(20), || exec_ids(&container)
            <= execs_before),
        "docker execs left: {} before, {} after",
        execs_before,
        exec_ids(&container)
    );
    let (_, tasks_after) = eventually(Duration::from_secs(20), || async {
        let now = alive_tasks(&server).await;
        (now <= tasks_before, now)
    })
    .await;
    eprintln!(
        "load: tasks {tasks_before} -> {tasks_after}, fds {fds_before} -> {}, execs {execs_before} -> {}, shed processes {procs_before} -> {}",
        server.open_fds(),
        exec_ids(&container),
        container_processes(&container)
    );
    assert!(
        tasks_after <= tasks_before,
        "server tasks grew from {tasks_before} to {tasks_after}"
    );
}
