//! shed-server: the HTTP API over sheds in Docker.

pub mod agent;
pub mod autostop;
pub mod backend;
pub mod coalesce;
pub mod config;
pub mod control;
pub mod docker;
pub mod error;
pub mod events;
pub mod exec;
#[cfg(test)]
mod fake;
pub mod hooks;
pub mod http;
pub mod install;
pub mod listener;
pub mod notify;
pub mod repo;
pub mod sessions;
pub mod snapshot;
pub mod ssh;
pub mod stop;
pub mod tls;
pub mod tmux;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::ServerInfo;
use config::ServerConfig;

/// The shed-server version reported by `/api/info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Binds the listeners and serves until SIGTERM or Ctrl-C, finishing
/// in-flight requests before returning.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    if config.insecure_no_auth && !config.bind.is_loopback() && config.api_token.is_none() {
        tracing::warn!(
            bind = %config.bind,
            "insecure_no_auth: the API is exposed without authentication"
        );
    }
    let backend = docker::DockerBackend::new(&config)
        .map_err(anyhow::Error::msg)
        .context("preparing the Docker backend")?;
    let backend = Arc::new(backend);
    match backend.docker().await {
        Ok(_) => tracing::info!(endpoint = %config.docker_endpoint(), "connected to Docker"),
        Err(e) => {
            tracing::warn!(error = %e, "Docker is not reachable yet; requests get 503 until it is")
        }
    }
    // One bus for the Docker watcher, the control channels and /api/events;
    // the channels start after the first connect, so the running sheds can
    // be listed at once.
    let events = Arc::new(events::EventBus::new(config.event_ring_size));
    // Subscribed before the channels start, so no change is missed; it
    // ends when the bus closes at shutdown.
    let _notify = notify::spawn(&config.notify, &config.name, events.clone())
        .context("starting notifications")?;
    backend.start_channels(events.clone());
    backend.start_snapshots(events.clone());

    let host_key =
        ssh::keys::load_or_create_host_key(&config.data_dir).context("loading the SSH host key")?;
    tracing::info!(fingerprint = %ssh::keys::fingerprint(host_key.public_key()), "SSH host key");
    let ssh_public = host_key
        .public_key()
        .to_openssh()
        .context("encoding the SSH host key")?;
    let policy = if config.allow_any_key {
        tracing::warn!("allow_any_key: the SSH gateway accepts ANY key");
        ssh::keys::KeyPolicy::AnyKey
    } else {
        let path = config.authorized_keys_path();
        if !path.is_file() {
            tracing::warn!(path = %path.display(), "authorized_keys not found; no SSH key can log in until it exists");
        }
        ssh::keys::KeyPolicy::AuthorizedKeys(path)
    };
    let ssh_addr = SocketAddr::new(config.bind, config.ssh_port);
    // A taken SSH port does not stop the API: the supervisor keeps trying
    // to bind it, and /api/health says the gateway is down until it can.
    let ssh_listener = match ssh::bind(ssh_addr) {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::error!(error = %e, "the SSH gateway cannot listen yet; serving the API and retrying");
            None
        }
    };
    let ssh_local = match &ssh_listener {
        Some(listener) => listener.local_addr().context("reading the SSH address")?,
        None => ssh_addr,
    };

    let addr = SocketAddr::new(config.bind, config.http_port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP API to {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;

    docker::watch::spawn(backend.clone(), events.clone());
    let bus = events.clone();

    // A bound listener queues connections from here on: up. Otherwise down
    // until the supervisor binds it.
    let gateway_health = if ssh_listener.is_some() {
        ssh::supervisor::GatewayHealth::up()
    } else {
        ssh::supervisor::GatewayHealth::default()
    };
    let state = http::AppState {
        backend: backend.clone(),
        info: ServerInfo {
            name: config.name.clone(),
            version: VERSION.into(),
            http_port: local.port(),
            ssh_port: ssh_local.port(),
        },
        default_image: config.default_image.clone(),
        api_token: config.api_token.as_deref().map(Arc::from),
        api_token_read_only: config.api_token_read_only.as_deref().map(Arc::from),
        tls: config.tls_enabled(),
        exec: backend.clone(),
        terminals: http::terminal::Terminals::default(),
        ssh_host_key: Some(ssh_public),
        sessions: sessions::Sessions::new(
            backend.clone(),
            config.max_sessions_per_shed,
            sessions::PER_SHED_TIMEOUT,
        ),
        gateway: gateway_health.clone(),
        events,
        install_hooks: config.install_hooks,
    };
    let gateway = ssh::Gateway::new(
        backend.clone(),
        host_key,
        policy,
        ssh::limits::Limits::from_config(&config),
    );
    autostop::spawn(
        backend.clone(),
        bus.clone(),
        gateway.presence(),
        config.idle_stop_after,
        config.control_mode,
    );
    ssh::spawn_supervised(Arc::new(gateway), ssh_addr, ssh_listener, gateway_health);
    let tls = http_tls(&config)?;
    let signal = shutdown_signal();
    let shutdown = async move {
        signal.await;
        // Event streams never finish by themselves; end them so the drain
        // waits only for real requests.
        bus.close();
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(name = %config.name, http = %local, ssh = %ssh_local, scheme, "shed-server listening");
    // Scripts and tests read the actual ports from this line when a port is 0.
    println!(
        "shed-server {} listening on {scheme}://{local} ssh://{ssh_local}",
        config.name
    );

    let router = http::with_host_guard(http::router(state), host_policy(&config, tls.is_some()));
    listener::serve(
        listener,
        router,
        tls,
        listener::Limits::from_config(&config),
        shutdown,
    )
    .await;
    tracing::info!("shed-server stopped");
    Ok(())
}

/// Installs the SIGTERM and Ctrl-C handlers at once, so that a signal sent
/// as soon as the "listening" line is out is caught; completes on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    async fn received(sig: std::io::Result<Signal>) {
        match sig {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    }
    let term = received(signal(SignalKind::terminate()));
    let ctrl_c = received(signal(SignalKind::interrupt()));
    async move {
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutting down; finishing in-flight requests");
    }
}

/// The TLS acceptor for the HTTP API when `tls` is on, logging the
/// certificate's fingerprint for clients to pin.
fn http_tls(config: &ServerConfig) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    if !config.tls_enabled() {
        if !config.bind.is_loopback() {
            tracing::warn!(bind = %config.bind, "tls = \"off\": the API token travels in clear text");
        }
        return Ok(None);
    }
    let cert = tls::load_or_create_certificate(&config.data_dir, &tls::certificate_names(config))
        .context("loading the TLS certificate")?;
    tracing::info!(fingerprint = %cert.fingerprint(), "serving the HTTP API over TLS");
    Ok(Some(cert.acceptor().context("setting up TLS")?))
}

