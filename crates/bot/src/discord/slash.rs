//! Slash commands as they arrive: a question goes through the [`Pipeline`](crate::pipeline)
//! (acknowledged within Discord's 3 s, answered as a follow-up), anything else to the
//! community's choices.

use std::sync::Arc;

use serenity::all::{
    CommandInteraction, Context, CreateInteractionResponse, CreateInteractionResponseMessage,
    GuildId,
};
use tracing::{error, warn};

use super::Handler;
use crate::commands::{self, Invocation};
use crate::outbox::{Outbox, Target};
use crate::pipeline::Via;
use crate::records::Incoming;
use crate::view::authored_by;

impl Handler {
    /// `/rtfm ask` (and `/rtfm question:`) through the pipeline; every other subcommand to the
    /// community's choices.
    pub(super) async fn on_command(&self, ctx: &Context, command: &CommandInteraction) {
        let question = match commands::parse(&command.data.name, &command.data.options) {
            Invocation::Ask(question) => question,
            other => {
                match &self.community {
                    Some(community) => {
                        community
                            .handle(&ctx.http, command, other, self.bot_id())
                            .await
                    }
                    None => warn!("a member's or moderator's command arrived, but choices are not handled here"),
                }
                return;
            }
        };
        let incoming = Incoming {
            message_id: command.id.get(),
            channel_id: command.channel_id.get(),
            guild_id: command.guild_id.map(GuildId::get),
            channel_name: None,
            content: question.clone(),
            timestamp: rtfm_core::schema::now_timestamp(),
            is_trigger: true,
            ..authored_by(&command.user)
        };
        let detected = if question.trim().is_empty() {
            crate::trigger::Detected::Empty
        } else {
            crate::trigger::Detected::Question(question.trim().to_string())
        };
        // What only the asker should see is the response itself, ephemeral: once the command
        // is deferred publicly, its first follow-up is public whatever its flags.
        let private = match detected {
            crate::trigger::Detected::Question(_) => {
                match self.pipeline.admit(command.user.id.get()) {
                    crate::ratelimit::Decision::Allowed => None,
                    crate::ratelimit::Decision::Limited { .. } => {
                        Some(crate::ratelimit::notice(self.pipeline.rate_limit))
                    }
                }
            }
            _ => Some(crate::trigger::USAGE_HINT.to_string()),
        };
        if let Some(text) = private {
            let response = CreateInteractionResponse::Message(
                CreateInteractionResponseMessage::new()
                    .content(text)
                    .ephemeral(true),
            );
            if let Err(err) = command.create_response(&ctx.http, response).await {
                error!(error = %err, "could not answer /rtfm");
            }
            return;
        }
        // Acknowledge within Discord's 3 s; the answer arrives as a follow-up.
        if let Err(err) = command.defer(&ctx.http).await {
            error!(error = %err, "could not acknowledge /rtfm");
            return;
        }
        let target = Target {
            channel_id: command.channel_id.get(),
            reply_to: None,
            interaction_token: Some(command.token.clone()),
        };
        let outbox = Outbox::Discord(Arc::clone(&ctx.http));
        if let Err(err) = self
            .pipeline
            .on_trigger(
                &incoming,
                detected,
                target,
                Via::Slash,
                &outbox,
                &self.shutdown,
            )
            .await
        {
            error!(error = %format!("{err:#}"), "could not publish a /rtfm question");
        }
    }
}
