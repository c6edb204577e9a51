//! An in-memory [`ShedBackend`] for fast handler tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;

use crate::api::{SessionInfo, SessionStatus, Shed, ShedStatus};
use crate::server::backend::{BackendError, NewSession, NewShed, ShedBackend};

/// Sheds kept in a map; no containers involved.
#[derive(Default)]
pub struct FakeBackend {
    sheds: Mutex<BTreeMap<String, Shed>>,
    /// Per shed: session name to the text "on screen".
    sessions: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Per (shed, session): the exit status of a command that exited at
    /// once (a command `exit N`).
    exited: Mutex<BTreeMap<(String, String), i32>>,
    /// Sheds whose session queries never answer, like a paused container.
    hanging: Mutex<std::collections::HashSet<String>>,
}

impl FakeBackend {
    /// Makes every session query of `shed` hang forever.
    pub fn hang(&self, shed: &str) {
        self.hanging.lock().unwrap().insert(shed.into());
    }

    async fn running(&self, shed: &str) -> Result<(), BackendError> {
        if self.hanging.lock().unwrap().contains(shed) {
            std::future::pending::<()>().await;
        }
        match self.sheds.lock().unwrap().get(shed) {
            None => Err(BackendError::ShedNotFound(shed.into())),
            Some(s) if s.status != ShedStatus::Running => {
                Err(BackendError::ShedNotRunning(shed.into()))
            }
            Some(_) => Ok(()),
        }
    }

    fn info(shed: &str, name: &str) -> SessionInfo {
        let now = Utc::now();
        SessionInfo {
            name: name.into(),
            shed: shed.into(),
            server: "fake".into(),
            created_at: now,
            last_activity: now,
            idle_seconds: 0,
            attached: 0,
            windows: 1,
            current_command: "bash".into(),
            cwd: "/workspace".into(),
            status: SessionStatus::Active,
            exited: false,
            exit_status: None,
            source: crate::api::SessionSource::Exec,
            agent: Default::default(),
        }
    }

    fn with_session<T>(
        &self,
        shed: &str,
        session: &str,
        f: impl FnOnce(&mut String) -> T,
    ) -> Result<T, BackendError> {
        let mut all = self.sessions.lock().unwrap();
        all.get_mut(shed)
            .and_then(|s| s.get_mut(session))
            .map(f)
            .ok_or_else(|| BackendError::SessionNotFound {
                shed: shed.into(),
                session: session.into(),
            })
    }
}

impl FakeBackend {
    fn with_shed<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Shed) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut sheds = self.sheds.lock().unwrap();
        let shed = sheds
            .get_mut(name)
            .ok_or_else(|| BackendError::ShedNotFound(name.into()))?;
        f(shed)
    }
}

#[async_trait]
impl ShedBackend for FakeBackend {
    async fn list(&self) -> Result<Vec<Shed>, BackendError> {
        Ok(self.sheds.lock().unwrap().values().cloned().collect())
    }

    async fn get(&self, name: &str) -> Result<Shed, BackendError> {
        self.with_shed(name, |s| Ok(s.clone()))
    }

    async fn create(&self, new: NewShed) -> Result<Shed, BackendError> {
        let mut sheds = self.sheds.lock().unwrap();
        if sheds.contains_key(&new.name) {
            return Err(BackendError::ShedExists(new.name.clone()));
        }
        let shed = Shed {
            name: new.name.clone(),
            status: ShedStatus::Running,
            created_at: Utc::now(),
            image: new.image,
            repo: new.repo.map(|r| r.shown),
            container_id: format!("fake-{}", new.name),
            server: "fake".into(),
            idle_stop_after: new.idle_stop_after,
            warnings: Vec::new(),
        };
        sheds.insert(new.name, shed.clone());
        Ok(shed)
    }

