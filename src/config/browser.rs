//! The flags for browsers: whether the console is served, and which other web origins may call
//! the API over gRPC-Web (CORS).

use clap::{ArgAction, Args};
use http::HeaderValue;

#[derive(Debug, Clone, Args)]
pub struct BrowserSettings {
    /// Serve the administrator's console at `/` of the gRPC port (HTTP/1.1 or HTTP/2; it calls
    /// the API over gRPC-Web with the API key pasted at sign-in).
    #[arg(long = "console", env = "TELEPHONY_ADMIN_CONSOLE", action = ArgAction::Set, default_value_t = true)]
    pub console: bool,

    /// A web origin (`https://admin.example.com`) whose pages may call the API over gRPC-Web;
    /// repeat the flag, or separate origins by commas. None by default: only the console, which
    /// is served from the API's own origin, can.
    #[arg(long = "cors-origin", env = "TELEPHONY_ADMIN_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<HeaderValue>,
}

/// `scheme://host[:port]`, as a browser sends it in `Origin`: http or https, nothing after the
/// authority.
fn parse_origin(raw: &str) -> Result<HeaderValue, String> {
    // Browsers send the scheme and host in lower case.
    let raw = raw.trim().to_ascii_lowercase();
    let raw = raw.as_str();
    let uri: http::Uri = raw
        .parse()
        .map_err(|e| format!("{raw:?} is not an origin: {e}"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let bare = uri.authority().is_some()
        && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
        && !raw.ends_with('/');
    if !scheme_ok || !bare {
        return Err(format!(
            "{raw:?} is not an origin: expected http(s)://host[:port], with no path"
        ));
    }
    HeaderValue::from_str(raw).map_err(|e| format!("{raw:?} is not an origin: {e}"))
}

#[cfg(test)]
mod tests {
    use super::parse_origin;

    #[test]
    fn an_origin_is_a_scheme_and_an_authority() {
        for good in ["https://admin.example.com", "http://localhost:5173"] {
            assert_eq!(parse_origin(good).unwrap(), good);
        }
        assert_eq!(
            parse_origin("HTTPS://Admin.Example.com").unwrap(),
            "https://admin.example.com"
        );
        for bad in [
            "admin.example.com",
            "ftp://example.com",
            "https://example.com/",
            "https://example.com/console",
            "https://example.com?x=1",
            "*",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad} was accepted");
        }
    }
}
