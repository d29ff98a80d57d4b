//! Who still has to sign out: the changes a user has not yet picked up by signing out and back
//! in, and what an acknowledgement of them does.
//!
//! Every sign-out-required change is recorded as pending on its user; an acknowledgement through
//! sequence N covers every change up to N. The pending state is cleared only when N covers the
//! newest pending change, so that a late acknowledgement of an older change can never hide a
//! newer one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;

/// The sign-out-required changes a user has not yet acknowledged (none: no value at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOutPending {
    /// The oldest change not yet acknowledged: its sequence and time.
    pub oldest_sequence: u64,
    pub oldest_time: DateTime<Utc>,
    /// The newest one: an acknowledgement must cover it to clear the state.
    pub latest_sequence: u64,
    pub latest_time: DateTime<Utc>,
}

impl SignOutPending {
    /// The state after one more sign-out-required change.
    pub fn record(pending: Option<Self>, sequence: u64, time: DateTime<Utc>) -> Self {
        match pending {
            Some(pending) => Self {
                latest_sequence: sequence,
                latest_time: time,
                ..pending
            },
            None => Self {
                oldest_sequence: sequence,
                oldest_time: time,
                latest_sequence: sequence,
                latest_time: time,
            },
        }
    }
}

/// What an acknowledgement through a sequence does to a user's pending state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledgement {
    /// Nothing was pending, or every pending change is newer than the sequence: nothing changes.
    Nothing,
    /// The newest pending change is covered: nothing is pending any more.
    All,
    /// Older pending changes are covered, a newer one is not: the oldest change after `through`
    /// becomes the oldest pending one.
    Partly { through: u64 },
}

pub fn acknowledge(pending: Option<&SignOutPending>, through: u64) -> Acknowledgement {
    match pending {
        None => Acknowledgement::Nothing,
        Some(p) if through >= p.latest_sequence => Acknowledgement::All,
        Some(p) if through >= p.oldest_sequence => Acknowledgement::Partly { through },
        Some(_) => Acknowledgement::Nothing,
    }
}

/// `through_sequence` as a request gives it: a sequence of the log (they start at 1).
pub fn parse_through(field: &str, through: u64) -> Result<u64, DomainError> {
    if through == 0 || i64::try_from(through).is_err() {
        return Err(DomainError::invalid(
            field,
            "must be the sequence of the newest change event the user's session reflects (at least 1)",
        ));
    }
    Ok(through)
}

/// An acknowledgement may only name a change that has happened: one beyond the newest sequence
/// would acknowledge changes still to come (or comes from a log the database lost events of).
pub fn check_through(through: u64, newest: u64) -> Result<(), DomainError> {
    if through > newest {
        return Err(DomainError::precondition(
            "SEQUENCE_AHEAD_OF_LOG",
            format!("through_sequence {through}"),
            format!(
                "through_sequence {through} is beyond the newest change event ({newest}); acknowledge a sequence received from this log"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(second, 0).unwrap()
    }

    #[test]
    fn the_oldest_change_stays_and_the_newest_moves() {
        let first = SignOutPending::record(None, 4, at(4));
        assert_eq!((first.oldest_sequence, first.latest_sequence), (4, 4));
        let second = SignOutPending::record(Some(first), 9, at(9));
        assert_eq!((second.oldest_sequence, second.oldest_time), (4, at(4)));
        assert_eq!((second.latest_sequence, second.latest_time), (9, at(9)));
    }

    #[test]
    fn only_an_acknowledgement_of_the_newest_change_clears() {
        let pending =
            SignOutPending::record(Some(SignOutPending::record(None, 4, at(4))), 9, at(9));
        assert_eq!(acknowledge(None, 7), Acknowledgement::Nothing);
        assert_eq!(acknowledge(Some(&pending), 3), Acknowledgement::Nothing);
        assert_eq!(
            acknowledge(Some(&pending), 4),
            Acknowledgement::Partly { through: 4 }
        );
        assert_eq!(
            acknowledge(Some(&pending), 8),
            Acknowledgement::Partly { through: 8 }
        );
        assert_eq!(acknowledge(Some(&pending), 9), Acknowledgement::All);
        assert_eq!(acknowledge(Some(&pending), 12), Acknowledgement::All);
    }

    #[test]
    fn sequences_must_exist() {
        assert!(parse_through("through_sequence", 0).is_err());
        assert!(parse_through("through_sequence", u64::MAX).is_err());
        assert_eq!(parse_through("through_sequence", 3), Ok(3));
        assert!(check_through(5, 5).is_ok());
        assert!(matches!(
            check_through(6, 5),
            Err(DomainError::FailedPrecondition {
                reason: "SEQUENCE_AHEAD_OF_LOG",
                ..
            })
        ));
    }
}
