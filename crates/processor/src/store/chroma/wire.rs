//! What Chroma's `/api/v2` answers, as we read it, and how its failures are sorted.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::store::{Filter, Scalar, StoreError};

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

/// `filter` as Chroma's `where`; `None` for every message (Chroma rejects an empty `where`,
/// and an `$and` or `$or` of fewer than two operands).
pub(super) fn to_where(filter: &Filter) -> Option<Value> {
    let scalar = |value: &Scalar| match value {
        Scalar::Text(text) => json!(text),
        Scalar::Int(number) => json!(number),
        Scalar::Bool(flag) => json!(flag),
    };
    let joined = |operator: &str, parts: &[Filter]| {
        let mut parts: Vec<Value> = parts.iter().filter_map(to_where).collect();
        match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(json!({ operator: parts })),
        }
    };
    match filter {
        Filter::All => None,
        Filter::Eq(field, value) => Some(json!({ field.key(): {"$eq": scalar(value)} })),
        Filter::In(field, values) => {
            Some(json!({ field.key(): {"$in": values.iter().map(scalar).collect::<Vec<_>>()} }))
        }
        Filter::Between(field, from, to) => Some(json!({"$and": [
            { field.key(): {"$gte": from} },
            { field.key(): {"$lte": to} },
        ]})),
        Filter::And(parts) => joined("$and", parts),
        // An `$or` with an everything-operand selects everything.
        Filter::Or(parts) if parts.contains(&Filter::All) => None,
        Filter::Or(parts) => joined("$or", parts),
    }
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

    #[test]
    fn filters_become_chromas_where() {
        use crate::store::Field;
        let channel = Filter::any_of(Field::Channel, ["2"]);
        assert_eq!(
            to_where(&channel),
            Some(json!({"channel_id": {"$eq": "2"}}))
        );
        assert_eq!(to_where(&Filter::All), None);
        // Chroma refuses an `$or` or `$and` of one operand: it is the operand.
        assert_eq!(
            to_where(&Filter::And(vec![channel.clone(), Filter::All])),
            Some(json!({"channel_id": {"$eq": "2"}}))
        );
        let threads = Filter::any_of(Field::ThreadParent, ["2", "3"]);
        assert_eq!(
            to_where(&Filter::either([channel.clone(), threads])),
            Some(json!({"$or": [
                {"channel_id": {"$eq": "2"}},
                {"thread_parent_channel_id": {"$in": ["2", "3"]}}]}))
        );
        assert_eq!(
            to_where(&Filter::all_of([
                channel,
                Filter::any_of(Field::TimeBucket, [7i64, 8]),
                Filter::Between(Field::Epoch, 1.0, 2.5),
            ])),
            Some(json!({"$and": [
                {"channel_id": {"$eq": "2"}},
                {"time_bucket": {"$in": [7, 8]}},
                {"$and": [{"timestamp_epoch": {"$gte": 1.0}}, {"timestamp_epoch": {"$lte": 2.5}}]}]}))
        );
        assert_eq!(to_where(&Filter::Or(vec![Filter::All])), None);
    }
}
