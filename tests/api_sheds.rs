//! The shed API against a real Docker engine, through a real shed-server process.

mod common;

use common::http::{delete, get, post, post_empty, send};
use common::*;

/// A fresh test server and the URL of its shed collection.
fn start() -> (TestServer, String) {
    let server = TestServer::start();
    let sheds = server.url("/api/sheds");
    (server, sheds)
}

#[tokio::test]
async fn lifecycle_and_error_codes() {
    let (server, sheds) = start();

    let r = post(
        &sheds,
        r#"{"name":"demo","repo":"file:///srv/git/hello.git"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["name"], "demo");
    assert_eq!(r.json["status"], "running");
    assert_eq!(r.json["image"], TEST_IMAGE);
    assert_eq!(r.json["server"], server.name.as_str());
    assert_eq!(r.json["repo"], "file:///srv/git/hello.git");
    let container = server.container("demo");
    assert!(is_running(&container));
    assert_eq!(
        docker(&["exec", &container, "cat", "/workspace/hello/README.md"]),
        "hello from shed test repo"
    );
    // The Docker model the issue specifies.
    let fmt = format!(
        "{{{{.HostConfig.RestartPolicy.Name}}}} {{{{.HostConfig.Init}}}} {{{{.Config.WorkingDir}}}} {{{{index .Config.Labels \"{p}.shed\"}}}} {{{{index .Config.Labels \"{p}.shed.name\"}}}}",
        p = server.prefix
    );
    assert_eq!(
        docker(&["inspect", "-f", &fmt, &container]),
        "unless-stopped true /workspace true demo"
    );
    let env = docker(&["inspect", "-f", "{{json .Config.Env}}", &container]);
    assert!(env.contains("LANG=C.UTF-8"), "{env}");
    let mounts = docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}",
        &container,
    ]);
    assert!(
        mounts.contains(&format!("{}:/workspace", server.volume("demo"))),
        "{mounts}"
    );
    let created = docker(&[
        "inspect",
        "-f",
        &format!(
            "{{{{index .Config.Labels \"{}.shed.created\"}}}}",
            server.prefix
        ),
        &container,
    ]);
    assert!(
        chrono::DateTime::parse_from_rfc3339(&created).is_ok(),
        "{created}"
    );

    let r = post(&sheds, r#"{"name":"demo"}"#).await;
    assert_eq!((r.status, r.code()), (409, "SHED_EXISTS"));

    let r = get(&server.url("/api/sheds/demo")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["container_id"].as_str().unwrap().len(), 64);

    let r = get(&sheds).await;
    assert_eq!(r.json["sheds"].as_array().unwrap().len(), 1);

    let r = post_empty(&server.url("/api/sheds/demo/start")).await;
    assert_eq!((r.status, r.code()), (409, "SHED_ALREADY_RUNNING"));

    let r = post_empty(&server.url("/api/sheds/demo/stop")).await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("stopped"))
    );
    assert!(!is_running(&container));
    let r = post_empty(&server.url("/api/sheds/demo/stop")).await;
    assert_eq!((r.status, r.code()), (409, "SHED_ALREADY_STOPPED"));
    let r = get(&sheds).await;
    assert_eq!(r.json["sheds"][0]["status"], "stopped");

    let r = post_empty(&server.url("/api/sheds/demo/start")).await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("running"))
    );
    assert!(is_running(&container));
    // The workspace survived the restart.
    assert!(docker_ok(&[
        "exec",
        &container,
        "test",
        "-f",
        "/workspace/hello/README.md"
    ]));

    let r = delete(&server.url("/api/sheds/demo")).await;
    assert_eq!(r.status, 204);
    assert!(containers_with_prefix(&server.prefix).is_empty());
    assert!(volumes_with_prefix(&server.prefix).is_empty());

    for (method, path) in [
        ("GET", "/api/sheds/demo"),
        ("DELETE", "/api/sheds/demo"),
        ("POST", "/api/sheds/demo/start"),
        ("POST", "/api/sheds/demo/stop"),
    ] {
        let r = send(method, &server.url(path), None, &[]).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "SHED_NOT_FOUND"),
            "{method} {path}"
        );
    }

    let r = get(&server.url("/api/health")).await;
    assert_eq!(r.status, 200);
    let r = get(&server.url("/api/info")).await;
    assert_eq!(r.json["http_port"], server.port);
    assert_eq!(r.json["name"], server.name.as_str());
    assert!(r.json["ssh_port"].is_u64() && r.json["version"].is_string());
}

