//! An in-memory [`InteractiveExec`] for gateway tests: processes are tasks
//! on in-memory pipes, scripted to echo, exit with a code, die by a signal
//! or never end.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

use super::{ExecRequest, ExecSession, InteractiveExec, OutputChunk, TtySize};
use crate::server::backend::BackendError;

/// How the next started process behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// Writes its stdin back to stdout until EOF, then exits 0.
    Echo,
    /// Writes `stdout` and `stderr`, then exits with `code`.
    Exit {
        /// What it prints.
        stdout: Vec<u8>,
        /// What it complains.
        stderr: Vec<u8>,
        /// Its exit code.
        code: i64,
    },
    /// Runs until a signal kills it; `ignore_hup` survives SIGHUP, like a
    /// process that has to be killed after a hang-up.
    Forever {
        /// Whether SIGHUP is ignored.
        ignore_hup: bool,
    },
}

/// What the fake saw of one process.
#[derive(Debug, Clone)]
pub struct Record {
    /// The shed it ran in.
    pub shed: String,
    /// How it was started.
    pub request: ExecRequest,
    /// Resizes, in order.
    pub resizes: Vec<TtySize>,
    /// Signal names, in order.
    pub signals: Vec<String>,
}

struct Process {
    record: Mutex<Record>,
    /// The exit code once it has ended.
    exit: watch::Sender<Option<i64>>,
}

/// Sheds that exist, and processes started in them.
#[derive(Default)]
pub struct FakeExec {
    sheds: Mutex<HashSet<String>>,
    script: Mutex<Option<Script>>,
    processes: Mutex<HashMap<String, Arc<Process>>>,
    started: Mutex<Vec<String>>,
    next_id: AtomicU64,
}

impl FakeExec {
    /// A fake where shed `shed` exists.
    pub fn with_shed(shed: &str) -> Arc<FakeExec> {
        let fake = FakeExec::default();
        fake.sheds.lock().unwrap().insert(shed.into());
        Arc::new(fake)
    }

    /// Makes every later process behave as `script` (the default is echo).
    pub fn script(&self, script: Script) {
        *self.script.lock().unwrap() = Some(script);
    }

    /// What the fake saw of the `n`th started process, waiting up to five
    /// seconds for it to start.
    pub async fn record(&self, n: usize) -> Record {
        let process = self.process(n).await;
        let record = process.record.lock().unwrap().clone();
        record
    }

    /// How many processes were started.
    pub fn started(&self) -> usize {
        self.started.lock().unwrap().len()
    }

    /// Waits up to five seconds for the `n`th process to have received
    /// `count` signals, and returns them.
    pub async fn signals(&self, n: usize, count: usize) -> Vec<String> {
        self.wait_for(n, |r| r.signals.clone(), |s| s.len() >= count)
            .await
    }

    /// Waits up to five seconds for the `n`th process to have received
    /// `count` resizes, and returns them.
    pub async fn resizes(&self, n: usize, count: usize) -> Vec<TtySize> {
        self.wait_for(n, |r| r.resizes.clone(), |s| s.len() >= count)
            .await
    }

    /// What `read` reads from the `n`th process's record once `done` holds,
    /// or after five seconds, for the caller's assertion.
    async fn wait_for<T>(
        &self,
        n: usize,
        read: impl Fn(&Record) -> T,
        done: impl Fn(&T) -> bool,
    ) -> T {
        let process = self.process(n).await;
        for _ in 0..500 {
            let found = read(&process.record.lock().unwrap());
            if done(&found) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let last = read(&process.record.lock().unwrap());
        last
    }

    async fn process(&self, n: usize) -> Arc<Process> {
        for _ in 0..500 {
            let id = self.started.lock().unwrap().get(n).cloned();
            if let Some(id) = id {
                return self.processes.lock().unwrap()[&id].clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("process {n} never started");
    }

    fn lookup(&self, id: &str) -> Result<Arc<Process>, BackendError> {
        self.processes
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| BackendError::Internal(format!("no exec {id}")))
    }
}

/// The number of a signal name, as `kill -l` has it.
fn signal_number(name: &str) -> Option<i64> {
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "TERM" => 15,
        _ => return None,
    })
}

