//! A filter over what is stored with each message, in no store's syntax: each adapter
//! translates it (Chroma's `where` lives only in [`super::chroma`]) or evaluates it
//! ([`Filter::matches`], the in-memory adapter).

use rtfm_core::ids::{ChannelId, GuildId, MessageId, UserId};
use serde_json::{Map, Value};

/// What is stored with a message besides its text and vector. Each field's key in the
/// stored metadata is [`Field::key`]: the index format, one place for every adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Guild,
    IsDm,
    Channel,
    ChannelName,
    Author,
    Username,
    DisplayName,
    Nickname,
    Timestamp,
    /// Seconds since the epoch.
    Epoch,
    /// Minutes since the epoch (neighbourhoods are fetched by bucket).
    TimeBucket,
    Message,
    ReplyTo,
    /// `,id,id,`: the users a message mentions.
    Mentions,
    ThreadParent,
    ThreadStarter,
    /// A private thread's parent: for the community's choices only, never for reach.
    PrivateThreadParent,
    /// Questions: RTFM found an answer (`false`: "not found").
    Answered,
    /// Questions: asked by a message, which an answer can link to.
    Linkable,
}

impl Field {
    /// Its key in the stored metadata.
    pub const fn key(self) -> &'static str {
        match self {
            Field::Guild => "guild_id",
            Field::IsDm => "is_dm",
            Field::Channel => "channel_id",
            Field::ChannelName => "channel_name",
            Field::Author => "user_id",
            Field::Username => "username",
            Field::DisplayName => "display_name",
            Field::Nickname => "nickname",
            Field::Timestamp => "timestamp",
            Field::Epoch => "timestamp_epoch",
            Field::TimeBucket => "time_bucket",
            Field::Message => "message_id",
            Field::ReplyTo => "reply_to_message_id",
            Field::Mentions => "mentions",
            Field::ThreadParent => "thread_parent_channel_id",
            Field::ThreadStarter => "thread_starter_message_id",
            Field::PrivateThreadParent => "private_thread_parent_channel_id",
            Field::Answered => "answered",
            Field::Linkable => "linkable",
        }
    }
}

/// One value a field is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Scalar {
    fn from(text: &str) -> Self {
        Scalar::Text(text.to_string())
    }
}

impl From<&String> for Scalar {
    fn from(text: &String) -> Self {
        Scalar::Text(text.clone())
    }
}

impl From<String> for Scalar {
    fn from(text: String) -> Self {
        Scalar::Text(text)
    }
}

/// Ids are stored as their decimal text, as the wire carries them.
macro_rules! id_scalar {
    ($($id:ty),*) => {$(
        impl From<$id> for Scalar {
            fn from(id: $id) -> Self {
                Scalar::Text(id.to_string())
            }
        }

        impl From<&$id> for Scalar {
            fn from(id: &$id) -> Self {
                Scalar::Text(id.to_string())
            }
        }
    )*};
}

id_scalar!(ChannelId, GuildId, MessageId, UserId);

impl From<i64> for Scalar {
    fn from(number: i64) -> Self {
        Scalar::Int(number)
    }
}

impl From<bool> for Scalar {
    fn from(flag: bool) -> Self {
        Scalar::Bool(flag)
    }
}

impl Scalar {
    fn matches(&self, stored: Option<&Value>) -> bool {
        match (self, stored) {
            (Scalar::Text(text), Some(Value::String(stored))) => text == stored,
            (Scalar::Int(number), Some(stored)) => stored.as_i64() == Some(*number),
            (Scalar::Bool(flag), Some(Value::Bool(stored))) => flag == stored,
            _ => false,
        }
    }
}

/// Which messages an operation applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every message.
    All,
    Eq(Field, Scalar),
    /// The field equals one of these.
    In(Field, Vec<Scalar>),
    /// `from <= field <= to` (numbers).
    Between(Field, f64, f64),
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

impl Filter {
    /// `field` is one of `values` (one value: equality).
    pub fn any_of<T: Into<Scalar>>(field: Field, values: impl IntoIterator<Item = T>) -> Self {
        let mut values: Vec<Scalar> = values.into_iter().map(Into::into).collect();
        match values.len() {
            1 => Filter::Eq(field, values.remove(0)),
            _ => Filter::In(field, values),
        }
    }

    /// All of `parts` (`All` parts dropped; one part: itself).
    pub fn all_of(parts: impl IntoIterator<Item = Filter>) -> Self {
        let mut parts: Vec<Filter> = parts
            .into_iter()
            .filter(|part| *part != Filter::All)
            .collect();
        match parts.len() {
            0 => Filter::All,
            1 => parts.remove(0),
            _ => Filter::And(parts),
        }
    }

    /// Any of `parts` (one part: itself; an `All` part: everything).
    pub fn either(parts: impl IntoIterator<Item = Filter>) -> Self {
        let mut parts: Vec<Filter> = parts.into_iter().collect();
        if parts.contains(&Filter::All) {
            return Filter::All;
        }
        match parts.len() {
            1 => parts.remove(0),
            _ => Filter::Or(parts),
        }
    }

    /// Whether a message with `metadata` passes.
    pub fn matches(&self, metadata: &Map<String, Value>) -> bool {
        match self {
            Filter::All => true,
            Filter::Eq(field, value) => value.matches(metadata.get(field.key())),
            Filter::In(field, values) => {
                let stored = metadata.get(field.key());
                values.iter().any(|value| value.matches(stored))
            }
            Filter::Between(field, from, to) => metadata
                .get(field.key())
                .and_then(Value::as_f64)
                .is_some_and(|stored| *from <= stored && stored <= *to),
            Filter::And(parts) => parts.iter().all(|part| part.matches(metadata)),
            Filter::Or(parts) => parts.iter().any(|part| part.matches(metadata)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn metadata(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn one_value_is_an_equality_and_all_parts_vanish() {
        assert_eq!(
            Filter::any_of(Field::Channel, ["5"]),
            Filter::Eq(Field::Channel, "5".into())
        );
        let channel = Filter::any_of(Field::Channel, ["5"]);
        assert_eq!(Filter::all_of([Filter::All, channel.clone()]), channel);
        assert_eq!(Filter::all_of([]), Filter::All);
        assert_eq!(Filter::either([channel, Filter::All]), Filter::All);
    }

    #[test]
    fn filters_match_stored_metadata_by_type() {
        let stored = metadata(
            json!({"channel_id": "5", "time_bucket": 42, "is_dm": false, "timestamp_epoch": 10.5}),
        );
        assert!(Filter::any_of(Field::Channel, ["4", "5"]).matches(&stored));
        assert!(!Filter::any_of(Field::Channel, ["4"]).matches(&stored));
        assert!(Filter::Eq(Field::TimeBucket, 42.into()).matches(&stored));
        assert!(!Filter::Eq(Field::TimeBucket, Scalar::Text("42".into())).matches(&stored));
        assert!(Filter::Eq(Field::IsDm, false.into()).matches(&stored));
        assert!(Filter::Between(Field::Epoch, 10.0, 11.0).matches(&stored));
        assert!(!Filter::Between(Field::Epoch, 11.0, 12.0).matches(&stored));
        assert!(
            !Filter::any_of(Field::Guild, ["1"]).matches(&stored),
            "a missing field matches nothing"
        );
        assert!(Filter::Or(vec![
            Filter::any_of(Field::Guild, ["1"]),
            Filter::any_of(Field::Channel, ["5"])
        ])
        .matches(&stored));
    }
}
