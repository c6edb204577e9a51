//! shed-server: the HTTP API over sheds in Docker.

pub mod backend;
pub mod coalesce;
pub mod config;
pub mod docker;
pub mod error;
#[cfg(test)]
mod fake;
pub mod http;
pub mod repo;
pub mod sessions;
pub mod ssh;
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

    let host_key =
        ssh::keys::load_or_create_host_key(&config.data_dir).context("loading the SSH host key")?;
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
    let ssh_listener = TcpListener::bind(ssh_addr)
        .await
        .with_context(|| format!("binding the SSH gateway to {ssh_addr}"))?;
    let ssh_local = ssh_listener
        .local_addr()
        .context("reading the SSH address")?;

    let addr = SocketAddr::new(config.bind, config.http_port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP API to {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;

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
        ssh_host_key: Some(ssh_public),
        sessions: sessions::Sessions::new(
            backend.clone(),
            config.max_sessions_per_shed,
            sessions::PER_SHED_TIMEOUT,
        ),
    };
    let gateway = ssh::Gateway::new(backend.clone(), host_key, policy);
    tokio::spawn(async move {
        if let Err(e) = gateway.serve(ssh_listener).await {
            tracing::error!(error = %e, "the SSH gateway stopped");
        }
    });
    tracing::info!(name = %config.name, http = %local, ssh = %ssh_local, "shed-server listening");
    // Scripts and tests read the actual ports from this line when a port is 0.
    println!(
        "shed-server {} listening on http://{local} ssh://{ssh_local}",
        config.name
    );

    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the HTTP API")?;
    tracing::info!("shed-server stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down; finishing in-flight requests");
}
