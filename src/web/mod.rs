//! The web dashboard's page, embedded in the binary. A placeholder until
//! the page itself lands: one index that says "shed", and the login form.

/// One embedded file of the page.
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The asset served at `path` (e.g. "index.html", "app.js", "vendor/xterm/xterm.js"), if any.
pub fn asset(path: &str) -> Option<Asset> {
    match path {
        "index.html" => Some(Asset {
            content_type: "text/html; charset=utf-8",
            body: include_bytes!("assets/index.html"),
        }),
        _ => None,
    }
}

/// The login page (a form POSTing `token` to `login`, relative URL), shown when a token is needed.
pub fn login_page(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>shed: log in</title></head>\n\
         <body><h1>shed</h1>{error}\n<form method=\"post\" action=\"login\">\
         <label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\"></label>\
         <button type=\"submit\">Log in</button></form></body></html>\n"
    )
}

/// `text` safe inside HTML element content.
fn escape(text: &str) -> String {
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
