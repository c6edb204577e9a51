//! Shed lifecycle over Docker: list, inspect, create (with clone and
//! rollback), delete, start and stop, and the volumes kept on purpose.

use super::*;

impl DockerBackend {
    /// Every shed of this server, sorted by name, in one list call.
    pub(super) async fn list_sheds(&self) -> Result<Vec<Shed>, BackendError> {
        let docker = self.docker().await?;
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![self.naming.filter()],
            )])),
            ..Default::default()
        };
        let containers = docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| docker_error(e, "containers"))?;
        let mut sheds: Vec<Shed> = containers
            .into_iter()
            .map(|c| {
                self.shed_from_parts(
                    &c.labels.unwrap_or_default(),
                    shed_status(c.state.as_ref().map(AsRef::as_ref)),
                    c.image.unwrap_or_default(),
                    c.id.unwrap_or_default(),
                    c.created,
                )
            })
            .filter(|s| !s.name.is_empty())
            .collect();
        sheds.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(sheds)
    }

    /// The volumes kept on purpose that still exist, named by their label
    /// (an older server's volume name does not spell the shed name).
    pub(super) async fn list_kept_volumes(&self) -> Result<Vec<KeptVolume>, BackendError> {
        let records = match std::fs::read_dir(&self.kept_dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let kept_at = e
                        .metadata()
                        .ok()?
                        .modified()
                        .ok()
                        .map(DateTime::<Utc>::from);
                    Some((e.file_name().into_string().ok()?, kept_at))
                })
                .collect::<HashMap<_, _>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(BackendError::Internal(format!(
                    "reading {}: {e}",
                    self.kept_dir.display()
                )))
            }
        };
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let docker = self.docker().await?;
        let opts = ListVolumesOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![self.naming.filter()],
            )])),
        };
        let volumes = docker
            .list_volumes(Some(opts))
            .await
            .map_err(|e| docker_error(e, "volumes"))?
            .volumes
            .unwrap_or_default();
        let mut kept: Vec<KeptVolume> = volumes
            .into_iter()
            .filter_map(|v| {
                let kept_at = *records.get(&v.name)?;
                let name = v.labels.get(&self.naming.label("name"))?.clone();
                Some(KeptVolume {
                    name,
                    volume: v.name,
                    kept_at,
                })
            })
            .collect();
        kept.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(kept)
    }

    /// One shed, from its container.
    pub(super) async fn inspect_shed(&self, name: &str) -> Result<Shed, BackendError> {
        let docker = self.docker().await?;
        let info = self.inspect_required(&docker, name).await?;
        Ok(self.shed_from_inspect(info))
    }

    /// Creates, starts and clones into a new shed; what fails is rolled back.
    pub(super) async fn create_shed(&self, new: NewShed) -> Result<Shed, BackendError> {
        let docker = self.docker().await?;
        if !self
            .creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(new.name.clone())
        {
            return Err(BackendError::ShedBeingCreated(new.name.clone()));
        }
        let _guard = CreatingGuard {
            set: &self.creating,
            name: new.name.clone(),
        };
        let container = self.naming.container(&new.name);
        let volume = self.naming.volume(&new.name);

        if self.inspect(&docker, &new.name).await?.is_some() {
            return Err(BackendError::ShedExists(new.name.clone()));
        }
        match docker.inspect_image(&new.image).await {
            Ok(_) => {}
            Err(e) if status_of(&e) == Some(404) => {
                return Err(BackendError::ImageNotFound(new.image.clone()))
            }
            // Docker's own word that the reference is malformed, e.g. upper case.
            Err(e) if status_of(&e) == Some(400) => {
                return Err(BackendError::BadRequest(format!(
                    "invalid image name {:?}",
                    new.image
                )))
            }
            Err(e) => return Err(docker_error(e, &new.image)),
        }

        // A volume kept by `delete --keep-volume` is reused, and never removed
        // by a rollback: only what this create made is undone. The volume is
        // made by Docker as part of the container create, so the atomic name
        // reservation decides the winner of a race before anything exists,
        // and a loser has nothing to undo. Any other volume in the way (left
        // over by a failed delete, or another server's) is refused.
        let labels = self.labels(&new);
        let made_volume = match docker.inspect_volume(&volume).await {
            Ok(found) => {
                if let Err(refusal) = self.check_adoptable(&new.name, &volume, &found.labels) {
                    // Another server sharing this prefix may be creating the
                    // same shed right now: Docker makes the volume as part of
                    // its container create, a moment before that container can
                    // be inspected. If the container shows up, this create lost
                    // the race; otherwise the volume really is a leftover.
                    if self.container_appears(&docker, &new.name).await? {
                        return Err(BackendError::ShedExists(new.name.clone()));
                    }
                    return Err(refusal);
                }
                false
            }
            Err(e) if status_of(&e) == Some(404) => true,
            Err(e) => return Err(docker_error(e, &volume)),
        };

        let opts = CreateContainerOptions {
            name: Some(container.clone()),
            ..Default::default()
        };
        if let Err(e) = docker
            .create_container(Some(opts), self.container_body(&new, labels))
            .await
        {
            return Err(match status_of(&e) {
                Some(409) => BackendError::ShedExists(new.name.clone()),
                Some(404) => BackendError::ImageNotFound(new.image.clone()),
                _ => docker_error(e, &container),
            });
        }
        if let Err(e) = docker.start_container(&container, None).await {
            self.rollback(&docker, &new.name, true, made_volume).await;
            return Err(docker_error(e, &container));
        }
        if let Err(e) = self.clone_repo(&new).await {
            self.rollback(&docker, &new.name, true, made_volume).await;
            return Err(e);
        }
        match self.inspect(&docker, &new.name).await? {
            Some(info) => {
                // Adopted: from now on the volume belongs to the shed again.
                self.forget_kept(&volume);
                Ok(self.shed_from_inspect(info))
            }
            None => Err(BackendError::Internal(format!(
                "container {container} vanished right after creation"
            ))),
        }
    }

    /// Removes the container and, unless `keep_volume`, its workspace volume.
    pub(super) async fn delete_shed(
        &self,
        name: &str,
        keep_volume: bool,
    ) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let Some(info) = self.inspect(&docker, name).await? else {
            // No container, but maybe the volume a half-done delete left:
            // deleting again finishes the job (or keeps the volume on purpose).
            let volume = self.naming.volume(name);
            return match docker.inspect_volume(&volume).await {
                Ok(found) if self.is_ours(name, &found.labels) => {
                    self.finish_volume(&docker, name, &volume, keep_volume)
                        .await
                }
                Ok(_) => Err(BackendError::ShedNotFound(name.into())),
                Err(e) if status_of(&e) == Some(404) => {
                    Err(BackendError::ShedNotFound(name.into()))
                }
                Err(e) => Err(docker_error(e, &volume)),
            };
        };
        // The volume actually mounted: an older server's shed has its
        // volume under the older name.
        let volume = info
            .mounts
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.destination.as_deref() == Some("/workspace"))
            .and_then(|m| m.name)
            .unwrap_or_else(|| self.naming.volume(name));
        if keep_volume {
            // Recorded first, so no failure can leave a kept volume unrecorded.
            self.record_kept(&volume)?;
        }
        let container = self.naming.container(name);
        let opts = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match docker.remove_container(&container, Some(opts)).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(docker_error(e, &container)),
        }
        self.finish_volume(&docker, name, &volume, keep_volume)
            .await
    }

    /// Starts (or unpauses) a shed that does not run.
    pub(super) async fn start_shed(&self, name: &str) -> Result<Shed, BackendError> {
        let docker = self.docker().await?;
        let info = self.inspect_required(&docker, name).await?;
        let state = info.state.clone().unwrap_or_default();
        let container = self.naming.container(name);
        if state.paused == Some(true) {
            docker
                .unpause_container(&container)
                .await
                .map_err(|e| docker_error(e, &container))?;
        } else if state.running == Some(true) {
            return Err(BackendError::AlreadyRunning(name.into()));
        } else {
            docker
                .start_container(&container, None)
                .await
                .map_err(|e| docker_error(e, &container))?;
        }
        self.inspect_shed(name).await
    }

    /// Stops a running shed.
    pub(super) async fn stop_shed(&self, name: &str) -> Result<Shed, BackendError> {
        let docker = self.docker().await?;
        let info = self.inspect_required(&docker, name).await?;
        let state = info.state.clone().unwrap_or_default();
        if state.running != Some(true) {
            return Err(BackendError::AlreadyStopped(name.into()));
        }
        let container = self.naming.container(name);
        let opts = StopContainerOptions {
            t: Some(STOP_TIMEOUT_SECS),
            ..Default::default()
        };
        docker
            .stop_container(&container, Some(opts))
            .await
            .map_err(|e| docker_error(e, &container))?;
        self.inspect_shed(name).await
    }

    /// Makes sure shed `name` runs: starts it if stopped, then waits up to
    /// `wait` for Docker to report it running.
    pub async fn ensure_running(&self, name: &str, wait: Duration) -> Result<(), BackendError> {
        let shed = self.inspect_shed(name).await?;
        if shed.status == ShedStatus::Running {
            return Ok(());
        }
        match self.start_shed(name).await {
            Ok(_) => self.restore_after_start(name).await,
            Err(BackendError::AlreadyRunning(_)) => {}
            Err(e) => return Err(e),
        }
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if self.inspect_shed(name).await?.status == ShedStatus::Running {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Go on regardless: the exec itself reports what is wrong, if anything.
        Ok(())
    }

    fn labels(&self, new: &NewShed) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (self.naming.marker().to_string(), "true".to_string()),
            (self.naming.label("name"), new.name.clone()),
            (
                self.naming.label("created"),
                Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            ),
            (
                self.naming.label("repo"),
                new.repo
                    .as_ref()
                    .map(|r| r.shown.clone())
                    .unwrap_or_default(),
            ),
            (self.naming.label("server"), self.server_name.clone()),
        ]);
        // A label, so the choice outlives this server process.
        if let Some(secs) = new.idle_stop_after {
            labels.insert(self.naming.label("idle_stop_after"), secs.to_string());
        }
        labels
    }

    fn container_body(
        &self,
        new: &NewShed,
        labels: HashMap<String, String>,
    ) -> ContainerCreateBody {
        let volume_labels = HashMap::from([
            (self.naming.marker().to_string(), "true".to_string()),
            (self.naming.label("name"), new.name.clone()),
        ]);
        let mut mounts = vec![Mount {
            source: Some(self.naming.volume(&new.name)),
            target: Some("/workspace".into()),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                labels: Some(volume_labels),
                ..Default::default()
            }),
            ..Default::default()
        }];
        mounts.extend(self.mounts.iter().cloned());
        let mut env = vec![
            "LANG=C.UTF-8".to_string(),
            format!("SHED_NAME={}", new.name),
        ];
        env.extend(self.env.iter().cloned());
        ContainerCreateBody {
            image: Some(new.image.clone()),
            hostname: Some(new.name.clone()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            working_dir: Some("/workspace".into()),
            user: self.container_user.clone(),
            env: Some(env),
            labels: Some(labels),
            host_config: Some(HostConfig {
                // An init reaps the zombies that agents and shells leave behind.
                init: Some(true),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                mounts: Some(mounts),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Removes what a failed create made. Errors are logged, not returned:
    /// the caller is already reporting the failure that started the rollback.
    async fn rollback(&self, docker: &Docker, name: &str, container: bool, volume: bool) {
        if container {
            let opts = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            if let Err(e) = docker
                .remove_container(&self.naming.container(name), Some(opts))
                .await
            {
                tracing::error!(shed = name, error = %e, "rollback: removing container failed");
            }
        }
        if volume {
            if let Err(e) = docker
                .remove_volume(&self.naming.volume(name), None::<RemoveVolumeOptions>)
                .await
            {
                tracing::error!(shed = name, error = %e, "rollback: removing volume failed");
            }
        }
    }

    async fn clone_repo(&self, new: &NewShed) -> Result<(), BackendError> {
        let Some(repo) = &new.repo else {
            return Ok(());
        };
        let cmd = vec![
            "git".to_string(),
            "clone".into(),
            "--".into(),
            repo.url.clone(),
            format!("/workspace/{}", repo.dir),
        ];
        // No prompt may wait for credentials nobody will type.
        let env = vec![
            "GIT_TERMINAL_PROMPT=0".to_string(),
            "GIT_SSH_COMMAND=ssh -o BatchMode=yes".into(),
        ];
        let output = self
            .exec_capture_within(&new.name, cmd, env, CLONE_TIMEOUT)
            .await?
            .ok_or_else(|| BackendError::CloneFailed {
                repo: repo.shown.clone(),
                detail: "timed out".into(),
            })?;
        if output.exit_code == 0 {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let detail = match output.exit_code {
            126 | 127 => "git is not installed in the image".to_string(),
            _ => tail(repo.redact(&text).trim(), ERROR_TAIL_BYTES),
        };
        Err(BackendError::CloneFailed {
            repo: repo.shown.clone(),
            detail,
        })
    }

    /// Whether shed `name`'s container exists, or appears within
    /// [`CREATE_RACE_GRACE`].
    async fn container_appears(&self, docker: &Docker, name: &str) -> Result<bool, BackendError> {
        let deadline = tokio::time::Instant::now() + CREATE_RACE_GRACE;
        loop {
            if self.inspect(docker, name).await?.is_some() {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Errors unless an existing volume may become shed `name`'s workspace:
    /// it must be this server's and kept on purpose with `--keep-volume`.
    fn check_adoptable(
        &self,
        name: &str,
        volume: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), BackendError> {
        if !self.is_ours(name, labels) {
            return Err(BackendError::VolumeConflict(format!(
                "a volume named {volume} exists but was not made for shed {name:?} by this \
                 server (its labels name another isolation prefix or shed); it is not adopted. \
                 Remove it on the server with `docker volume rm {volume}` if it is not needed, \
                 or choose another shed name"
            )));
        }
        if !self.is_kept(volume) {
            return Err(BackendError::VolumeConflict(format!(
                "volume {volume} is left over from an earlier shed {name:?} that was not \
                 deleted with --keep-volume, so it is not adopted. Remove it with \
                 DELETE /api/sheds/{name} (or `docker volume rm {volume}` on the server), or \
                 keep it for reuse with DELETE /api/sheds/{name}?keep_volume=true; then create \
                 again"
            )));
        }
        Ok(())
    }

    /// The record of a volume kept on purpose.
    fn kept_record(&self, volume: &str) -> PathBuf {
        self.kept_dir.join(volume)
    }

    fn is_kept(&self, volume: &str) -> bool {
        self.kept_record(volume).is_file()
    }

    fn record_kept(&self, volume: &str) -> Result<(), BackendError> {
        crate::files::write_private(&self.kept_record(volume), b"")
            .map_err(|e| BackendError::Internal(format!("recording kept volume {volume}: {e}")))
    }

    fn forget_kept(&self, volume: &str) {
        match std::fs::remove_file(self.kept_record(volume)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(volume, error = %e, "removing a kept-volume record failed"),
        }
    }

    /// The volume part of a delete, once the container is gone: keep it on
    /// purpose (recorded), or remove it, saying what is left if that fails.
    async fn finish_volume(
        &self,
        docker: &Docker,
        name: &str,
        volume: &str,
        keep_volume: bool,
    ) -> Result<(), BackendError> {
        if keep_volume {
            return self.record_kept(volume);
        }
        match docker
            .remove_volume(volume, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) if status_of(&e) == Some(409) => {
                return Err(BackendError::DeleteIncomplete(format!(
                    "shed {name:?}'s container was removed, but its volume {volume} is still in \
                     use by another container and was not: stop what uses it, then delete the \
                     shed again (or run `docker volume rm {volume}` on the server). Until then \
                     a new shed {name:?} cannot be created"
                )))
            }
            Err(e) => return Err(docker_error(e, volume)),
        }
        self.forget_kept(volume);
        Ok(())
    }
}
