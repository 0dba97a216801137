//! RTFM's slash commands: what is registered with Discord, and what an invocation asks.
//!
//! Discord allows a command either options or subcommands, not both, and sets who may see a
//! command (`default_member_permissions`) only on a whole top-level command, never on one of
//! its subcommands. So there are two commands (decision 0026):
//! - `/rtfm` for every member: `ask question:…`, `forget-me`, `remember-me`;
//! - `/rtfm-admin` for moderators (Manage Server by default; Discord lets a server change
//!   that, so the bot checks the permission again on every use): `channels action:… channel:…`
//!   and `status`.
//!
//! `/rtfm question:…` (the command as the Python bot and earlier versions registered it, which a
//! Discord client may still send for a while after the new registration) still asks.

use serenity::all::{
    ChannelType, CommandDataOption, CommandDataOptionValue, CommandOptionType, CreateCommand,
    CreateCommandOption, InteractionContext, Permissions,
};

/// The members' command.
pub const MEMBER_COMMAND: &str = "rtfm";
/// The moderators' command.
pub const ADMIN_COMMAND: &str = "rtfm-admin";

/// What a moderator does to a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelAction {
    Include,
    Exclude,
    List,
}

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// A question (possibly empty: the usage hint).
    Ask(String),
    ForgetMe,
    RememberMe,
    /// Moderators: `channel` is absent for `list` (and when forgotten: refused with a hint).
    Channels {
        action: ChannelAction,
        channel: Option<u64>,
    },
    /// Moderators: what RTFM knows of the server, and what it could not answer.
    Status,
    /// Nothing RTFM knows (an old client, another application's command name).
    Unknown(String),
}

impl Invocation {
    /// Whether only moderators may run it.
    pub fn is_admin(&self) -> bool {
        matches!(self, Invocation::Channels { .. } | Invocation::Status)
    }
}

/// The commands to register.
pub fn definitions() -> Vec<CreateCommand> {
    let member = CreateCommand::new(MEMBER_COMMAND)
        .description(
            "Find answers in what this server already said; control what RTFM keeps of you",
        )
        .add_option(
            CreateCommandOption::new(
                CommandOptionType::SubCommand,
                "ask",
                "Find the answer in what this channel already said",
            )
            .add_sub_option(
                CreateCommandOption::new(
                    CommandOptionType::String,
                    "question",
                    "What do you want to know?",
                )
                .required(true),
            ),
        )
        .add_option(CreateCommandOption::new(
            CommandOptionType::SubCommand,
            "forget-me",
            "Remove your messages in this server from RTFM's index, and stop indexing them",
        ))
        .add_option(CreateCommandOption::new(
            CommandOptionType::SubCommand,
            "remember-me",
            "Let RTFM index your new messages in this server again",
        ));
    let admin = CreateCommand::new(ADMIN_COMMAND)
        .description("Moderators: choose which channels RTFM reads, and see what it knows")
        .default_member_permissions(Permissions::MANAGE_GUILD)
        .contexts(vec![InteractionContext::Guild])
        .add_option(
            CreateCommandOption::new(
                CommandOptionType::SubCommand,
                "channels",
                "Include, exclude or list the channels RTFM indexes",
            )
            .add_sub_option(
                CreateCommandOption::new(CommandOptionType::String, "action", "What to do")
                    .required(true)
                    .add_string_choice("include (and read its history)", "include")
                    .add_string_choice("exclude (and remove what is stored)", "exclude")
                    .add_string_choice("list", "list"),
            )
            .add_sub_option(
                CreateCommandOption::new(
                    CommandOptionType::Channel,
                    "channel",
                    "The channel, forum or thread (include and exclude)",
                )
                .channel_types(vec![
                    ChannelType::Text,
                    ChannelType::News,
                    ChannelType::Forum,
                    ChannelType::PublicThread,
                    ChannelType::PrivateThread,
                    ChannelType::NewsThread,
                ]),
            ),
        )
        .add_option(CreateCommandOption::new(
            CommandOptionType::SubCommand,
            "status",
            "Messages indexed per channel, questions of the last 7 days, what RTFM could not answer",
        ));
    vec![member, admin]
}

fn text(option: &CommandDataOption) -> Option<String> {
    match &option.value {
        CommandDataOptionValue::String(text) => Some(text.clone()),
        _ => None,
    }
}

fn channel(option: &CommandDataOption) -> Option<u64> {
    match &option.value {
        CommandDataOptionValue::Channel(id) => Some(id.get()),
        CommandDataOptionValue::String(text) => text.trim().parse().ok(),
        CommandDataOptionValue::Integer(id) => u64::try_from(*id).ok(),
        _ => None,
    }
}

fn find<'a>(options: &'a [CommandDataOption], name: &str) -> Option<&'a CommandDataOption> {
    options.iter().find(|option| option.name == name)
}

