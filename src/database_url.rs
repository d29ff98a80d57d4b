//! Database URLs in messages and logs: shown without the credentials they may carry.

use url::{Position, Url};

/// What stands in for a hidden credential.
const HIDDEN: &str = "…";

/// `url` without its credentials: the user and password (`postgres://…@host/db`) and a
/// `password` query parameter (`?password=…`, which sqlx also accepts). A URL without
/// credentials, such as SQLite's, comes back unchanged.
pub fn redact(url: &str) -> String {
    let Ok(parsed) = Url::parse(url) else {
        return redact_unparsed(url);
    };
    let has_user_info = !parsed.username().is_empty() || parsed.password().is_some();
    let has_password_parameter = parsed.query_pairs().any(|(key, _)| key == "password");
    if !has_user_info && !has_password_parameter {
        return url.to_owned();
    }
    let mut shown = format!("{}://", parsed.scheme());
    if has_user_info {
        shown.push_str(HIDDEN);
        shown.push('@');
    }
    shown.push_str(&parsed[Position::BeforeHost..Position::AfterPath]);
    if let Some(query) = parsed.query() {
        shown.push('?');
        shown.push_str(&redact_query(query));
    }
    shown.push_str(&parsed[Position::AfterQuery..]);
    shown
}

/// Each `password=` pair's value hidden; every other pair as it was.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let is_password = url::form_urlencoded::parse(pair.as_bytes())
                .next()
                .is_some_and(|(key, _)| key == "password");
            if is_password {
                format!("password={HIDDEN}")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A string that is not a URL may still hold `user:password@`: hide everything up to the last
/// `@` after the scheme.
fn redact_unparsed(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{HIDDEN}@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_and_password_are_hidden_and_the_rest_is_kept() {
        assert_eq!(
            redact("postgres://admin:s3cret@db.internal:5432/telephony?sslmode=require"),
            "postgres://…@db.internal:5432/telephony?sslmode=require"
        );
        assert_eq!(
            redact("postgres://admin@db/telephony"),
            "postgres://…@db/telephony"
        );
    }

    #[test]
    fn a_password_holding_an_at_sign_is_hidden_whole() {
        let shown = redact("postgres://admin:p%40ss@word@db/telephony");
        assert_eq!(shown, "postgres://…@db/telephony");
        assert!(!shown.contains("ss"), "{shown}");
    }

    #[test]
    fn a_password_query_parameter_is_hidden() {
        assert_eq!(
            redact("postgres://db/telephony?user=admin&password=s3cret&sslmode=require"),
            "postgres://db/telephony?user=admin&password=…&sslmode=require"
        );
        assert_eq!(
            redact("postgres://admin:one@db/telephony?pass%77ord=two"),
            "postgres://…@db/telephony?password=…"
        );
    }

    #[test]
    fn a_url_without_credentials_is_unchanged() {
        for url in [
            "sqlite://data/telephony-admin.db?mode=rwc",
            "sqlite::memory:",
            "postgres://db.internal/telephony?sslmode=require",
        ] {
            assert_eq!(redact(url), url);
        }
    }

    #[test]
    fn an_unparsable_url_still_loses_its_credentials() {
        let shown = redact("postgres://admin:s3cret@db:not-a-port/telephony");
        assert_eq!(shown, "postgres://…@db:not-a-port/telephony");
    }
}
