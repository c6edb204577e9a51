//! The web page (issue 14): its HTML, CSS and JavaScript, and the vendored
//! xterm.js, embedded in the binary so serving the page needs no build step,
//! no files beside the binary and no CDN. The HTTP side (routes, cookie
//! login, the terminal WebSocket) lives in the server; this module only
//! holds what it serves.

/// One embedded file of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The `Content-Type` to serve it with.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Every asset, by its path under `/assets/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("index.html", HTML, include_bytes!("assets/index.html")),
    ("app.js", JS, include_bytes!("assets/app.js")),
    ("app.css", CSS, include_bytes!("assets/app.css")),
    (
        "vendor/xterm/xterm.js",
        JS,
        include_bytes!("assets/vendor/xterm/xterm.js"),
    ),
    (
        "vendor/xterm/xterm.css",
        CSS,
        include_bytes!("assets/vendor/xterm/xterm.css"),
    ),
    (
        "vendor/xterm/xterm-addon-fit.js",
        JS,
        include_bytes!("assets/vendor/xterm/xterm-addon-fit.js"),
    ),
    // Served so the license travels with the code it covers.
    (
        "vendor/xterm/LICENSE",
        TEXT,
        include_bytes!("assets/vendor/xterm/LICENSE"),
    ),
];

/// The asset served at `path` (e.g. "index.html", "app.js", "vendor/xterm/xterm.js"), if any.
pub fn asset(path: &str) -> Option<Asset> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|&(_, content_type, body)| Asset { content_type, body })
}

/// The login page (a form POSTing `token` to `login`, relative URL), shown when a token is needed.
pub fn login_page(error: Option<&str>) -> String {
    let error = match error {
        Some(message) => format!(
            "<p class=\"error\" id=\"login-error\" role=\"alert\">{}</p>\n",
            escape_html(message)
        ),
        None => String::new(),
    };
    // Relative URLs, like the page's own, so it works under a path prefix;
    // no script at all, so it needs nothing the CSP forbids.
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>shed: log in</title>\n<link rel=\"stylesheet\" href=\"assets/app.css\">\n\
         </head>\n<body class=\"login\">\n<main>\n<h1>shed</h1>\n{error}\
         <form id=\"login\" method=\"post\" action=\"login\">\n\
         <label for=\"token\">API token</label>\n\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" \
         required autofocus>\n<button type=\"submit\">Log in</button>\n</form>\n\
         <p class=\"hint\">The token is the server's <code>api_token</code>. It is kept in an \
         HttpOnly cookie that scripts cannot read.</p>\n</main>\n</body>\n</html>\n"
    )
}

/// `text` with the characters HTML gives meaning to replaced by entities.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &str) -> &'static str {
        std::str::from_utf8(asset(path).expect(path).body).unwrap()
    }

    #[test]
    fn every_file_the_page_links_is_embedded() {
        let index = text("index.html");
        let mut linked = 0;
        for attr in ["src=\"", "href=\""] {
            for part in index.split(attr).skip(1) {
                let url = &part[..part.find('"').unwrap()];
                let path = url.strip_prefix("assets/").unwrap_or_else(|| {
                    panic!("{url}: the page links only its own relative assets/ URLs")
                });
                assert!(asset(path).is_some(), "{url} is linked but not embedded");
                linked += 1;
            }
        }
        assert!(linked >= 5, "index.html links {linked} assets");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        // The CSP allows only 'self': inline code would be blocked, silently.
        let index = text("index.html");
        assert!(!index.contains("<script>"), "inline script");
        assert!(!index.contains("<style"), "inline style element");
        assert!(!index.contains(" style=\""), "inline style attribute");
        assert!(!index.contains(" on"), "inline event handler");
        for page in [login_page(None), login_page(Some("x"))] {
            assert!(!page.contains("<script"), "the login page needs no script");
            assert!(!page.contains("<style") && !page.contains(" style=\""));
        }
    }

    #[test]
    fn assets_have_their_content_types() {
        assert_eq!(asset("app.js").unwrap().content_type, JS);
        assert_eq!(asset("app.css").unwrap().content_type, CSS);
        assert_eq!(asset("index.html").unwrap().content_type, HTML);
        assert_eq!(asset("vendor/xterm/xterm.js").unwrap().content_type, JS);
        assert!(asset("vendor/xterm/LICENSE").is_some());
    }

    #[test]
    fn unknown_and_hostile_paths_have_no_asset() {
        for path in [
            "",
            "/",
            "/app.js",
            "../Cargo.toml",
            "vendor/../app.js",
            "vendor/xterm",
            "APP.JS",
            "app.js\0",
        ] {
            assert!(asset(path).is_none(), "{path:?}");
        }
    }

    #[test]
    fn login_page_escapes_its_error_and_posts_the_token() {
        let page = login_page(Some("<script>alert('x')</script> & \"more\""));
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;")
        );
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("method=\"post\" action=\"login\""));
        assert!(page.contains("name=\"token\""));
        assert!(!login_page(None).contains("login-error"));
    }
}
