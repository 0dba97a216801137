//! Answering a command, privately: at once, as a follow-up, or by replacing the response.
//! Every reply here is ephemeral and can ping nobody.

use serenity::all::{
    CommandInteraction, CreateAllowedMentions, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, EditInteractionResponse,
    Http,
};
use serenity::builder::Builder as _;
use tracing::{error, warn};

use super::text::clip;

fn mentions_none() -> CreateAllowedMentions {
    CreateAllowedMentions::new()
        .empty_users()
        .empty_roles()
        .everyone(false)
}

/// Answers at once, seen by the asker only.
pub(super) async fn reply_now(http: &Http, command: &CommandInteraction, text: &str) {
    let response = CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .content(clip(text))
            .ephemeral(true)
            .allowed_mentions(mentions_none()),
    );
    if let Err(err) = command.create_response(http, response).await {
        error!(error = %err, "could not answer a command");
    }
}

/// A follow-up seen by the asker only (the first one replaces an ephemeral deferral).
pub(super) async fn follow_up(http: &Http, token: &str, text: &str) -> bool {
    let followup = CreateInteractionResponseFollowup::new()
        .content(clip(text))
        .ephemeral(true)
        .allowed_mentions(mentions_none());
    match followup.execute(http, (None, token)).await {
        Ok(_) => true,
        Err(err) => {
            warn!(error = %err, "could not send a command's follow-up");
            false
        }
    }
}

/// Replaces the command's response.
pub(super) async fn edit_response(http: &Http, token: &str, text: &str) {
    let edit = EditInteractionResponse::new()
        .content(clip(text))
        .allowed_mentions(mentions_none());
    if let Err(err) = edit.execute(http, token).await {
        warn!(error = %err, "could not update a command's response");
    }
}
