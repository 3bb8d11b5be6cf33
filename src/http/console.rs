//! The operator's console: one page, its ES modules and its style, embedded
//! in the binary as they are in `console/` (no build step, no CDN, works
//! offline). The page holds no data of its own: it signs
//! in with the admin token and calls the public admin API like curl would.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

const INDEX: &str = include_str!("../../console/index.html");
/// The console's modules, served as they are: `app.js` imports the others.
const SCRIPTS: [(&str, &str); 4] = [
    ("/console/app.js", include_str!("../../console/app.js")),
    ("/console/api.js", include_str!("../../console/api.js")),
    ("/console/dom.js", include_str!("../../console/dom.js")),
    (
        "/console/settings.js",
        include_str!("../../console/settings.js"),
    ),
];
const STYLE: &str = include_str!("../../console/app.css");

/// Only the page's own script and style run; nothing may frame it, and forms
/// never submit by themselves (a token typed into one must not reach a URL).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'none'; \
    base-uri 'none'; frame-ancestors 'none'";

/// Mounts `/console`, its modules and its style.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let pages = [
        ("/console", Page::Index),
        ("/console/", Page::Index),
        ("/console/app.css", Page::Style),
    ];
    let scripts = SCRIPTS.map(|(path, body)| (path, Page::Script(body)));
    for (path, page) in pages.into_iter().chain(scripts) {
        cfg.service(super::resource(path, "GET", move |r| {
            r.route(web::get().to(move || serve(page)))
        }));
    }
}

#[derive(Clone, Copy)]
enum Page {
    Index,
    Script(&'static str),
    Style,
}

async fn serve(page: Page) -> HttpResponse {
    match page {
        Page::Index => asset("text/html; charset=utf-8", INDEX),
        Page::Script(body) => asset("text/javascript; charset=utf-8", body),
        Page::Style => asset("text/css; charset=utf-8", STYLE),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut res = HttpResponse::Ok().content_type(content_type).body(body);
    let h = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    res
}
