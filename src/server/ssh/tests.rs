//! Gateway tests without Docker: a real russh client against the gateway on
//! 127.0.0.1, with processes from [`FakeExec`].

use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Msg};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, Sig};
use tokio::net::TcpListener;

use super::keys::KeyPolicy;
use super::limits::Limits;
use super::Gateway;
use crate::server::exec::fake::{FakeExec, Script};
use crate::server::exec::{InteractiveExec, TtySize};

const SHED: &str = "demo";

struct TrustAll;

impl client::Handler for TrustAll {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A gateway over `fake` on a fresh port, and a client logged in as `user`.
async fn login(fake: Arc<FakeExec>, user: &str) -> client::Handle<TrustAll> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        login_grace: Duration::from_secs(30),
        max_connections: 10,
        max_unauthenticated: 10,
        max_unauthenticated_per_ip: 10,
        max_channels_per_connection: 10,
    };
    let host_key = PrivateKey::from(Ed25519Keypair::from_seed(&[1; 32]));
    let exec: Arc<dyn InteractiveExec> = fake;
    let gateway = Arc::new(Gateway::new(exec, host_key, KeyPolicy::AnyKey, limits));
    tokio::spawn(gateway.serve(Arc::new(listener)));

    let config = Arc::new(client::Config::default());
    let mut session = client::connect(config, addr, TrustAll).await.unwrap();
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[2; 32]));
    let auth = session
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .unwrap();
    assert!(auth.success(), "{auth:?}");
    session
}

/// A fake whose processes behave as `script`, and a client session and
/// channel with an accepted `exec` of `command` in [`SHED`], started.
async fn run(
    script: Script,
    command: &str,
) -> (Arc<FakeExec>, client::Handle<TrustAll>, Channel<Msg>) {
    let fake = FakeExec::with_shed(SHED);
    fake.script(script);
    let session = login(fake.clone(), SHED).await;
    let mut channel = session.channel_open_session().await.unwrap();
    channel.exec(true, command).await.unwrap();
    assert!(answer(&mut channel).await, "exec {command:?}");
    fake.record(0).await;
    (fake, session, channel)
}

/// The next message that answers a request: `true` for success.
async fn answer(channel: &mut Channel<Msg>) -> bool {
    loop {
        match next(channel).await {
            Some(ChannelMsg::Success) => return true,
            Some(ChannelMsg::Failure) => return false,
            Some(_) => {}
            None => panic!("channel closed before the answer"),
        }
    }
}

async fn next(channel: &mut Channel<Msg>) -> Option<ChannelMsg> {
    tokio::time::timeout(Duration::from_secs(10), channel.wait())
        .await
        .expect("the gateway answers within 10 s")
}

/// How a session ended, as the client saw it.
#[derive(Debug, Default)]
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<u32>,
    signal: Option<Sig>,
}

/// Reads the channel to its end.
async fn outcome(channel: &mut Channel<Msg>) -> Outcome {
    let mut out = Outcome::default();
    while let Some(msg) = next(channel).await {
        match msg {
            ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, .. } => out.stderr.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => out.signal = Some(signal_name),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn pty_term_and_size_reach_the_exec_and_resizes_follow() {
    let fake = FakeExec::with_shed(SHED);
    let session = login(fake.clone(), SHED).await;
    let mut channel = session.channel_open_session().await.unwrap();
    channel
        .request_pty(true, "xterm-256color", 132, 43, 0, 0, &[])
        .await
        .unwrap();
    assert!(answer(&mut channel).await, "pty-req");
    channel.request_shell(true).await.unwrap();
    assert!(answer(&mut channel).await, "shell");
    let record = fake.record(0).await;
    assert_eq!(record.shed, SHED);
    assert_eq!(
        record.request.tty,
        Some(TtySize {
            cols: 132,
            rows: 43
        })
    );
    assert!(record
        .request
        .env
        .contains(&"TERM=xterm-256color".to_string()));
    assert!(record.request.env.contains(&format!("SHED_NAME={SHED}")));
    assert!(record.request.cmd.last().unwrap().contains("bash -l"));

    channel.window_change(100, 30, 0, 0).await.unwrap();
    let resizes = fake.resizes(0, 1).await;
    assert_eq!(
        resizes,
        vec![TtySize {
            cols: 100,
            rows: 30
        }]
    );

    // The echo process answers, and ends with its stdin.
    channel.data(&b"hello"[..]).await.unwrap();
    channel.eof().await.unwrap();
    let out = outcome(&mut channel).await;
    assert_eq!(out.stdout, b"hello");
    assert_eq!(out.status, Some(0));
}

#[tokio::test]
async fn exit_codes_and_stderr_reach_the_client() {
    let (fake, _session, mut channel) = run(
        Script::Exit {
            stdout: b"out".to_vec(),
            stderr: b"err".to_vec(),
            code: 7,
        },
        "exit 7",
    )
    .await;
    let out = outcome(&mut channel).await;
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"out"[..], &b"err"[..])
    );
    assert_eq!(out.status, Some(7));
    assert!(out.signal.is_none());
    let record = fake.record(0).await;
    assert_eq!(record.request.cmd, ["/bin/sh", "-c", "exit 7"]);
    assert_eq!(record.request.tty, None);
}

