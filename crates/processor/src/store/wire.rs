//! What Chroma's `/api/v2` answers, as we read it, and how its failures are sorted.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::StoreError;

/// What `/auth/identity` answers.
#[derive(Deserialize)]
pub(super) struct Identity {
    pub tenant: String,
}

#[derive(Deserialize)]
pub(super) struct Collection {
    pub id: String,
}

/// Chroma's columns may hold `null` for a record (e.g. one stored without a document).
pub(super) type Column<T> = Option<Vec<Option<T>>>;

#[derive(Deserialize)]
pub(super) struct QueryAnswer {
    pub ids: Vec<Vec<String>>,
    #[serde(default)]
    pub documents: Option<Vec<Vec<Option<String>>>>,
    #[serde(default)]
    pub metadatas: Option<Vec<Vec<Option<Metadata>>>>,
    #[serde(default)]
    pub distances: Option<Vec<Vec<Option<f32>>>>,
}

#[derive(Deserialize)]
pub(super) struct GetAnswer {
    pub ids: Vec<String>,
    #[serde(default)]
    pub documents: Column<String>,
    #[serde(default)]
    pub metadatas: Column<Metadata>,
}

/// The first row of a per-query column (we send one query embedding).
pub(super) fn first_row<T>(column: Option<Vec<Vec<T>>>) -> Option<Vec<T>> {
    column.and_then(|rows| rows.into_iter().next())
}

pub(super) type Metadata = Map<String, Value>;

pub(super) fn nth<T: Clone + Default>(column: &Column<T>, index: usize) -> T {
    column
        .as_ref()
        .and_then(|values| values.get(index).cloned().flatten())
        .unwrap_or_default()
}

/// `{}` or `null`: no filter (Chroma rejects an empty `where`).
pub(super) fn is_empty_filter(filter: &Value) -> bool {
    filter.is_null() || filter.as_object().is_some_and(Map::is_empty)
}

/// A transport error in words, with its causes (reqwest's own message is only the outermost).
pub(super) fn transport_error(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A 4xx other than 408/429 is a rejection (the same request would fail again); 408, 429 and
/// 5xx are unavailability.
/// 401 and 403 (a rotated `CHROMA_AUTH_TOKEN`) are an outage to wait out, like 408, 429 and
/// 5xx; any other 4xx is Chroma refusing this request's content.
pub(super) fn classify_status(url: &str, status: u16, reason: String) -> StoreError {
    let unavailable = |reason: String| StoreError::Unavailable {
        url: url.to_string(),
        reason,
    };
    match status {
        401 | 403 => unavailable(format!(
            "{reason} (Chroma refused the credentials: CHROMA_AUTH_TOKEN)"
        )),
        408 | 429 => unavailable(reason),
        400..=499 => StoreError::Rejected(reason),
        _ => unavailable(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;
    use secrecy::SecretString;

    #[test]
    fn client_errors_are_rejections_and_the_rest_is_unavailability() {
        for status in [400, 404, 409, 422] {
            assert!(
                matches!(
                    classify_status("u", status, String::new()),
                    StoreError::Rejected(_)
                ),
                "{status}"
            );
        }
        for status in [401, 403, 408, 429, 500, 502, 503] {
            assert!(
                classify_status("u", status, String::new()).is_unavailable(),
                "{status}"
            );
        }
        let refused = classify_status("u", 401, "HTTP 401".into()).to_string();
        assert!(refused.contains("CHROMA_AUTH_TOKEN"), "{refused}");
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let mut config = StoreConfig::new("http://x", "c");
        config.chroma_auth_token = Some(SecretString::from("chroma-secret-123".to_string()));
        assert!(!format!("{config:?}").contains("chroma-secret-123"));
    }
}