    async fn delete(&self, name: &str, _keep_volume: bool) -> Result<(), BackendError> {
        self.sheds
            .lock()
            .unwrap()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| BackendError::ShedNotFound(name.into()))
    }

    async fn start(&self, name: &str) -> Result<Shed, BackendError> {
        self.with_shed(name, |s| match s.status {
            ShedStatus::Running => Err(BackendError::AlreadyRunning(name.into())),
            _ => {
                s.status = ShedStatus::Running;
                Ok(s.clone())
            }
        })
    }

    async fn list_sessions(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError> {
        self.running(shed).await?;
        let all = self.sessions.lock().unwrap();
        let exited = self.exited.lock().unwrap();
        let info = |name: &String| {
            let mut info = Self::info(shed, name);
            if let Some(status) = exited.get(&(shed.to_string(), name.clone())) {
                info.exited = true;
                info.exit_status = Some(*status);
            }
            info
        };
        Ok(all
            .get(shed)
            .map(|s| s.keys().map(info).collect())
            .unwrap_or_default())
    }

    async fn create_session(
        &self,
        shed: &str,
        new: NewSession,
    ) -> Result<SessionInfo, BackendError> {
        self.running(shed).await?;
        let mut all = self.sessions.lock().unwrap();
        let sessions = all.entry(shed.into()).or_default();
        if sessions.contains_key(&new.name) {
            return Err(BackendError::SessionExists {
                shed: shed.into(),
                session: new.name,
            });
        }
        let mut info = Self::info(shed, &new.name);
        let status = new.command.as_deref().and_then(|c| c.strip_prefix("exit "));
        if let Some(status) = status.and_then(|s| s.trim().parse().ok()) {
            self.exited
                .lock()
                .unwrap()
                .insert((shed.into(), new.name.clone()), status);
            info.exited = true;
            info.exit_status = Some(status);
        }
        sessions.insert(new.name.clone(), new.command.unwrap_or_default());
        Ok(info)
    }

    async fn kill_session(&self, shed: &str, session: &str) -> Result<(), BackendError> {
        self.running(shed).await?;
        self.exited
            .lock()
            .unwrap()
            .remove(&(shed.to_string(), session.to_string()));
        let mut all = self.sessions.lock().unwrap();
        all.get_mut(shed)
            .and_then(|s| s.remove(session))
            .map(|_| ())
            .ok_or_else(|| BackendError::SessionNotFound {
                shed: shed.into(),
                session: session.into(),
            })
    }

    async fn session_output(
        &self,
        shed: &str,
        session: &str,
        lines: usize,
    ) -> Result<String, BackendError> {
        self.running(shed).await?;
        let key = (shed.to_string(), session.to_string());
        if let Some(status) = self.exited.lock().unwrap().get(&key) {
            return Err(BackendError::session_exited(shed, session, Some(*status)));
        }
        self.with_session(shed, session, |screen| {
            let all: Vec<&str> = screen.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        })
    }

    async fn send_input(
        &self,
        shed: &str,
        session: &str,
        text: &str,
        enter: bool,
    ) -> Result<(), BackendError> {
        self.running(shed).await?;
        let key = (shed.to_string(), session.to_string());
        if let Some(status) = self.exited.lock().unwrap().get(&key) {
            return Err(BackendError::session_exited(shed, session, Some(*status)));
        }
        self.with_session(shed, session, |screen| {
            screen.push_str(text);
            if enter {
                screen.push('\n');
            }
        })
    }

    async fn stop(&self, name: &str) -> Result<Shed, BackendError> {
        self.with_shed(name, |s| match s.status {
            ShedStatus::Running => {
                s.status = ShedStatus::Stopped;
                Ok(s.clone())
            }
            _ => Err(BackendError::AlreadyStopped(name.into())),
        })
    }

    /// Answers a hooks install (`sh -c SCRIPT sh MARKER [PATH MODE CONTENT]...`)
    /// as if every file was written; nothing else runs here.
    async fn exec_as_root(
        &self,
        shed: &str,
        cmd: Vec<String>,
        _limit: std::time::Duration,
    ) -> Result<crate::server::backend::CommandOutput, BackendError> {
        self.running(shed).await?;
        let stdout = cmd
            .get(5..)
            .unwrap_or_default()
            .chunks(3)
            .map(|file| format!("installed\t{}\n", file[0]))
            .collect::<String>();
        Ok(crate::server::backend::CommandOutput {
            exit_code: 0,
            stdout: stdout.into_bytes(),
            stderr: Vec::new(),
        })
    }
}
