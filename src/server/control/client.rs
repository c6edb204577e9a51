//! A tmux control-mode client over any byte stream pair: a Docker exec's
//! streams in production, a local `tmux -C` child in tests.
//!
//! One driver task owns both streams. It writes command lines in the order
//! requests arrive and matches `%begin` blocks to them first in, first out,
//! which is how tmux answers one client. The subscription's latest value is
//! kept parsed in a `watch` channel (a newer model supersedes an unread one,
//! so no queue can grow); other notifications go to a bounded queue that
//! drops when full.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::model::{Model, ModelError, ModelFormat};
use super::protocol::{Event, LineSplitter, Parser, Reply, MAX_REPLY_LINES};
use super::quote::{self, QuoteError};
use super::CONTROL_SESSION;
use crate::server::tmux::{self, TmuxFailure};

/// The name of the one subscription a client makes.
pub const SUBSCRIPTION: &str = "shed";

/// Longest wait for one command's answer (and for attaching); a tmux that
/// misses it is treated as hung and the client closes.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for tmux to take one command line.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may hear nothing from tmux before its owner should
/// [`ControlClient::probe`] it: an idle tmux sends nothing, so without a
/// question a hung one would look idle and its stale model would be served.
/// Every idle channel is probed this often: some 3 small commands a second
/// at 100 idle sheds, and a hung tmux is noticed within about 34 s. Each
/// probe goes through dockerd: at 10 s, the probes of 100 idle sheds cost
/// dockerd and containerd about 0.5% of a core.
pub const PROBE_AFTER: Duration = Duration::from_secs(30);

/// Longest wait for the answer to a probe; a tmux that misses it is hung
/// and the client closes. Shorter than [`COMMAND_TIMEOUT`]: a probe is the
/// cheapest command there is, so a slow answer means a stuck tmux.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Most command lines written and not yet answered.
pub const MAX_IN_FLIGHT: usize = 32;

/// Most requests waiting to be written.
pub const REQUEST_QUEUE: usize = 64;

/// Most unread notifications; later ones are dropped and counted.
pub const NOTIFICATION_QUEUE: usize = 256;

/// Input bytes per `send-keys -H` command (each becomes three line bytes).
pub const SEND_KEYS_CHUNK: usize = 4096;

/// Bytes read from tmux at a time. The buffer lives as long as the
/// channel, one per running shed, so it is small: a long subscription line
/// just takes a few more reads.
const READ_CHUNK: usize = 8 * 1024;

/// Why a client stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// tmux closed the output stream (e.g. the server was killed).
    Eof,
    /// tmux sent `%exit`, with its reason.
    Exit(Option<String>),
    /// Reading or writing failed.
    Io(String),
    /// tmux did not take or answer a command in time.
    Timeout,
    /// [`ControlClient::shutdown`] or every handle dropped.
    Shutdown,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Eof => f.write_str("tmux closed the channel"),
            Self::Exit(Some(r)) => write!(f, "tmux exited: {r}"),
            Self::Exit(None) => f.write_str("tmux exited"),
            Self::Io(e) => write!(f, "i/o error: {e}"),
            Self::Timeout => f.write_str("tmux stopped answering"),
            Self::Shutdown => f.write_str("shut down"),
        }
    }
}

/// Where a client is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientState {
    /// Waiting for tmux to attach the client to its session.
    Attaching,
    /// Commands are being answered.
    Attached,
    /// Finished; every later request fails with this reason.
    Closed(CloseReason),
}

