//! The stored form of an idempotent request's answer.
//!
//! A retry within the retention window may meet a record written by an earlier version of the
//! service (or, during a rolling upgrade, a later one). So an answer is stored as
//! `{"version": N, "answer": {…}}`, in structs of its own with every field spelled out: a field
//! added to a read model or a column added to a table changes neither, and a replay never
//! depends on a database row's shape. Records from before the version field are still read.
//! A record that cannot be read is answered explicitly (see [`Unreadable`]), never with a panic.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// The version of the stored form this server writes, unless an answer says otherwise
/// ([`Answer::VERSION`]).
pub(crate) const VERSION: u64 = 1;

/// An answer that can be kept for a retry.
pub(crate) trait Answer: Sized {
    /// The version of [`Answer::Stored`]: a form that changes gets the next one, and reads the
    /// earlier ones through [`Answer::from_earlier`].
    const VERSION: u64 = VERSION;

    /// The answer as stored at [`Answer::VERSION`].
    type Stored: Serialize + DeserializeOwned;

    fn to_stored(&self) -> Self::Stored;
    /// `None` when a value is not one this server knows.
    fn from_stored(stored: Self::Stored) -> Option<Self>;
    /// An answer stored before answers carried a version.
    fn from_unversioned(value: Value) -> Option<Self>;
    /// An answer stored at an earlier `version` of its form (`None`: not readable).
    fn from_earlier(_version: u64, _value: Value) -> Option<Self> {
        None
    }

    /// Visits every change-event sequence the answer carries (see `store::engine::sequencer`: on
    /// PostgreSQL they are provisional until the events are numbered).
    fn visit_sequences(&mut self, _visit: &mut dyn FnMut(&mut u64)) {}
}

/// Why a stored answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Written by a version of the service that this one does not know.
    UnknownVersion(u64),
    /// Not an answer of the expected form.
    Malformed(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownVersion(v) => write!(f, "stored in format version {v}, unknown here"),
            Self::Malformed(why) => write!(f, "malformed: {why}"),
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    version: u64,
    answer: &'a T,
}

pub(crate) fn encode<A: Answer>(answer: &A) -> serde_json::Result<String> {
    serde_json::to_string(&Envelope {
        version: A::VERSION,
        answer: &answer.to_stored(),
    })
}

pub(crate) fn decode<A: Answer>(text: &str) -> Result<A, Unreadable> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| Unreadable::Malformed(e.to_string()))?;
    let version = match value.get("version") {
        None => {
            return A::from_unversioned(value).ok_or_else(|| {
                Unreadable::Malformed("an unversioned answer of another form".into())
            });
        }
        Some(version) => version
            .as_u64()
            .ok_or_else(|| Unreadable::Malformed("the version is not a number".into()))?,
    };
    if version > A::VERSION || version == 0 {
        return Err(Unreadable::UnknownVersion(version));
    }
    let answer = value
        .get("answer")
        .cloned()
        .ok_or_else(|| Unreadable::Malformed("no answer".into()))?;
    if version < A::VERSION {
        return A::from_earlier(version, answer)
            .ok_or_else(|| Unreadable::Malformed(format!("not an answer of version {version}")));
    }
    let stored =
        serde_json::from_value(answer).map_err(|e| Unreadable::Malformed(e.to_string()))?;
    A::from_stored(stored).ok_or_else(|| Unreadable::Malformed("an unknown value".into()))
}
