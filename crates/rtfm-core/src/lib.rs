//! `rtfm-core`: what every RTFM binary shares.
//!
//! - [`schema`]: the wire schemas of `discord-messages`, `bot-queries`, `bot-responses`
//!   (the contract with the Python bot), with validation;
//! - [`control`]: the community's choices (`rtfm-control`) folded into one state, and the rule
//!   that decides whether a message may be indexed or quoted;
//! - [`ids`]: Discord's ids as types (`GuildId`, `ChannelId`, `MessageId`, `UserId`) and the
//!   question's `QueryId`, parsed once where records and events come in;
//! - [`topics`]: the topic table — names, partitions, retention, dead-letter topics, groups;
//! - [`kafka`]: typed producer, at-least-once consumer with dead-lettering, transactions,
//!   topic administration (the only module that uses `rdkafka`);
//! - [`telemetry`]: tracing, Prometheus metrics, `/healthz` `/readyz` `/metrics`, shutdown
//!   signals;
//! - [`config`]: `.env` loading and secret handling helpers for the binaries' clap structs;
//! - [`backoff`]: the one capped, jittered backoff every retry loop uses;
//! - [`redact`]: credentials replaced before anything is published, embedded or stored;
//! - [`text`]: numbers as replies show them;
//! - [`supervise`]: running a service: its bound HTTP endpoint and stop token ([`supervise::Service`]),
//!   its tasks (fail together, stop within a grace period), periodic checks ([`supervise::every`]).

pub mod backoff;
pub mod config;
pub mod control;
pub mod ids;
pub mod kafka;
pub mod redact;
pub mod schema;
pub mod supervise;
pub mod telemetry;
pub mod text;
pub mod topics;

pub use schema::{
    BotQuery, BotResponse, ControlRecord, DiscordMessage, MessageEvent, Record, ResponseMetadata,
};
pub use topics::{TopicKind, Topics};
