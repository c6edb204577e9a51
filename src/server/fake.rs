//! An in-memory [`ShedBackend`] for fast handler tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;

use crate::api::{Shed, ShedStatus};
use crate::server::backend::{BackendError, NewShed, ShedBackend};

/// Sheds kept in a map; no containers involved.
#[derive(Default)]
pub struct FakeBackend {
    sheds: Mutex<BTreeMap<String, Shed>>,
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
            return Err(BackendError::ShedExists(format!(
                "shed {:?} already exists",
                new.name
            )));
        }
        let shed = Shed {
            name: new.name.clone(),
            status: ShedStatus::Running,
            created_at: Utc::now(),
            image: new.image,
            repo: new.repo.map(|r| r.url),
            container_id: format!("fake-{}", new.name),
            server: "fake".into(),
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

    async fn stop(&self, name: &str) -> Result<Shed, BackendError> {
        self.with_shed(name, |s| match s.status {
            ShedStatus::Running => {
                s.status = ShedStatus::Stopped;
                Ok(s.clone())
            }
            _ => Err(BackendError::AlreadyStopped(name.into())),
        })
    }
}