#[tokio::test]
async fn bad_input_is_a_4xx_and_creates_nothing() {
    let (server, sheds) = start();
    let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let cases: Vec<(&str, u16, &str)> = vec![
        (r#"{"name":"Demo"}"#, 400, "INVALID_NAME"),
        (r#"{"name":"../etc"}"#, 400, "INVALID_NAME"),
        (r#"{"name":"a;rm -rf /"}"#, 400, "INVALID_NAME"),
        (r#"{"name":"$(id)"}"#, 400, "INVALID_NAME"),
        (r#"{"name":"-lead"}"#, 400, "INVALID_NAME"),
        (r#"{"name":"caf\u00e9"}"#, 400, "INVALID_NAME"),
        (r#"{"name":""}"#, 400, "INVALID_NAME"),
        (r#"{"name":"ok","image":""}"#, 400, "INVALID_REQUEST"),
        (
            r#"{"name":"ok","repo":"--upload-pack=touch /tmp/x"}"#,
            400,
            "INVALID_REQUEST",
        ),
        (r#"{"name":"ok","colour":"red"}"#, 400, "INVALID_REQUEST"),
        (r#"{"name":["ok"]}"#, 400, "INVALID_REQUEST"),
        (r#"{"name":"ok""#, 400, "INVALID_REQUEST"),
        (r#"not json"#, 400, "INVALID_REQUEST"),
        (&big, 413, "PAYLOAD_TOO_LARGE"),
    ];
    for (body, status, code) in &cases {
        let r = post(&sheds, body).await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!((r.status, r.code()), (*status, *code), "body {shown}");
        assert!(r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let r = send("POST", &sheds, None, &[("content-type", "text/plain")]).await;
    assert_eq!((r.status, r.code()), (415, "UNSUPPORTED_MEDIA_TYPE"));
    let r = get(&server.url("/api/sheds/NOPE")).await;
    assert_eq!((r.status, r.code()), (400, "INVALID_NAME"));
    let r = send(
        "DELETE",
        &server.url("/api/sheds/x?keep_volume=perhaps"),
        None,
        &[],
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"));
    let r = get(&server.url("/api/unknown")).await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));

    assert!(containers_with_prefix(&server.prefix).is_empty());
    assert!(volumes_with_prefix(&server.prefix).is_empty());
    let r = get(&sheds).await;
    assert_eq!(r.json["sheds"], serde_json::json!([]));
}

#[tokio::test]
async fn failed_creates_leave_nothing_behind() {
    let (server, sheds) = start();

    let r = post(
        &sheds,
        r#"{"name":"img","image":"shed-no-such-image:latest"}"#,
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "IMAGE_NOT_FOUND"));
    let r = post(
        &sheds,
        r#"{"name":"clone","repo":"file:///srv/git/missing.git"}"#,
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "CLONE_FAILED"), "{}", r.json);
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing.git"));
    assert!(containers_with_prefix(&server.prefix).is_empty());
    assert!(volumes_with_prefix(&server.prefix).is_empty());
    assert!(!docker_ok(&["volume", "inspect", &server.volume("clone")]));
}

#[tokio::test]
async fn keep_volume_keeps_the_workspace_and_a_failed_create_never_loses_it() {
    let (server, sheds) = start();
    assert_eq!(post(&sheds, r#"{"name":"keep"}"#).await.status, 201);
    docker(&[
        "exec",
        &server.container("keep"),
        "sh",
        "-c",
        "echo precious > /workspace/notes",
    ]);

    let r = delete(&server.url("/api/sheds/keep?keep_volume=true")).await;
    assert_eq!(r.status, 204);
    assert!(containers_with_prefix(&server.prefix).is_empty());
    assert_eq!(
        volumes_with_prefix(&server.prefix),
        vec![server.volume("keep")]
    );

    // A create that fails must not take the kept volume with it.
    let r = post(
        &sheds,
        r#"{"name":"keep","repo":"file:///srv/git/missing.git"}"#,
    )
    .await;
    assert_eq!(r.code(), "CLONE_FAILED");
    assert_eq!(
        volumes_with_prefix(&server.prefix),
        vec![server.volume("keep")]
    );
    // Still kept, and listed as such under its shed name.
    let list = get(&sheds).await.json;
    assert_eq!(list["sheds"], serde_json::json!([]), "{list}");
    assert_eq!(list["kept_volumes"][0]["name"], "keep", "{list}");
    assert_eq!(
        list["kept_volumes"][0]["volume"],
        server.volume("keep").as_str()
    );

    // A new shed of the same name picks the workspace up again.
    assert_eq!(post(&sheds, r#"{"name":"keep"}"#).await.status, 201);
    let list = get(&sheds).await.json;
    assert_eq!(list["kept_volumes"], serde_json::json!([]), "{list}");
    assert_eq!(
        docker(&["exec", &server.container("keep"), "cat", "/workspace/notes"]),
        "precious"
    );
}

#[tokio::test]
async fn a_name_taken_meanwhile_is_409_and_leaves_one_shed() {
    // Two servers sharing one prefix race to create the same shed, several
    // times from each side: exactly one wins each round and nothing is orphaned.
    let a = TestServer::start();
    let b = TestServer::start_sharing(ServerOpts {
        prefix: Some(a.prefix.clone()),
        ..Default::default()
    });
    for round in 0..5 {
        let name = format!("race{round}");
        let body = format!(r#"{{"name":"{name}"}}"#);
        let (ua, ub) = (a.url("/api/sheds"), b.url("/api/sheds"));
        let (r1, r2, r3, r4) = tokio::join!(
            post(&ua, &body),
            post(&ub, &body),
            post(&ua, &body),
            post(&ub, &body)
        );
        let replies = [r1, r2, r3, r4];
        let won = replies.iter().filter(|r| r.status == 201).count();
        assert_eq!(
            won,
            1,
            "round {round}: {:?}",
            replies.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        for r in replies.iter().filter(|r| r.status != 201) {
            assert_eq!((r.status, r.code()), (409, "SHED_EXISTS"), "{}", r.json);
        }
        assert!(is_running(&a.container(&name)));
    }
    assert_eq!(containers_with_prefix(&a.prefix).len(), 5);
    assert_eq!(volumes_with_prefix(&a.prefix).len(), 5);
}

#[tokio::test]
async fn isolation_prefixes_keep_servers_apart() {
    let a = TestServer::start();
    let b = TestServer::start();
    make_shed(&a, "same").await;
    make_shed(&b, "same").await;
    make_shed(&a, "only-a").await;

    let names = |r: &common::http::Reply| -> Vec<String> {
        r.json["sheds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&get(&a.url("/api/sheds")).await), ["only-a", "same"]);
    assert_eq!(names(&get(&b.url("/api/sheds")).await), ["same"]);
    let r = get(&b.url("/api/sheds/only-a")).await;
    assert_eq!(r.code(), "SHED_NOT_FOUND");

    assert_eq!(delete(&b.url("/api/sheds/same")).await.status, 204);
    assert!(is_running(&a.container("same")));
    assert_eq!(get(&a.url("/api/sheds/same")).await.status, 200);
}

#[tokio::test]
async fn docker_unreachable_is_503_and_recovers_by_itself() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let server =
        TestServer::start_with_config(format!("docker_host = \"unix://{}\"\n", socket.display()));
    let r = get(&server.url("/api/health")).await;
    assert_eq!(r.status, 200);
    let r = get(&server.url("/api/sheds")).await;
    assert_eq!((r.status, r.code()), (503, "DOCKER_UNAVAILABLE"));
    assert!(!r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains(socket.to_str().unwrap()));
    let r = post(&server.url("/api/sheds"), r#"{"name":"x"}"#).await;
    assert_eq!((r.status, r.code()), (503, "DOCKER_UNAVAILABLE"));

    // Docker "comes back": the socket path now reaches the real engine.
    std::os::unix::fs::symlink("/var/run/docker.sock", &socket).unwrap();
    let r = get(&server.url("/api/sheds")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let r = post(&server.url("/api/sheds"), r#"{"name":"back"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);

    // And goes away again mid-use.
    std::fs::remove_file(&socket).unwrap();
    let r = get(&server.url("/api/sheds/back")).await;
    assert_eq!((r.status, r.code()), (503, "DOCKER_UNAVAILABLE"));
}

#[tokio::test]
async fn api_token_guards_every_endpoint_but_health() {
    let server = TestServer::start_with_config("api_token = \"correct-horse-battery\"\n");
    assert_eq!(get(&server.url("/api/health")).await.status, 200);
    for auth in [
        None,
        Some("Bearer wrong-token-value"),
        Some("correct-horse-battery"),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        for (method, path, body) in [
            ("GET", "/api/info", None),
            ("GET", "/api/sheds", None),
            ("POST", "/api/sheds", Some(r#"{"name":"x"}"#)),
            ("GET", "/api/sheds/x", None),
            ("DELETE", "/api/sheds/x", None),
            ("POST", "/api/sheds/x/start", None),
            ("POST", "/api/sheds/x/stop", None),
        ] {
            let r = send(method, &server.url(path), body, &headers).await;
            assert_eq!(
                (r.status, r.code()),
                (401, "UNAUTHORIZED"),
                "{method} {path} {auth:?}"
            );
        }
    }
    assert!(containers_with_prefix(&server.prefix).is_empty());
    let good = [("authorization", "Bearer correct-horse-battery")];
    let r = send("GET", &server.url("/api/sheds"), None, &good).await;
    assert_eq!(r.status, 200);
}

/// A Docker engine that accepts connections and never answers, counting
/// them; its thread stays parked in `accept` until the test process ends.
struct HungEngine {
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
}

impl HungEngine {
    fn start() -> HungEngine {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().map_while(Result::ok) {
                held.push(conn);
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        HungEngine {
            accepted,
            _dir: dir,
            socket,
        }
    }

    fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_engine_gets_503_at_once_while_a_reconnect_is_under_way() {
    require_docker();
    let engine = HungEngine::start();
    let server = TestServer::start_with_config(format!(
        "docker_host = \"unix://{}\"\n",
        engine.socket.display()
    ));
    // The first request starts a reconnect, which hangs on the engine.
    let before = engine.connections();
    let url = server.url("/api/sheds");
    let first = tokio::spawn(async move { get(&url).await });
    assert!(
        wait_until(std::time::Duration::from_secs(10), || engine.connections()
            > before),
        "the first request never reached the engine"
    );
    // Requests arriving meanwhile are answered without waiting for it.
    let others = (0..4).map(|_| get_owned(server.url("/api/sheds")));
    for r in futures_util::future::join_all(others).await {
        assert_eq!(
            (r.status, r.code()),
            (503, "DOCKER_UNAVAILABLE"),
            "{}",
            r.json
        );
    }
    assert!(
        !first.is_finished(),
        "the later requests waited for the first reconnect to end"
    );
    let r = first.await.unwrap();
    assert_eq!((r.status, r.code()), (503, "DOCKER_UNAVAILABLE"));
}

async fn get_owned(url: String) -> common::http::Reply {
    get(&url).await
}

/// A container of the test image holding a volume busy; removed on drop.
struct VolumeHolder(String);

impl VolumeHolder {
    fn start(name: String, volume: &str) -> VolumeHolder {
        let mount = format!("{volume}:/x");
        docker(&[
            "run", "-d", "--name", &name, "-v", &mount, TEST_IMAGE, "sleep", "infinity",
        ]);
        VolumeHolder(name)
    }
}

impl Drop for VolumeHolder {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

#[tokio::test]
async fn a_half_done_delete_says_what_is_left_and_its_volume_is_never_adopted() {
    let (server, sheds) = start();
    assert_eq!(post(&sheds, r#"{"name":"busy"}"#).await.status, 201);
    let volume = server.volume("busy");
    docker(&[
        "exec",
        &server.container("busy"),
        "sh",
        "-c",
        "echo old > /workspace/notes",
    ]);
    let holder = VolumeHolder::start(format!("{}-holder", server.prefix), &volume);

    // The container goes, the volume cannot: the answer says so, and how to finish.
    let r = delete(&server.url("/api/sheds/busy")).await;
    assert_eq!(
        (r.status, r.code()),
        (409, "DELETE_INCOMPLETE"),
        "{}",
        r.json
    );
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&volume), "{message}");
    assert!(message.contains("docker volume rm"), "{message}");
    assert!(!docker_ok(&["inspect", &server.container("busy")]));
    assert!(docker_ok(&["volume", "inspect", &volume]));

    // A new shed of that name does not silently get the old /workspace.
    let r = post(&sheds, r#"{"name":"busy"}"#).await;
    assert_eq!((r.status, r.code()), (409, "VOLUME_CONFLICT"), "{}", r.json);
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&volume) && message.contains("keep_volume"),
        "{message}"
    );
    assert!(containers_with_prefix(&server.prefix).is_empty());

    // Keeping it on purpose (delete again with keep_volume) lets it be reused.
    drop(holder);
    let r = delete(&server.url("/api/sheds/busy?keep_volume=true")).await;
    assert_eq!(r.status, 204, "{}", r.json);
    assert_eq!(post(&sheds, r#"{"name":"busy"}"#).await.status, 201);
    assert_eq!(
        docker(&["exec", &server.container("busy"), "cat", "/workspace/notes"]),
        "old"
    );

    // And a plain delete again finishes the job: nothing is left.
    let holder = VolumeHolder::start(format!("{}-holder2", server.prefix), &volume);
    let r = delete(&server.url("/api/sheds/busy")).await;
    assert_eq!(r.code(), "DELETE_INCOMPLETE", "{}", r.json);
    drop(holder);
    let r = delete(&server.url("/api/sheds/busy")).await;
    assert_eq!(r.status, 204, "{}", r.json);
    assert!(volumes_with_prefix(&server.prefix).is_empty());
    let r = delete(&server.url("/api/sheds/busy")).await;
    assert_eq!(r.code(), "SHED_NOT_FOUND");
}

#[tokio::test]
async fn a_shed_named_by_an_older_prefixed_server_is_found_and_renamed() {
    // Before PREFIX.shed-NAME, a prefixed server named containers
    // PREFIX-shed-NAME; such a shed must stay reachable.
    let server = TestServer::start();
    make_shed(&server, "old").await;
    let legacy = format!("{}-shed-old", server.prefix);
    docker(&["rename", &server.container("old"), &legacy]);

    let r = get(&server.url("/api/sheds/old")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert!(docker_ok(&["inspect", &server.container("old")]));
    assert!(!docker_ok(&["inspect", &legacy]));
    // A create of the same name sees it rather than making a second one.
    let r = post(&server.url("/api/sheds"), r#"{"name":"old"}"#).await;
    assert_eq!(r.code(), "SHED_EXISTS", "{}", r.json);

    // Renamed again, it is found by the first command that needs it.
    docker(&["rename", &server.container("old"), &legacy]);
    let r = post(&server.url("/api/sheds/old/sessions"), r#"{"name":"work"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let r = delete(&server.url("/api/sheds/old")).await;
    assert_eq!(r.status, 204, "{}", r.json);
    assert!(containers_with_prefix(&server.prefix).is_empty());
    assert!(volumes_with_prefix(&server.prefix).is_empty());
}