/// What `command`/`options` (Discord's `data.name` and `data.options`) ask. A subcommand is
/// read by its name whichever of RTFM's commands carries it (the permission is checked on the
/// subcommand, not on the command it came in).
pub fn parse(command: &str, options: &[CommandDataOption]) -> Invocation {
    if command != MEMBER_COMMAND && command != ADMIN_COMMAND {
        return Invocation::Unknown(command.to_string());
    }
    let sub = options.iter().find_map(|option| match &option.value {
        CommandDataOptionValue::SubCommand(inner) => Some((option.name.as_str(), inner)),
        _ => None,
    });
    let Some((name, inner)) = sub else {
        // `/rtfm question:…`, as registered before subcommands.
        return Invocation::Ask(find(options, "question").and_then(text).unwrap_or_default());
    };
    match name {
        "ask" => Invocation::Ask(find(inner, "question").and_then(text).unwrap_or_default()),
        "forget-me" => Invocation::ForgetMe,
        "status" => Invocation::Status,
        "remember-me" => Invocation::RememberMe,
        "channels" => {
            let action = match find(inner, "action").and_then(text).as_deref() {
                Some("include") => ChannelAction::Include,
                Some("exclude") => ChannelAction::Exclude,
                _ => ChannelAction::List,
            };
            Invocation::Channels {
                action,
                channel: find(inner, "channel").and_then(channel),
            }
        }
        other => Invocation::Unknown(format!("{command} {other}")),
    }
}

/// Whether a member's permissions (the interaction's `member.permissions`) let them run the
/// moderators' commands: Manage Server, or Administrator.
pub fn may_moderate(permissions: Option<Permissions>) -> bool {
    permissions.is_some_and(|permissions| permissions.manage_guild() || permissions.administrator())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serenity::all::ChannelId;

    fn option(name: &str, value: CommandDataOptionValue) -> CommandDataOption {
        serde_json::from_value(serde_json::json!({"name": name, "type": 3, "value": ""}))
            .map(|mut parsed: CommandDataOption| {
                parsed.value = value;
                parsed
            })
            .expect("an option")
    }

    #[test]
    fn invocations_are_read_by_subcommand_and_the_old_form_still_asks() {
        let question = || option("question", CommandDataOptionValue::String("why?".into()));
        assert_eq!(parse("rtfm", &[question()]), Invocation::Ask("why?".into()));
        let ask = option("ask", CommandDataOptionValue::SubCommand(vec![question()]));
        assert_eq!(parse("rtfm", &[ask]), Invocation::Ask("why?".into()));
        let forget = option("forget-me", CommandDataOptionValue::SubCommand(vec![]));
        assert_eq!(parse("rtfm", &[forget]), Invocation::ForgetMe);
        let exclude = option(
            "channels",
            CommandDataOptionValue::SubCommand(vec![
                option("action", CommandDataOptionValue::String("exclude".into())),
                option(
                    "channel",
                    CommandDataOptionValue::Channel(ChannelId::new(42)),
                ),
            ]),
        );
        let parsed = parse("rtfm-admin", std::slice::from_ref(&exclude));
        assert_eq!(
            parsed,
            Invocation::Channels {
                action: ChannelAction::Exclude,
                channel: Some(42)
            }
        );
        assert!(parsed.is_admin());
        // The moderators' subcommand is the same wherever it comes in (checked all the same).
        assert!(parse("rtfm", &[exclude]).is_admin());
        assert!(matches!(parse("other", &[]), Invocation::Unknown(_)));
        let unknown = option("dance", CommandDataOptionValue::SubCommand(vec![]));
        assert!(matches!(parse("rtfm", &[unknown]), Invocation::Unknown(_)));
    }

    #[test]
    fn only_manage_server_or_administrator_moderates() {
        assert!(!may_moderate(None));
        assert!(!may_moderate(Some(Permissions::SEND_MESSAGES)));
        assert!(may_moderate(Some(Permissions::MANAGE_GUILD)));
        assert!(may_moderate(Some(Permissions::ADMINISTRATOR)));
    }

    #[test]
    fn the_definitions_keep_options_and_subcommands_apart_and_guard_the_admin_command() {
        let json = serde_json::to_value(definitions()).expect("json");
        for command in json.as_array().expect("commands") {
            let types: Vec<u64> = command["options"]
                .as_array()
                .expect("options")
                .iter()
                .filter_map(|option| option["type"].as_u64())
                .collect();
            assert!(types.iter().all(|kind| *kind == 1), "{command}");
        }
        assert_eq!(
            json[0]["default_member_permissions"],
            serde_json::Value::Null
        );
        assert_eq!(json[1]["default_member_permissions"], "32");
    }
}