#[tokio::test]
async fn a_death_by_signal_is_reported_as_an_exit_signal() {
    let (_fake, _session, mut channel) = run(
        Script::Exit {
            stdout: Vec::new(),
            stderr: Vec::new(),
            code: 128 + 9,
        },
        "kill -9 $$",
    )
    .await;
    let out = outcome(&mut channel).await;
    assert!(matches!(out.signal, Some(Sig::KILL)), "{out:?}");
    assert_eq!(out.status, None);
}

#[tokio::test]
async fn signals_are_forwarded_to_the_process() {
    let (fake, _session, mut channel) =
        run(Script::Forever { ignore_hup: false }, "sleep infinity").await;
    channel.signal(Sig::INT).await.unwrap();
    assert_eq!(fake.signals(0, 1).await, ["INT"]);
    let out = outcome(&mut channel).await;
    assert!(matches!(out.signal, Some(Sig::INT)), "{out:?}");
}

#[tokio::test]
async fn a_client_hang_up_sends_hup_then_kill() {
    let (fake, session, channel) = run(
        Script::Forever { ignore_hup: true },
        "trap '' HUP; sleep infinity",
    )
    .await;
    drop(channel);
    session
        .disconnect(russh::Disconnect::ByApplication, "", "")
        .await
        .unwrap();
    assert_eq!(fake.signals(0, 2).await, ["HUP", "KILL"]);
}

#[tokio::test]
async fn a_hang_up_that_ends_the_process_sends_no_kill() {
    let (fake, _session, channel) =
        run(Script::Forever { ignore_hup: false }, "sleep infinity").await;
    channel.close().await.unwrap();
    assert_eq!(fake.signals(0, 1).await, ["HUP"]);
    tokio::time::sleep(crate::server::exec::HANGUP_GRACE + Duration::from_millis(500)).await;
    assert_eq!(fake.signals(0, 2).await, ["HUP"]);
}

#[tokio::test]
async fn refused_requests_get_channel_failure() {
    let fake = FakeExec::with_shed(SHED);
    fake.script(Script::Forever { ignore_hup: false });
    let session = login(fake.clone(), SHED).await;
    let mut channel = session.channel_open_session().await.unwrap();
    channel.set_env(true, "LANG", "xx_XX.UTF-8").await.unwrap();
    assert!(!answer(&mut channel).await, "env");
    channel
        .request_x11(true, false, "MIT-MAGIC-COOKIE-1", "00", 0)
        .await
        .unwrap();
    assert!(!answer(&mut channel).await, "x11");
    channel.request_subsystem(true, "sftp").await.unwrap();
    assert!(!answer(&mut channel).await, "sftp");
    // Signals and resizes want no reply (OpenSSH and russh send them so);
    // one before the process is dropped, not saved up for it.
    channel.signal(Sig::INT).await.unwrap();

    channel.exec(true, "sleep infinity").await.unwrap();
    assert!(answer(&mut channel).await, "exec");
    channel.exec(true, "true").await.unwrap();
    assert!(!answer(&mut channel).await, "a second exec");
    channel.request_shell(true).await.unwrap();
    assert!(!answer(&mut channel).await, "a shell after exec");
    channel
        .request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await
        .unwrap();
    assert!(!answer(&mut channel).await, "pty-req after start");
    channel.signal(Sig::TERM).await.unwrap();
    assert_eq!(
        fake.signals(0, 1).await,
        ["TERM"],
        "only the signal sent after exec"
    );
    assert_eq!(fake.started(), 1);
}

#[tokio::test]
async fn an_unknown_shed_is_one_line_and_exit_1() {
    let fake = FakeExec::with_shed(SHED);
    let session = login(fake.clone(), "ghost").await;
    let mut channel = session.channel_open_session().await.unwrap();
    channel.exec(true, "true").await.unwrap();
    // Accepted, so that OpenSSH shows the gateway's own words and exits 1.
    assert!(answer(&mut channel).await);
    let out = outcome(&mut channel).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err, "shed: no shed named \"ghost\" on this server\r\n");
    assert_eq!(out.status, Some(1));
    assert_eq!(fake.started(), 0);
}