/// How a control-mode request failed.
#[derive(Debug, Clone, Error)]
pub enum ControlError {
    /// The client is closed (or closed while waiting).
    #[error("tmux control client closed: {0}")]
    Closed(CloseReason),
    /// No answer in time (see [`ClientConfig::timeout`]); the client is closed.
    #[error("tmux did not answer within {0:?}")]
    Timeout(Duration),
    /// [`REQUEST_QUEUE`] requests are already waiting.
    #[error("too many tmux commands waiting")]
    Busy,
    /// tmux answered with `%error`.
    #[error("tmux: {message}")]
    Tmux {
        /// The failure as the exec path classifies it.
        failure: TmuxFailure,
        /// tmux's message.
        message: String,
    },
    /// An argument could not be written as tmux syntax.
    #[error(transparent)]
    Quote(#[from] QuoteError),
    /// The model format is invalid.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The hidden control session cannot be created or killed through here.
    #[error("session name {0:?} is reserved")]
    Reserved(String),
    /// A pane target that is not a tmux pane id.
    #[error("{0:?} is not a pane id (%N)")]
    BadTarget(String),
}

/// Whether `id` is a tmux pane id, `%` and digits: the only pane targets
/// this client builds from values it did not write itself.
pub fn is_pane_id(id: &str) -> bool {
    id.strip_prefix('%')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A notification other than output and the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A session was created or destroyed.
    SessionsChanged,
    /// The client is attached to a session.
    SessionChanged {
        /// `$N`.
        id: String,
        /// Its name.
        name: String,
    },
    /// tmux is closing the client.
    Exit(Option<String>),
}

/// What [`ControlClient::new_session`] creates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionSpec {
    /// Session name.
    pub name: String,
    /// Run by `/bin/sh -c --` instead of an interactive shell; the pane
    /// then remains when it ends.
    pub command: Option<String>,
    /// Working directory.
    pub cwd: String,
    /// Extra environment, `KEY=VALUE` each.
    pub env: Vec<(String, String)>,
    /// Session user options set on the same line as the create.
    pub options: Vec<(String, String)>,
}

/// Options for [`ControlClient::start`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Which values the model holds.
    pub format: ModelFormat,
    /// Longest wait for attaching and for each answer.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            format: ModelFormat::default(),
            timeout: COMMAND_TIMEOUT,
        }
    }
}

/// What the hidden session runs when the control client creates it: a
/// process that only waits. tmux starts it directly, without a shell; the
/// interactive shell it ran before cost some 3 MB of RSS in every shed. In
/// an image without `sleep` the session ends at once, no channel attaches,
/// and the exec path serves.
pub const HIDDEN_COMMAND: [&str; 2] = ["sleep", "2147483647"];

/// The argv (after the tmux binary and any `-L`/`-S` socket options) that
/// starts a control client attached to the hidden session, creating it
/// (running [`HIDDEN_COMMAND`]) if needed.
pub fn attach_args() -> Vec<String> {
    ["-C", "new-session", "-A", "-s", CONTROL_SESSION]
        .into_iter()
        .chain(HIDDEN_COMMAND)
        .map(String::from)
        .collect()
}

struct Request {
    line: String,
    commands: usize,
    reply: oneshot::Sender<Vec<Reply>>,
}

struct Pending {
    commands: usize,
    replies: Vec<Reply>,
    reply: oneshot::Sender<Vec<Reply>>,
}

struct Shared {
    state: watch::Sender<ClientState>,
    model: watch::Sender<Option<Arc<Model>>>,
    notifications: mpsc::Sender<Notification>,
    dropped: AtomicU64,
    format: ModelFormat,
    timeout: Duration,
    /// When the driver started; [`Shared::last_read`] counts from it.
    born: Instant,
    /// Milliseconds from `born` to the latest read from tmux.
    last_read: AtomicU64,
}

impl Shared {
    fn heard(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_read.store(ms, Ordering::Relaxed);
    }
}

