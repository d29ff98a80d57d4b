//! Keyset pagination: a page token is an opaque, URL-safe encoding of the last key of the
//! previous page and a fingerprint of the filters it was made for. The next page is a
//! `WHERE key > last` query, so a page costs the same however deep it is.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::DomainError;

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 1000;
/// Tokens longer than this cannot be ours.
const MAX_TOKEN_CHARS: usize = 1024;

#[derive(Serialize, Deserialize)]
struct Token {
    /// Format version.
    v: u8,
    /// The last key of the previous page.
    k: String,
    /// Fingerprint of the filters.
    f: String,
}

/// A validated page request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub size: u64,
    /// Return only keys greater than this.
    pub after: Option<String>,
    fingerprint: String,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Empty on the last page.
    pub next_page_token: String,
}

impl PageRequest {
    /// Checks size and token. `filters` must describe every filter of the list call: a token
    /// made for other filters is refused.
    pub fn parse(
        page_size: i32,
        page_token: &str,
        filters: &str,
        max_page_size: u64,
    ) -> Result<Self, DomainError> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE.min(max_page_size),
            n if n < 0 => return Err(DomainError::invalid("page_size", "must not be negative")),
            n if n as u64 > max_page_size => {
                return Err(DomainError::invalid(
                    "page_size",
                    format!("must be at most {max_page_size}"),
                ));
            }
            n => n as u64,
        };
        let fingerprint = fingerprint(filters);
        let after = if page_token.is_empty() {
            None
        } else {
            Some(decode(page_token, &fingerprint)?)
        };
        Ok(Self {
            size,
            after,
            fingerprint,
        })
    }

    /// How many rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> u64 {
        self.size + 1
    }

    /// Cuts the fetched rows to the page and makes the token for the next one.
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() as u64 > self.size;
        rows.truncate(self.size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => encode(&key(last), &self.fingerprint),
            _ => String::new(),
        };
        Page {
            items: rows,
            next_page_token,
        }
    }
}

fn fingerprint(filters: &str) -> String {
    let digest = Sha256::digest(filters.as_bytes());
    hex::encode(&digest[..8])
}

fn encode(key: &str, fingerprint: &str) -> String {
    let token = Token {
        v: 1,
        k: key.to_owned(),
        f: fingerprint.to_owned(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).expect("a token always serialises"))
}

fn decode(raw: &str, fingerprint: &str) -> Result<String, DomainError> {
    let bad = || DomainError::invalid("page_token", "is not a page token of this list");
    if raw.len() > MAX_TOKEN_CHARS {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if token.v != 1 || token.k.is_empty() {
        return Err(bad());
    }
    if token.f != fingerprint {
        return Err(DomainError::invalid(
            "page_token",
            "was made for different filters; keep the filters of the first page",
        ));
    }
    Ok(token.k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_default_and_are_bounded() {
        assert_eq!(PageRequest::parse(0, "", "", 1000).unwrap().size, 50);
        assert_eq!(PageRequest::parse(1000, "", "", 1000).unwrap().size, 1000);
        assert!(PageRequest::parse(1001, "", "", 1000).is_err());
        assert!(PageRequest::parse(-1, "", "", 1000).is_err());
    }

    #[test]
    fn tokens_round_trip_and_are_tied_to_filters() {
        let first = PageRequest::parse(2, "", "status=1", 1000).unwrap();
        let page = first.finish(vec!["a", "b", "c"], |s| s.to_string());
        assert_eq!(page.items, vec!["a", "b"]);
        let next = PageRequest::parse(2, &page.next_page_token, "status=1", 1000).unwrap();
        assert_eq!(next.after.as_deref(), Some("b"));
        assert!(PageRequest::parse(2, &page.next_page_token, "status=2", 1000).is_err());
        let last = next.finish(vec!["c"], |s| s.to_string());
        assert!(last.next_page_token.is_empty());
    }

    #[test]
    fn garbage_tokens_are_invalid_arguments() {
        for garbage in ["x", "!!!", "eyJ2Ijo5fQ", &"A".repeat(5000)] {
            assert!(matches!(
                PageRequest::parse(0, garbage, "", 1000),
                Err(DomainError::InvalidArgument(_))
            ));
        }
    }
}