/// Which Host headers the API answers: besides loopback names and the bind
/// address, the server's name, the machine's hostname and `allowed_hosts`.
fn host_policy(config: &ServerConfig, tls: bool) -> http::HostPolicy {
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    let names = [config.name.clone(), hostname]
        .into_iter()
        .chain(config.allowed_hosts.iter().cloned());
    http::HostPolicy::new(config.bind, tls, names)
}

/// Most malloc arenas glibc may make; see [`tune_allocator`].
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub const MALLOC_ARENAS: i32 = 2;

/// Bounds glibc's allocator for a long-running server; call it before any
/// thread starts. glibc gives each thread that meets lock contention an
/// arena of its own, up to eight per core, and memory freed into one arena
/// serves no other: with tokio's workers and blocking threads moving the
/// channels' buffers around, the server's RSS grew with the number of
/// arenas rather than with what it holds (bench row 14). Two arenas keep
/// contention low on a server that is mostly idle. An operator's own
/// `MALLOC_ARENA_MAX` wins. Other platforms and allocators keep their
/// defaults.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets allocator parameters; it is called
        // before the runtime starts any thread.
        if unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) } != 1 {
            tracing::debug!("glibc refused M_ARENA_MAX");
        }
    }
}

/// Raises the soft limit on open files to the hard limit, so a busy server
/// runs out of descriptors as late as the system allows.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
            return;
        }
        if limit.rlim_cur >= limit.rlim_max {
            return;
        }
        let old = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot raise the open-file limit");
            return;
        }
        tracing::debug!(
            from = old,
            to = limit.rlim_max,
            "raised the open-file limit"
        );
    }
}