/// A handle on one control-mode client; cheap to share behind an `Arc`.
pub struct ControlClient {
    requests: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    notifications: Mutex<Option<mpsc::Receiver<Notification>>>,
    /// Why the owner stops the driver, once it does.
    stop: watch::Sender<Option<CloseReason>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ControlClient {
    /// Starts the driver and waits until tmux has attached the client (the
    /// first command sent earlier is refused with "no current client"),
    /// then turns off pane output for it.
    pub async fn start<R, W>(
        reader: R,
        writer: W,
        config: ClientConfig,
    ) -> Result<Self, ControlError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (requests, request_rx) = mpsc::channel(REQUEST_QUEUE);
        let (notify_tx, notify_rx) = mpsc::channel(NOTIFICATION_QUEUE);
        let (stop, stop_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            state: watch::channel(ClientState::Attaching).0,
            model: watch::channel(None).0,
            notifications: notify_tx,
            dropped: AtomicU64::new(0),
            format: config.format,
            timeout: config.timeout,
            born: Instant::now(),
            last_read: AtomicU64::new(0),
        });
        let task = tokio::spawn(drive(reader, writer, request_rx, shared.clone(), stop_rx));
        let client = Self {
            requests,
            shared,
            notifications: Mutex::new(Some(notify_rx)),
            stop,
            task: Mutex::new(Some(task)),
        };
        let mut state = client.shared.state.subscribe();
        // The watch guard is not Send: reduce it to an owned result at once.
        let timeout = client.shared.timeout;
        let attached = tokio::time::timeout(timeout, async {
            match state
                .wait_for(|s| !matches!(s, ClientState::Attaching))
                .await
            {
                Ok(s) => match &*s {
                    ClientState::Closed(reason) => Err(reason.clone()),
                    _ => Ok(()),
                },
                Err(_) => Err(CloseReason::Shutdown),
            }
        })
        .await;
        match attached {
            Err(_) => {
                client.close_for(CloseReason::Timeout);
                return Err(ControlError::Timeout(timeout));
            }
            Ok(Err(reason)) => return Err(ControlError::Closed(reason)),
            Ok(Ok(())) => {}
        }
        // The hidden session's shell would otherwise stream its output, and
        // so would every pane if the client ever switched.
        client.run(&["refresh-client", "-f", "no-output"]).await?;
        Ok(client)
    }

    /// The client's state now.
    pub fn state(&self) -> ClientState {
        self.shared.state.borrow().clone()
    }

    /// Waits until the client closes and says why.
    pub async fn closed(&self) -> CloseReason {
        let mut state = self.shared.state.subscribe();
        let reason = match state
            .wait_for(|s| matches!(s, ClientState::Closed(_)))
            .await
        {
            Ok(s) => match &*s {
                ClientState::Closed(r) => r.clone(),
                _ => CloseReason::Shutdown,
            },
            Err(_) => CloseReason::Shutdown,
        };
        reason
    }

    /// The model from the latest subscription value (`None` before the
    /// first); watch it to hear of every change.
    pub fn model(&self) -> watch::Receiver<Option<Arc<Model>>> {
        self.shared.model.subscribe()
    }

    /// The notification queue; only the first call gets it.
    pub fn notifications(&self) -> Option<mpsc::Receiver<Notification>> {
        self.notifications.lock().ok()?.take()
    }

    /// How long since tmux last sent anything (an answer, a notification,
    /// a subscription value); see [`PROBE_AFTER`].
    pub fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.shared.last_read.load(Ordering::Relaxed));
        self.shared.born.elapsed().saturating_sub(last)
    }

    /// Asks tmux the cheapest question there is and waits at most `limit`
    /// for the answer; without one in time the client closes (as after any
    /// command timeout), so its model is no longer served.
    pub async fn probe(&self, limit: Duration) -> Result<(), ControlError> {
        let mut replies = self
            .request_within(&[["display-message", "-p", ""]], limit)
            .await?;
        let reply = replies
            .pop()
            .ok_or(ControlError::Closed(CloseReason::Shutdown))?;
        check(reply).map(drop)
    }

    /// Notifications dropped because the queue was full.
    pub fn dropped_notifications(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Sends one line of commands (see [`quote::sequence`]) and returns
    /// the answer to each command tmux ran: it stops at the first that fails.
    pub async fn request<S: AsRef<str>, C: AsRef<[S]>>(
        &self,
        commands: &[C],
    ) -> Result<Vec<Reply>, ControlError> {
        self.request_within(commands, self.shared.timeout).await
    }

    /// [`ControlClient::request`] waiting at most `timeout` for the answer.
    async fn request_within<S: AsRef<str>, C: AsRef<[S]>>(
        &self,
        commands: &[C],
        timeout: Duration,
    ) -> Result<Vec<Reply>, ControlError> {
        let line = quote::sequence(commands)?;
        if let ClientState::Closed(reason) = self.state() {
            return Err(ControlError::Closed(reason));
        }
        let (tx, rx) = oneshot::channel();
        let request = Request {
            line,
            commands: commands.len(),
            reply: tx,
        };
        self.requests.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ControlError::Busy,
            mpsc::error::TrySendError::Closed(_) => ControlError::Closed(self.close_reason()),
        })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(replies)) => Ok(replies),
            Ok(Err(_)) => Err(ControlError::Closed(self.close_reason())),
            Err(_) => {
                // Answers are matched in order, so one that never comes would
                // misattribute every later one: start over instead.
                self.close_for(CloseReason::Timeout);
                Err(ControlError::Timeout(timeout))
            }
        }
    }

    /// Runs one command; an `%error` answer becomes [`ControlError::Tmux`].
    pub async fn run<S: AsRef<str>>(&self, parts: &[S]) -> Result<Reply, ControlError> {
        let mut replies = self.request(&[parts]).await?;
        let reply = replies
            .pop()
            .ok_or(ControlError::Closed(CloseReason::Shutdown))?;
        check(reply)
    }

    /// Subscribes to the model format; tmux older than 3.2 refuses.
    pub async fn subscribe(&self) -> Result<(), ControlError> {
        let spec = format!("{SUBSCRIPTION}::{}", self.shared.format.format());
        self.run(&["refresh-client", "-B", &spec]).await.map(drop)
    }

    /// The model as tmux has it now, for a read that must see a write made
    /// just before it (the subscription is checked only once a second).
    pub async fn snapshot(&self) -> Result<Model, ControlError> {
        let format = self.shared.format.format();
        let reply = self.run(&["display-message", "-p", "--", &format]).await?;
        Ok(self.shared.format.parse(&reply.text(), reply.truncated))
    }

    /// The last `lines` lines of a session's active pane.
    pub async fn capture_pane(&self, session: &str, lines: usize) -> Result<String, ControlError> {
        let lines = lines.min(MAX_REPLY_LINES);
        let start = format!("-{lines}");
        let target = tmux::pane_target(session);
        let reply = self
            .run(&["capture-pane", "-p", "-J", "-t", &target, "-S", &start])
            .await?;
        Ok(tmux::last_lines(&reply.text(), lines))
    }

    /// The visible screen of the pane with tmux id `pane` (`%N`), without
    /// scrollback; only such ids are accepted, never a name from a user.
    pub async fn capture_screen(&self, pane: &str) -> Result<String, ControlError> {
        if !is_pane_id(pane) {
            return Err(ControlError::BadTarget(pane.chars().take(32).collect()));
        }
        Ok(self.run(&["capture-pane", "-p", "-t", pane]).await?.text())
    }

    /// Types `bytes` into a session's active pane exactly, then Enter if
    /// asked. Sent as hex (`send-keys -H`), so no byte is ever parsed.
    pub async fn send_input(
        &self,
        session: &str,
        bytes: &[u8],
        enter: bool,
    ) -> Result<(), ControlError> {
        let target = tmux::pane_target(session);
        for chunk in bytes.chunks(SEND_KEYS_CHUNK) {
            let mut cmd = vec![
                "send-keys".to_string(),
                "-t".into(),
                target.clone(),
                "-H".into(),
            ];
            cmd.extend(quote::hex_keys(chunk));
            self.run(&cmd).await?;
        }
        if enter {
            self.run(&["send-keys", "-t", &target, "Enter"]).await?;
        }
        Ok(())
    }

    /// Creates a detached session; with a command, its pane remains when
    /// the command ends so its last output can still be read.
    pub async fn new_session(&self, spec: &SessionSpec) -> Result<(), ControlError> {
        if spec.name == CONTROL_SESSION {
            return Err(ControlError::Reserved(spec.name.clone()));
        }
        // -s and -c are expanded as formats by tmux 3.3a; -e and the
        // command are not.
        let mut create: Vec<String> = vec![
            "new-session".into(),
            "-d".into(),
            "-s".into(),
            quote::format_literal(&spec.name),
            "-c".into(),
            quote::format_literal(&spec.cwd),
        ];
        for (key, value) in &spec.env {
            create.push("-e".into());
            create.push(format!("{key}={value}"));
        }
        let mut commands = vec![create];
        for (key, value) in &spec.options {
            // set-option's -t is a pane target: `=NAME` alone would be
            // read as a window name.
            commands.push(vec![
                "set-option".into(),
                "-t".into(),
                tmux::pane_target(&spec.name),
                key.clone(),
                value.clone(),
            ]);
        }
        if let Some(command) = &spec.command {
            // `--` twice: neither tmux nor sh may read a command starting
            // with `-` as options.
            commands[0].extend(["--", "/bin/sh", "-c", "--", command].map(String::from));
            // On the same line, so tmux sets it before it can notice the
            // command exit; skipped by tmux when new-session failed.
            commands.push(
                [
                    "set-option",
                    "-w",
                    "-t",
                    &tmux::pane_target(&spec.name),
                    "remain-on-exit",
                    "on",
                ]
                .map(String::from)
                .to_vec(),
            );
        }
        for reply in self.request(&commands).await? {
            check(reply)?;
        }
        Ok(())
    }

    /// Kills a session by exact name.
    pub async fn kill_session(&self, session: &str) -> Result<(), ControlError> {
        if session == CONTROL_SESSION {
            return Err(ControlError::Reserved(session.into()));
        }
        self.run(&["kill-session", "-t", &tmux::session_target(session)])
            .await
            .map(drop)
    }

    /// Detaches from tmux and waits (briefly) for the driver to finish.
    pub async fn shutdown(&self) {
        self.close();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    fn close(&self) {
        self.close_for(CloseReason::Shutdown);
    }

    /// Stops the driver, which then reports `reason` (the first one given).
    fn close_for(&self, reason: CloseReason) {
        self.stop.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }

    fn close_reason(&self) -> CloseReason {
        match self.state() {
            ClientState::Closed(r) => r,
            _ => CloseReason::Shutdown,
        }
    }
}

