//! The static web server: Portunus's demo pages (or a folder of the user's own pages) on their own
//! port, so `cargo run --release` then http://127.0.0.1:8000/ shows the demos.
//!
//! actix-files resolves paths inside the root only (`..` segments are refused) and guesses MIME
//! types from extensions; directories serve their `index.html`.

use actix_files::Files;
use actix_web::web::ServiceConfig;

use crate::settings::WebSettings;

/// Routes for the folder of `settings`.
pub fn configure(settings: WebSettings) -> impl Fn(&mut ServiceConfig) + Clone {
    move |cfg: &mut ServiceConfig| {
        cfg.service(Files::new("/", &settings.root).index_file("index.html").prefer_utf8(true));
    }
}
