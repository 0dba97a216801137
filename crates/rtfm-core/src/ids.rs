//! Discord's ids as types: parsed once where a record or an event comes in, numbers inside.
//!
//! On the wire an id is a decimal string (the contract with the Python bot), and that is how
//! these types are read and written by `serde`; a non-numeric, empty or too-long id fails the
//! record's decoding with the field's name, so it reaches the dead-letter topic with its
//! reason instead of meeting a parser further in. A [`GuildId`] cannot be passed where a
//! [`ChannelId`] is meant.

use std::{borrow::Cow, fmt, str::FromStr};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not a Discord id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be a decimal Discord id (up to 20 digits)")]
    NotDecimal,
    /// Discord ids are 64-bit; a 20-digit number past `u64::MAX` is no id.
    #[error("is not a Discord id: larger than 18446744073709551615")]
    TooLarge,
}

/// Reads a decimal Discord id (a "snowflake").
pub fn parse_snowflake(text: &str) -> Result<u64, IdError> {
    if text.is_empty() {
        return Err(IdError::Empty);
    }
    if text.len() > 20 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(IdError::NotDecimal);
    }
    text.parse().map_err(|_| IdError::TooLarge)
}

macro_rules! discord_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            pub const fn new(id: u64) -> Self {
                Self(id)
            }

            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                parse_snowflake(text).map(Self)
            }
        }

        impl From<u64> for $name {
            fn from(id: u64) -> Self {
                Self(id)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                id.0
            }
        }

        /// Compared with its decimal text, as the wire carries it.
        impl PartialEq<str> for $name {
            fn eq(&self, text: &str) -> bool {
                text.parse::<u64>().is_ok_and(|id| id == self.0)
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, text: &&str) -> bool {
                *self == **text
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, text: &String) -> bool {
                *self == **text
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(SnowflakeVisitor).map(Self)
            }
        }

        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> Cow<'static, str> {
                String::schema_name()
            }

            fn json_schema(generator: &mut SchemaGenerator) -> Schema {
                String::json_schema(generator)
            }
        }
    };
}

discord_id!(
    /// A server.
    GuildId
);
discord_id!(
    /// A channel, a thread or a forum post (threads are channels to Discord).
    ChannelId
);
discord_id!(
    /// A message.
    MessageId
);
discord_id!(
    /// A member or any other user.
    UserId
);

struct SnowflakeVisitor;

impl de::Visitor<'_> for SnowflakeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal Discord id in a string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        parse_snowflake(text).map_err(E::custom)
    }
}

/// A question's id (`bot-queries.query_id`): any non-empty text, a UUID when RTFM's bot
/// asked. The processor's answer carries it back, and the bot finds the question by it.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct QueryId(String);

/// A plain string in the published schemas, as before the type existed.
impl JsonSchema for QueryId {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}

impl QueryId {
    pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        if id.trim().is_empty() {
            return Err(IdError::Empty);
        }
        Ok(Self(id))
    }

    /// A new random id (a UUID v4), as the bot gives each question.
    pub fn random() -> Self {
        Self::of_uuid(uuid::Uuid::new_v4())
    }

    pub fn of_uuid(id: uuid::Uuid) -> Self {
        Self(id.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueryId({})", self.0)
    }
}

impl PartialEq<str> for QueryId {
    fn eq(&self, text: &str) -> bool {
        self.0 == text
    }
}

impl PartialEq<&str> for QueryId {
    fn eq(&self, text: &&str) -> bool {
        self.0 == *text
    }
}

impl PartialEq<String> for QueryId {
    fn eq(&self, text: &String) -> bool {
        self.0 == *text
    }
}

impl FromStr for QueryId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        Self::new(text)
    }
}

impl<'de> Deserialize<'de> for QueryId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_travel_as_decimal_strings_and_refuse_anything_else() {
        let id: MessageId = serde_json::from_str(r#""1234567890123456789""#).expect("an id");
        assert_eq!(id.get(), 1_234_567_890_123_456_789);
        assert_eq!(
            serde_json::to_string(&id).expect("encodes"),
            r#""1234567890123456789""#
        );
        for bad in [
            r#""""#,
            r#""12a""#,
            r#""-1""#,
            r#"" 1""#,
            r#""123456789012345678901""#,
            r#""18446744073709551616""#,
            "12",
            "null",
        ] {
            assert!(serde_json::from_str::<ChannelId>(bad).is_err(), "{bad}");
        }
        assert_eq!("".parse::<UserId>(), Err(IdError::Empty));
        assert_eq!("x".parse::<UserId>(), Err(IdError::NotDecimal));
        assert_eq!(
            "18446744073709551616".parse::<UserId>(),
            Err(IdError::TooLarge)
        );
        assert_eq!(format!("{:?}", GuildId::new(7)), "GuildId(7)");
        assert!(GuildId::new(7) == "7" && GuildId::new(7) != "07x");
    }

    #[test]
    fn a_query_id_is_any_text_but_empty() {
        assert!(serde_json::from_str::<QueryId>(r#""  ""#).is_err());
        let id: QueryId = serde_json::from_str(r#""q-1""#).expect("an id");
        assert_eq!(id.as_str(), "q-1");
    }
}
