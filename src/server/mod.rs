//! shed-server: the HTTP API over sheds in Docker.

pub mod backend;
pub mod config;
pub mod docker;
pub mod error;
#[cfg(test)]
mod fake;
pub mod http;
pub mod repo;

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

    let addr = SocketAddr::new(config.bind, config.http_port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP API to {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;

    let state = http::AppState {
        backend,
        info: ServerInfo {
            name: config.name.clone(),
            version: VERSION.into(),
            http_port: local.port(),
            ssh_port: config.ssh_port,
        },
        default_image: config.default_image.clone(),
        api_token: config.api_token.as_deref().map(Arc::from),
    };
    tracing::info!(name = %config.name, %local, "shed-server listening");
    // Scripts and tests read the actual port from this line when http_port is 0.
    println!("shed-server {} listening on http://{local}", config.name);

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
