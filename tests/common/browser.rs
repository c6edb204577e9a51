//! A real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven over WebDriver with fantoccini: one chromedriver per browser, on a
//! free port, killed with everything it started when the browser drops.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long a page may take to show what a test waits for.
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// A viewport: CSS pixels wide and high, and whether to emulate a phone.
#[derive(Debug, Clone, Copy)]
pub struct Viewport {
    /// Width in CSS pixels.
    pub width: u32,
    /// Height in CSS pixels.
    pub height: u32,
    /// A phone: touch, a device pixel ratio of 3 and a mobile user agent.
    pub phone: bool,
}

/// The WebDriver key for Enter, for `send_keys`.
pub const ENTER: &str = "\u{E007}";
/// WebDriver's Control key: held until [`RELEASE`].
pub const CTRL: &str = "\u{E009}";
/// WebDriver's Shift key: held until [`RELEASE`].
pub const SHIFT: &str = "\u{E008}";
/// WebDriver's Null key: lets go of the modifier keys held.
pub const RELEASE: &str = "\u{E000}";

/// A laptop's window.
pub const DESKTOP: Viewport = Viewport {
    width: 1280,
    height: 800,
    phone: false,
};

/// An iPhone 12-14 sized phone.
pub const PHONE: Viewport = Viewport {
    width: 390,
    height: 844,
    phone: true,
};

/// A headless Chromium session and the chromedriver that runs it.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    _driver: DriverGuard,
    _profile: tempfile::TempDir,
}

fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in candidates {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The browser and its driver; panics with the Debian packages to install
/// when either is missing, so a machine without them fails loudly.
fn programs() -> (PathBuf, PathBuf) {
    let driver = find_program(&["chromedriver"]);
    let chromium = find_program(&["chromium", "chromium-browser"]);
    match (driver, chromium) {
        (Some(d), Some(c)) => (d, c),
        (d, c) => panic!(
            "the browser tests need headless Chromium: install the Debian packages \
             `chromium` and `chromium-driver` (scripts/test-prereqs.sh does); \
             chromedriver: {d:?}, chromium: {c:?}"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with this viewport.
    pub async fn start(view: Viewport) -> Browser {
        let (driver_bin, chromium) = programs();
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        let log = profile.path().join("chromedriver.log");
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: dropping the browser kills chromedriver
            // and every Chromium process it started, even after a panic.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", driver_bin.display()));
        let mut browser_args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            format!(
                "--user-data-dir={}",
                profile.path().join("chrome").display()
            ),
        ];
        let mut options = json!({ "binary": chromium, "args": [] });
        if view.phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": view.width, "height": view.height, "pixelRatio": 3.0, "touch": true },
                "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            });
        } else {
            browser_args.push(format!("--window-size={},{}", view.width, view.height));
        }
        options["args"] = json!(browser_args);
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        let mut browser = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            match ClientBuilder::new(hyper_util_connector())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    browser = Some(client);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let guard = DriverGuard(Some(driver));
        let client = browser.unwrap_or_else(|| {
            panic!(
                "chromedriver on port {port} gave no session: {last}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let browser = Browser {
            client,
            _driver: guard,
            _profile: profile,
        };
        // A load that waits on the browser (a connection it cannot get, say)
        // fails the test instead of WebDriver's default five minutes.
        browser
            .client
            .update_timeouts(TimeoutConfiguration::new(None, Some(PAGE_WAIT), None))
            .await
            .expect("page load timeout");
        if !view.phone {
            browser.resize(view.width, view.height).await;
        }
        browser
    }

    /// Resizes the window so the page's viewport is `width` x `height` CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) {
        // The window is a little larger than its viewport; measure the
        // difference once and make up for it.
        self.client.set_window_size(width, height).await.unwrap();
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        let dw = width as i64 - inner[0].as_i64().unwrap();
        let dh = height as i64 - inner[1].as_i64().unwrap();
        if dw != 0 || dh != 0 {
            self.client
                .set_window_size((width as i64 + dw) as u32, (height as i64 + dh) as u32)
                .await
                .unwrap();
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("loading {url}: {e}"));
    }

    /// Goes back one page in the history, as the browser's Back button does.
    pub async fn back(&self) {
        self.client.back().await.expect("back");
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `script` returns something truthy; returns it. Panics with
    /// `what` and the page's text on timeout.
    pub async fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let v = self.js(script, args.clone()).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() >= deadline {
                let text = self.js("return document.body.innerText;", vec![]).await;
                panic!("timed out waiting for {what}; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element matching `css` and returns it.
    pub async fn wait_css(&self, css: &str) -> fantoccini::elements::Element {
        self.wait_js(
            css,
            "return document.querySelector(arguments[0]) !== null;",
            vec![json!(css)],
        )
        .await;
        self.client.find(Locator::Css(css)).await.unwrap()
    }

    /// Waits for `css` and clicks it.
    pub async fn click(&self, css: &str) {
        self.wait_css(css).await.click().await.unwrap();
    }

    /// Waits for the field `css` and types `keys` into it.
    pub async fn fill(&self, css: &str, keys: &str) {
        self.wait_css(css).await.send_keys(keys).await.unwrap();
    }

    /// Clicks `css`, then accepts (or declines) the confirm it must ask;
    /// panics with `what` when it asks none.
    pub async fn click_and_confirm(&self, css: &str, accept: bool, what: &str) {
        self.click(css).await;
        let answered = if accept {
            self.client.accept_alert().await
        } else {
            self.client.dismiss_alert().await
        };
        answered.unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    /// Waits until nothing matches `css`; `what` names it on timeout.
    pub async fn wait_gone(&self, what: &str, css: &str) {
        self.wait_js(
            what,
            "return document.querySelector(arguments[0]) === null;",
            vec![json!(css)],
        )
        .await;
    }

    /// Opens the terminal of `session` (`shed/session`) from its row.
    pub async fn open_terminal(&self, session: &str) {
        self.open_terminal_from(&format!("[data-session=\"{session}\"]"), session)
            .await;
    }

    /// Clicks the `.open-terminal` button inside `row`, then waits until the
    /// terminal panel shows `session` (`shed/session`) and is connected.
    pub async fn open_terminal_from(&self, row: &str, session: &str) {
        self.click(&format!("{row} .open-terminal")).await;
        self.wait_js(
            &format!("the terminal of {session} to connect"),
            "const i = window.shedTerminalInfo(); return i && i.connected \
             && document.getElementById('terminal').dataset.session === arguments[0];",
            vec![json!(session)],
        )
        .await;
    }

    /// Types `keys` into the open terminal.
    pub async fn type_in_terminal(&self, keys: &str) {
        self.fill("#terminal .xterm-helper-textarea", keys).await;
    }

    /// Puts `text` on the clipboard as a user does: typed into a text area
    /// added to the page for it (a line break typed as Enter), then
    /// selected with Ctrl+A and copied with Ctrl+C.
    pub async fn copy_text(&self, text: &str) {
        self.js(
            "const t = document.createElement('textarea'); t.id = 'test-clipboard'; document.body.append(t);",
            vec![],
        )
        .await;
        self.fill("#test-clipboard", &text.replace('\n', ENTER))
            .await;
        self.fill(
            "#test-clipboard",
            &format!("{CTRL}a{RELEASE}{CTRL}c{RELEASE}"),
        )
        .await;
        self.js(
            "document.getElementById('test-clipboard').remove();",
            vec![],
        )
        .await;
    }

    /// Pastes the clipboard into the open terminal with Ctrl+Shift+V, the
    /// paste key of terminals (Ctrl+V alone is a key for the program).
    pub async fn paste_in_terminal(&self) {
        self.type_in_terminal(&format!("{CTRL}{SHIFT}v{RELEASE}"))
            .await;
    }

    /// Waits until the page shows `count` servers, every one live (its
    /// event stream open).
    pub async fn wait_servers_live(&self, count: usize) {
        self.wait_js(
            &format!("{count} servers, every one live"),
            "const l = [...document.querySelectorAll('.server .live')].map((e) => e.textContent);\
             return l.length === arguments[0] && l.every((t) => t === 'live');",
            vec![json!(count)],
        )
        .await;
    }

    /// Waits until the open terminal shows `want`.
    pub async fn wait_terminal_shows(&self, want: &str) {
        self.wait_js(
            &format!("the terminal to show {want:?}"),
            "return window.shedTerminalText().includes(arguments[0]);",
            vec![json!(want)],
        )
        .await;
    }

    /// The open terminal's visible text, as the page reads it from xterm.js.
    pub async fn terminal_text(&self) -> String {
        self.js("return window.shedTerminalText();", vec![])
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a screenshot as `target/web-screenshots/NAME.png` and prints its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }

    /// Ends the WebDriver session (closing Chromium), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Dropping the guard kills what is left of chromedriver's group.
    }
}

/// Where screenshots go: `target/web-screenshots`, which CI keeps.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("web-screenshots")
}

fn hyper_util_connector() -> hyper_util::client::legacy::connect::HttpConnector {
    hyper_util::client::legacy::connect::HttpConnector::new()
}

/// Kills chromedriver's whole process group (Chromium included) on drop.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let pgid = child.id() as i32;
            // SAFETY: kill(2) with a negative pid signals only the group we
            // created for this chromedriver.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}
