//! The web console's assets, embedded in the binary (nothing is fetched at run time:
//! air-gapped sites get the whole console from their agent). The sources under
//! `console/` are served as written.

use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;

/// Where the console lives (Roboconf's context).
pub const PREFIX: &str = "/roboconf-web-administration";

const INDEX: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_VIEW_JS: &str = include_str!("console/app-view.js");
const COMMON_JS: &str = include_str!("console/common.js");
const STYLE: &str = include_str!("console/style.css");
const FAVICON: &str = include_str!("console/favicon.svg");

fn asset(kind: &'static str, body: &'static str) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { Redirect::to("/roboconf-web-administration/") }),
        )
        .route(
            "/roboconf-web-administration",
            get(|| async { Redirect::to("/roboconf-web-administration/") }),
        )
        .route(
            "/roboconf-web-administration/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/roboconf-web-administration/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/roboconf-web-administration/app-view.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_VIEW_JS) }),
        )
        .route(
            "/roboconf-web-administration/common.js",
            get(|| async { asset("text/javascript; charset=utf-8", COMMON_JS) }),
        )
        .route(
            "/roboconf-web-administration/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/roboconf-web-administration/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON) }),
        )
}
