//! The administrator's console: a single-page app in TypeScript (in `web/`), built into
//! `web/dist/` and embedded here at compile time, so that the server binary carries it and
//! needs nothing else to serve it. The app calls the service's public API over gRPC-Web, so it
//! can do nothing the API does not allow.
//!
//! `web/dist/` is committed; `.ci/run` rebuilds it from source and fails if it differs.

use include_dir::{Dir, include_dir};

static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web/dist");

/// One file of the console.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    /// Whether its name carries a hash of its content, so that it may be cached for ever.
    pub immutable: bool,
}

/// The file at `path` (as in a URL, e.g. `/assets/index-1a2b3c.js`); `/` is `index.html`.
/// `None` for a path that names no file.
pub fn asset(path: &str) -> Option<Asset> {
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    let file = DIST.get_file(relative)?;
    Some(Asset {
        bytes: file.contents(),
        content_type: content_type(relative),
        immutable: relative.starts_with("assets/"),
    })
}

/// The page every console route starts from.
pub fn index() -> Option<Asset> {
    asset("/")
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_index_page() {
        let index = asset("/").expect("the console is built into web/dist");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(!index.immutable);
        assert!(asset("/no-such-file.js").is_none());
    }

    #[test]
    fn the_index_page_loads_only_files_that_exist() {
        let html = std::str::from_utf8(index().expect("built").bytes).expect("UTF-8");
        for reference in html
            .split(['"', '\''])
            .filter(|s| s.starts_with("/assets/"))
        {
            let file = asset(reference).unwrap_or_else(|| panic!("{reference} is not built"));
            assert!(file.immutable);
        }
    }
}