impl Drop for ControlClient {
    fn drop(&mut self) {
        self.close();
    }
}

/// An `%error` reply as a typed error.
fn check(reply: Reply) -> Result<Reply, ControlError> {
    if reply.ok {
        return Ok(reply);
    }
    let message = reply.text();
    Err(ControlError::Tmux {
        failure: tmux::classify(1, &message),
        message,
    })
}

async fn drive<R, W>(
    mut reader: R,
    mut writer: W,
    mut requests: mpsc::Receiver<Request>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<CloseReason>>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut splitter = LineSplitter::new();
    let mut parser = Parser::new();
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut attached = false;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut events = Vec::new();
    let reason = loop {
        tokio::select! {
            biased;
            // Fires on shutdown and when every handle is gone.
            _ = stop.changed() => {
                break stop.borrow().clone().unwrap_or(CloseReason::Shutdown);
            }
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break CloseReason::Eof,
                    Ok(n) => n,
                    Err(e) => break CloseReason::Io(e.to_string()),
                };
                shared.heard();
                splitter.push(&buf[..n], |line, cut| events.extend(parser.line(line, cut)));
                let mut exit = None;
                for event in events.drain(..) {
                    if let Some(reason) = handle(event, &shared, &mut pending, &mut attached) {
                        exit = Some(reason);
                    }
                }
                if let Some(reason) = exit {
                    break reason;
                }
            }
            request = requests.recv(), if attached && pending.len() < MAX_IN_FLIGHT => {
                let Some(request) = request else { break CloseReason::Shutdown };
                let mut line = request.line.into_bytes();
                line.push(b'\n');
                let write = async {
                    writer.write_all(&line).await?;
                    writer.flush().await
                };
                match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break CloseReason::Io(e.to_string()),
                    Err(_) => break CloseReason::Timeout,
                }
                pending.push_back(Pending {
                    commands: request.commands.max(1),
                    replies: Vec::new(),
                    reply: request.reply,
                });
            }
        }
    };
    // Dropping the pending senders fails their waiters with this reason.
    shared.state.send_replace(ClientState::Closed(reason));
    // A closed channel knows nothing current; the exec path takes over.
    shared.model.send_replace(None);
    drop(pending);
    // An empty stdin tells tmux to detach; a dead tmux makes this fail fast.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
}

