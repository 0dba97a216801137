//! How a record fails validation, and the field checks every record's validation shares:
//! present, a timestamp, a length (ids are typed: `crate::ids`).

use chrono::{DateTime, NaiveDateTime, Utc};

use super::MAX_RECORD_BYTES;

/// Why a record could not be decoded. The message names the field and the rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("record is {0} bytes, larger than the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("invalid JSON at `{path}`: {reason}")]
    Json { path: String, reason: String },
    #[error("field `{field}` {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl SchemaError {
    pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Parses ISO 8601 with an offset (`…Z`, `…+02:00`) or without one (Python's naive
/// `datetime.utcnow().isoformat()`, read as UTC).
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Some(with_offset.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// Now, as the millisecond ISO 8601 the seed writes.
pub fn now_timestamp() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(super) fn non_empty(field: &'static str, value: &str) -> Result<(), SchemaError> {
    if value.trim().is_empty() {
        return Err(SchemaError::invalid(field, "must not be empty"));
    }
    Ok(())
}

pub(super) fn timestamp(field: &'static str, value: &str) -> Result<(), SchemaError> {
    if parse_timestamp(value).is_none() {
        return Err(SchemaError::invalid(
            field,
            "must be an ISO 8601 timestamp such as 2025-11-02T12:34:56.789Z",
        ));
    }
    Ok(())
}

pub(super) fn max_chars(field: &'static str, value: &str, limit: usize) -> Result<(), SchemaError> {
    let chars = value.chars().count();
    if chars > limit {
        return Err(SchemaError::invalid(
            field,
            format!("has {chars} characters, more than the {limit} allowed"),
        ));
    }
    Ok(())
}
