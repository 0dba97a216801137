//! Connecting RTFM to a Discord server: the invite URL with exactly the permissions the bot
//! needs (and why each), and plain-language explanations of what Discord answers when the
//! set-up is incomplete — a refused token, the Message Content intent not enabled, a channel
//! the bot may not post in.
//!
//! What Discord documents (developer documentation, "Gateway" → close event codes and
//! "Permissions"): a bot that identifies with a privileged intent its application has not
//! enabled is disconnected with close code 4014 "Disallowed intent(s)"; a bad token gets 4004
//! "Authentication failed" on the gateway and 401 on REST; posting where the bot lacks access
//! answers 403 with code 50001 "Missing Access" or 50013 "Missing Permissions".

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use serenity::gateway::GatewayError;
use tracing::warn;

/// One permission the invite asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// Its bit in Discord's permission integer.
    pub bit: u32,
    pub name: &'static str,
    pub why: &'static str,
}

/// Everything RTFM needs in a channel, and nothing more (no administrator, no management).
pub const PERMISSIONS: [Permission; 4] = [
    Permission {
        bit: 10,
        name: "View Channels",
        why: "see the channels it indexes and answers in",
    },
    Permission {
        bit: 11,
        name: "Send Messages",
        why: "post answers",
    },
    Permission {
        bit: 16,
        name: "Read Message History",
        why:
            "reply to the question's message, and catch up on what was posted while it was offline",
    },
    Permission {
        bit: 38,
        name: "Send Messages in Threads",
        why: "answer inside threads and forum posts",
    },
];

/// The OAuth2 scopes of the invite, and why each.
pub const SCOPES: [(&str, &str); 2] = [
    (
        "bot",
        "adds RTFM to the server as a bot user that reads messages and replies",
    ),
    ("applications.commands", "the /rtfm slash command"),
];

/// The permission integer of [`PERMISSIONS`].
pub fn permission_integer() -> u64 {
    PERMISSIONS
        .iter()
        .fold(0, |bits, permission| bits | (1u64 << permission.bit))
}

/// The OAuth2 URL that adds the bot to a server; with `guild_id` the server is preselected.
pub fn invite_url(application_id: u64, guild_id: Option<u64>) -> String {
    let scopes = SCOPES
        .iter()
        .map(|(scope, _)| *scope)
        .collect::<Vec<_>>()
        .join("+");
    let mut url = format!(
        "https://discord.com/oauth2/authorize?client_id={application_id}&scope={scopes}&permissions={}",
        permission_integer()
    );
    if let Some(guild_id) = guild_id {
        url.push_str(&format!("&guild_id={guild_id}&disable_guild_select=true"));
    }
    url
}

/// What `bot invite-url` prints: the URL, then each scope and permission with its reason, then
/// the one setting the URL cannot carry (the Message Content intent).
pub fn invite_text(application_id: u64, guild_id: Option<u64>) -> String {
    let mut text = format!(
        "Open this link, pick your server and press Authorize:\n\n  {}\n\nScopes:\n",
        invite_url(application_id, guild_id)
    );
    for (scope, why) in SCOPES {
        text.push_str(&format!("  {scope:<26} {why}\n"));
    }
    text.push_str(&format!("Permissions ({}):\n", permission_integer()));
    for permission in PERMISSIONS {
        text.push_str(&format!("  {:<26} {}\n", permission.name, permission.why));
    }
    text.push_str(
        "\nAlso required, and not part of the link: Developer Portal → your application → Bot →\n\
         Privileged Gateway Intents → Message Content Intent (on). Without it Discord sends the\n\
         bot no message text and closes its connection (code 4014).\n",
    );
    text
}

/// The application id in a bot token: its first dot-separated part is the bot user's id in
/// base64, and a bot user's id is its application's id. `None` if the token is not shaped so.
pub fn application_id_from_token(token: &str) -> Option<u64> {
    let first = token.split('.').next()?;
    let decoded = decode_base64(first)?;
    let id: u64 = std::str::from_utf8(&decoded).ok()?.parse().ok()?;
    (id > 0).then_some(id)
}