#[async_trait]
impl InteractiveExec for FakeExec {
    async fn ensure_running(&self, shed: &str, _wait: Duration) -> Result<(), BackendError> {
        if self.sheds.lock().unwrap().contains(shed) {
            Ok(())
        } else {
            Err(BackendError::ShedNotFound(shed.into()))
        }
    }

    async fn start(&self, shed: &str, request: ExecRequest) -> Result<ExecSession, BackendError> {
        if !self.sheds.lock().unwrap().contains(shed) {
            return Err(BackendError::ShedNotFound(shed.into()));
        }
        let id = format!("exec-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (exit, _) = watch::channel(None);
        let process = Arc::new(Process {
            record: Mutex::new(Record {
                shed: shed.into(),
                request,
                resizes: Vec::new(),
                signals: Vec::new(),
            }),
            exit,
        });
        self.processes
            .lock()
            .unwrap()
            .insert(id.clone(), process.clone());
        self.started.lock().unwrap().push(id.clone());

        let (input, mut stdin) = tokio::io::duplex(64 * 1024);
        let (out, output) = mpsc::channel::<std::io::Result<OutputChunk>>(16);
        let script = self.script.lock().unwrap().clone().unwrap_or(Script::Echo);
        let mut exited = process.exit.subscribe();
        tokio::spawn(async move {
            // Killed by a signal: `exit` already holds the code.
            let killed = async move {
                let _ = exited.wait_for(Option::is_some).await;
            };
            let run = async {
                match script {
                    Script::Echo => {
                        let mut buf = vec![0; 4096];
                        loop {
                            match stdin.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    let chunk = OutputChunk::Stdout(buf[..n].to_vec());
                                    if out.send(Ok(chunk)).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        0
                    }
                    Script::Exit {
                        stdout,
                        stderr,
                        code,
                    } => {
                        if !stdout.is_empty() {
                            let _ = out.send(Ok(OutputChunk::Stdout(stdout))).await;
                        }
                        if !stderr.is_empty() {
                            let _ = out.send(Ok(OutputChunk::Stderr(stderr))).await;
                        }
                        code
                    }
                    Script::Forever { .. } => std::future::pending().await,
                }
            };
            tokio::select! {
                code = run => {
                    process.exit.send_if_modified(|exit| {
                        let first = exit.is_none();
                        exit.get_or_insert(code);
                        first
                    });
                }
                () = killed => {}
            }
            // Dropping `out` closes the output: the process has ended.
        });
        let output = futures_util::stream::unfold(output, |mut output| async move {
            output.recv().await.map(|chunk| (chunk, output))
        });
        Ok(ExecSession {
            id,
            output: Box::pin(output),
            input: Box::pin(input),
        })
    }

    async fn resize(&self, id: &str, size: TtySize) -> Result<(), BackendError> {
        self.lookup(id)?.record.lock().unwrap().resizes.push(size);
        Ok(())
    }

    async fn signal(&self, _shed: &str, id: &str, signal: &str) -> Result<(), BackendError> {
        let process = self.lookup(id)?;
        let ignore_hup = {
            let mut record = process.record.lock().unwrap();
            record.signals.push(signal.to_string());
            // The script is gone with the task; what it was is in the fake.
            drop(record);
            matches!(
                *self.script.lock().unwrap(),
                Some(Script::Forever { ignore_hup: true })
            )
        };
        if signal == "HUP" && ignore_hup {
            return Ok(());
        }
        if let Some(number) = signal_number(signal) {
            process.exit.send_if_modified(|exit| {
                let first = exit.is_none();
                exit.get_or_insert(128 + number);
                first
            });
        }
        Ok(())
    }

    async fn exit_code(&self, id: &str) -> Result<Option<i64>, BackendError> {
        Ok(*self.lookup(id)?.exit.borrow())
    }
}