/// Applies one event; returns why to stop, if it ends the client.
fn handle(
    event: Event,
    shared: &Shared,
    pending: &mut VecDeque<Pending>,
    attached: &mut bool,
) -> Option<CloseReason> {
    match event {
        Event::Reply(reply) => {
            // Blocks before any request was written answer the attach itself.
            let front = pending.front_mut()?;
            let ok = reply.ok;
            front.replies.push(reply);
            if !ok || front.replies.len() >= front.commands {
                let done = pending.pop_front()?;
                let _ = done.reply.send(done.replies);
            }
        }
        Event::Subscription {
            name,
            value,
            truncated,
        } => {
            if name == SUBSCRIPTION {
                let model = shared.format.parse(&value, truncated);
                shared.model.send_replace(Some(Arc::new(model)));
            }
        }
        Event::SessionChanged { id, name } => {
            if !*attached {
                *attached = true;
                shared.state.send_replace(ClientState::Attached);
            }
            notify(shared, Notification::SessionChanged { id, name });
        }
        Event::SessionsChanged => notify(shared, Notification::SessionsChanged),
        Event::Exit(reason) => {
            notify(shared, Notification::Exit(reason.clone()));
            return Some(CloseReason::Exit(reason));
        }
        Event::Output | Event::Other(_) => {}
    }
    None
}