/// Standard or URL-safe base64, padding optional (Discord's token part has none).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|byte| *byte != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// The fix for a gateway error that no retry can cure, or `None` for any other error.
pub fn explain_gateway_error(err: &serenity::Error) -> Option<&'static str> {
    let serenity::Error::Gateway(gateway) = err else {
        return None;
    };
    match gateway {
        GatewayError::DisallowedGatewayIntents => Some(
            "Discord refused the Message Content intent (gateway close code 4014). Enable it: \
             Developer Portal → your application → Bot → Privileged Gateway Intents → Message \
             Content Intent, save, then restart the bot.",
        ),
        GatewayError::InvalidGatewayIntents => Some(
            "Discord refused the bot's gateway intents as invalid (close code 4013); this is a \
             bug in RTFM, please report it.",
        ),
        GatewayError::InvalidAuthentication => Some(
            "Discord refused DISCORD_TOKEN (gateway close code 4004). Copy the token again: \
             Developer Portal → your application → Bot → Reset Token, put it in .env, restart.",
        ),
        _ => None,
    }
}

/// The fix for a REST answer of 401 to the bot's token.
pub const TOKEN_REFUSED: &str = "Discord refused DISCORD_TOKEN (401 Unauthorized). Copy the \
    token again: Developer Portal → your application → Bot → Reset Token, put it in .env, \
    restart. (Unset DISCORD_TOKEN to try RTFM in console mode instead.)";

/// Channels already reported as refusing the bot (each is reported once per process).
static REFUSING_CHANNELS: LazyLock<Mutex<HashSet<u64>>> = LazyLock::new(Default::default);

/// Logs, once per channel, that Discord refused a post there for lack of access or permission
/// (403, codes 50001 / 50013), and what to grant. Other refusals are not about set-up. Returns
/// whether it logged.
pub fn report_refused_channel(channel_id: u64, status: u16) -> bool {
    if status != 403 {
        return false;
    }
    let first = REFUSING_CHANNELS
        .lock()
        .map(|mut channels| channels.len() < 10_000 && channels.insert(channel_id))
        .unwrap_or(false);
    if first {
        let needed = PERMISSIONS
            .iter()
            .map(|permission| permission.name)
            .collect::<Vec<_>>()
            .join(", ");
        warn!(
            channel_id,
            "Discord does not let RTFM post in this channel (403): answers there are skipped. \
             Grant the bot {needed} in this channel, or leave it out. (Said once per channel.)"
        );
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_integer_is_view_send_history_and_threads() {
        assert_eq!(permission_integer(), 1024 + 2048 + 65_536 + 274_877_906_944);
        assert_eq!(permission_integer(), 274_877_975_552);
    }

    #[test]
    fn the_invite_url_asks_for_both_scopes_and_the_permissions() {
        assert_eq!(
            invite_url(123, None),
            "https://discord.com/oauth2/authorize?client_id=123&scope=bot+applications.commands&permissions=274877975552"
        );
        assert!(invite_url(123, Some(77)).ends_with("&guild_id=77&disable_guild_select=true"));
    }

    #[test]
    fn the_invite_text_explains_every_scope_and_permission_and_the_intent() {
        let text = invite_text(123, None);
        for permission in PERMISSIONS {
            assert!(text.contains(permission.name) && text.contains(permission.why));
        }
        assert!(text.contains("applications.commands") && text.contains("Message Content Intent"));
    }

    #[test]
    fn the_application_id_is_read_from_the_tokens_first_part() {
        // "MTIzNDU2Nzg5MDEyMzQ1Njc4" is base64 of "123456789012345678".
        assert_eq!(
            application_id_from_token("MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.secret-part"),
            Some(123_456_789_012_345_678)
        );
        assert_eq!(application_id_from_token("not a token"), None);
        assert_eq!(application_id_from_token("bm90LWEtbnVtYmVy.x.y"), None);
        assert_eq!(application_id_from_token(""), None);
    }

    #[test]
    fn a_channel_that_refuses_the_bot_is_reported_once() {
        let channel = 7_000_000_000_000_000_001;
        assert!(report_refused_channel(channel, 403));
        assert!(!report_refused_channel(channel, 403), "once per channel");
        assert!(report_refused_channel(channel + 1, 403));
        assert!(
            !report_refused_channel(channel + 2, 404),
            "not a set-up problem"
        );
    }

    #[test]
    fn only_unfixable_gateway_errors_are_explained() {
        let intents = serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents);
        assert!(explain_gateway_error(&intents).is_some_and(|text| text.contains("4014")));
        let auth = serenity::Error::Gateway(GatewayError::InvalidAuthentication);
        assert!(explain_gateway_error(&auth).is_some_and(|text| text.contains("DISCORD_TOKEN")));
        let other = serenity::Error::Gateway(GatewayError::HeartbeatFailed);
        assert!(explain_gateway_error(&other).is_none());
    }
}
