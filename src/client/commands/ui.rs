//! `shed ui`: serve the dashboard for the configured servers on loopback.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use super::{Ctx, Outcome};
use crate::client::output::warn;
use crate::client::ui::{router, MAX_CONNECTIONS};
use crate::server::listener::{serve, Limits};

/// Time a browser gets to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a browser connection may sit with no request in flight.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

impl Ctx {
    /// Serves the page on 127.0.0.1:`port` until Ctrl-C: for the `-s`
    /// server only, else for every configured one.
    pub(super) async fn ui(&self, port: u16, open: bool) -> anyhow::Result<Outcome> {
        let clients = match &self.server_flag {
            Some(name) => vec![self.client(name)?],
            None => self.all_clients()?,
        };
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
            .with_context(|| {
                format!("listening on 127.0.0.1:{port} (pick another with --port, or 0 for any)")
            })?;
        let bound = listener.local_addr().context("reading the bound port")?;
        let url = format!("http://127.0.0.1:{}/", bound.port());
        let names: Vec<&str> = clients.iter().map(|c| c.server()).collect();
        println!("shed ui: {} on {url}", names.join(", "));
        println!("{url}");
        let _ = std::io::stdout().flush();
        if open {
            open_browser(&url);
        }
        let limits = Limits {
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve(listener, router(clients), None, limits, shutdown).await;
        Ok(Outcome::Success)
    }
}

/// Opens `url` in the default browser; a failure is only a warning, since
/// the printed URL works as well.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        // Reaped in the background, so it leaves no zombie behind.
        Ok(mut child) => {
            let url = url.to_string();
            std::thread::spawn(move || {
                if let Ok(status) = child.wait() {
                    if !status.success() {
                        warn(&format!(
                            "{opener} {url} failed ({status}); open it yourself"
                        ));
                    }
                }
            });
        }
        Err(e) => warn(&format!(
            "could not run {opener} to open the browser ({e}); open {url} yourself"
        )),
    }
}