fn notify(shared: &Shared, n: Notification) {
    if shared.notifications.try_send(n).is_err() {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncBufReadExt, BufReader};

    /// A fake tmux on an in-memory pipe: the test plays tmux's side.
    async fn pair() -> (
        tokio::task::JoinHandle<Result<ControlClient, ControlError>>,
        BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
        tokio::io::WriteHalf<tokio::io::DuplexStream>,
    ) {
        let (ours, theirs) = duplex(1 << 16);
        let (r, w) = tokio::io::split(ours);
        let client = tokio::spawn(ControlClient::start(r, w, ClientConfig::default()));
        let (tr, tw) = tokio::io::split(theirs);
        (client, BufReader::new(tr), tw)
    }

    #[tokio::test]
    async fn waits_for_attach_then_matches_replies_in_order() {
        let (client, mut from, mut to) = pair().await;
        to.write_all(b"%begin 1 1 0\n%end 1 1 0\n%session-changed $0 _shed\n")
            .await
            .unwrap();
        let mut line = String::new();
        from.read_line(&mut line).await.unwrap();
        assert_eq!(line, "refresh-client -f no-output\n");
        to.write_all(b"%begin 1 2 1\n%end 1 2 1\n").await.unwrap();
        let client = Arc::new(client.await.unwrap().unwrap());
        assert_eq!(client.state(), ClientState::Attached);

        let c = client.clone();
        let kill = tokio::spawn(async move { c.kill_session("x").await });
        line.clear();
        from.read_line(&mut line).await.unwrap();
        assert_eq!(line, "kill-session -t '=x'\n");
        to.write_all(b"%begin 1 3 1\ncan't find session: x\n%error 1 3 1\n")
            .await
            .unwrap();
        match kill.await.unwrap() {
            Err(ControlError::Tmux { failure, .. }) => {
                assert_eq!(failure, TmuxFailure::NoSuchSession)
            }
            other => panic!("{other:?}"),
        }

        // A failed first command ends a sequence early.
        let c = client.clone();
        let spec = SessionSpec {
            name: "a".into(),
            command: Some("true".into()),
            cwd: "/".into(),
            env: vec![],
            options: vec![],
        };
        let create = tokio::spawn(async move { c.new_session(&spec).await });
        line.clear();
        from.read_line(&mut line).await.unwrap();
        assert!(line.contains(" ; set-option"), "{line}");
        to.write_all(b"%begin 1 4 1\nduplicate session: a\n%error 1 4 1\n")
            .await
            .unwrap();
        assert!(matches!(
            create.await.unwrap(),
            Err(ControlError::Tmux {
                failure: TmuxFailure::Duplicate,
                ..
            })
        ));

        assert!(matches!(
            client.kill_session(CONTROL_SESSION).await,
            Err(ControlError::Reserved(_))
        ));

        // A subscription value updates the model.
        let mut model = client.model();
        to.write_all(b"%subscription-changed shed $0 - - - : \x1ew\x1f$1\x1f1\x1f2\x1f3\x1f0\x1f1\x1fbash\x1f/\x1f\x1f\x1f\n")
            .await
            .unwrap();
        model.wait_for(|m| m.is_some()).await.unwrap();
        assert!(model.borrow().as_ref().unwrap().get("w").is_some());

        // %exit closes it and fails later requests.
        to.write_all(b"%exit server exited\n").await.unwrap();
        assert_eq!(
            client.closed().await,
            CloseReason::Exit(Some("server exited".into()))
        );
        assert!(matches!(
            client.run(&["list-sessions"]).await,
            Err(ControlError::Closed(_))
        ));
        let mut notes = client.notifications().unwrap();
        assert_eq!(
            notes.recv().await,
            Some(Notification::SessionChanged {
                id: "$0".into(),
                name: "_shed".into()
            })
        );
    }

    #[tokio::test]
    async fn a_reply_that_never_ends_times_out_and_closes() {
        let (ours, theirs) = duplex(1 << 16);
        let (r, w) = tokio::io::split(ours);
        let config = ClientConfig {
            timeout: Duration::from_millis(300),
            ..ClientConfig::default()
        };
        let client = tokio::spawn(ControlClient::start(r, w, config));
        let (tr, mut to) = tokio::io::split(theirs);
        let mut from = BufReader::new(tr);
        to.write_all(b"%session-changed $0 _shed\n").await.unwrap();
        let mut line = String::new();
        from.read_line(&mut line).await.unwrap();
        // A hostile tmux opens a reply and floods it with huge lines.
        to.write_all(b"%begin 1 1 1\n").await.unwrap();
        let flood = tokio::spawn(async move {
            let junk = vec![b'x'; 1 << 16];
            while to.write_all(&junk).await.is_ok() {}
        });
        assert!(matches!(
            client.await.unwrap(),
            Err(ControlError::Timeout(_))
        ));
        drop(from);
        flood.abort();
    }

    #[tokio::test]
    async fn a_tmux_that_stops_answering_fails_its_probe_and_closes() {
        let (client, mut from, mut to) = pair().await;
        to.write_all(b"%session-changed $0 _shed\n").await.unwrap();
        let mut line = String::new();
        from.read_line(&mut line).await.unwrap();
        to.write_all(b"%begin 1 1 1\n%end 1 1 1\n").await.unwrap();
        let client = client.await.unwrap().unwrap();
        assert!(client.quiet_for() < PROBE_AFTER);

        // A live tmux answers the probe.
        let answer = async {
            line.clear();
            from.read_line(&mut line).await.unwrap();
            assert_eq!(line, "display-message -p ''\n");
            to.write_all(b"%begin 1 2 1\n\n%end 1 2 1\n").await.unwrap();
        };
        let (probed, ()) = tokio::join!(client.probe(Duration::from_secs(5)), answer);
        probed.unwrap();
        assert_eq!(client.state(), ClientState::Attached);

        // A hung one (it reads, never writes) does not, and the client closes.
        let started = tokio::time::Instant::now();
        let limit = Duration::from_millis(200);
        assert!(matches!(
            client.probe(limit).await,
            Err(ControlError::Timeout(_))
        ));
        assert!(started.elapsed() >= limit);
        assert_eq!(client.closed().await, CloseReason::Timeout);
        assert!(client.model().borrow().is_none());
    }

    #[tokio::test]
    async fn eof_before_attach_is_an_error() {
        let (client, _from, to) = pair().await;
        drop(to);
        drop(_from);
        assert!(matches!(
            client.await.unwrap(),
            Err(ControlError::Closed(CloseReason::Eof))
        ));
    }
}
