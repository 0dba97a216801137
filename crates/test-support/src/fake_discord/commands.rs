//! Registering application commands, as strictly as Discord does (Application Commands:
//! names, descriptions, subcommands never beside other options; `default_member_permissions`
//! kept as sent).

use super::*;

pub(super) async fn register_commands(
    State(fake): State<FakeDiscord>,
    Json(commands): Json<Value>,
) -> Response {
    if let Some(refusal) = command_refusal(&commands) {
        return refusal;
    }
    let registered = as_registered(commands);
    fake.lock().commands = registered.clone();
    Json(Value::Array(registered)).into_response()
}

pub(super) async fn register_guild_commands(
    State(fake): State<FakeDiscord>,
    Path((_app, guild)): Path<(u64, u64)>,
    Json(commands): Json<Value>,
) -> Response {
    if let Some(refusal) = command_refusal(&commands) {
        return refusal;
    }
    let registered = as_registered(commands);
    fake.lock().guild_commands.insert(guild, registered.clone());
    Json(Value::Array(registered)).into_response()
}

/// What Discord refuses in a command registration (400, 50035 Invalid Form Body): a name
/// that is not 1–32 lowercase letters, digits, `-` or `_`; a description not 1–100
/// characters; subcommands (types 1, 2) beside other options on one level, which Discord
/// forbids ("using subcommands or subcommand groups will make your base command unusable").
fn command_refusal(commands: &Value) -> Option<Response> {
    fn level_refusal(options: &[Value]) -> Option<String> {
        let subcommands = options
            .iter()
            .filter(|option| matches!(option["type"].as_u64(), Some(1 | 2)))
            .count();
        if subcommands > 0 && subcommands < options.len() {
            return Some("subcommands and other options on one level".into());
        }
        options.iter().find_map(|option| {
            name_refusal(option)
                .or_else(|| level_refusal(option["options"].as_array().map_or(&[], Vec::as_slice)))
        })
    }
    fn name_refusal(item: &Value) -> Option<String> {
        let name = item["name"].as_str().unwrap_or_default();
        let description = item["description"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .count();
        let name_ok = (1..=32).contains(&name.chars().count())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            return Some(format!("name {name:?}"));
        }
        (!(1..=100).contains(&description)).then(|| format!("description of {name:?}"))
    }
    let refusal = commands.as_array()?.iter().find_map(|command| {
        name_refusal(command)
            .or_else(|| level_refusal(command["options"].as_array().map_or(&[], Vec::as_slice)))
    })?;
    Some(
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 50035, "message": "Invalid Form Body", "errors": {"_errors": [{"code": "APPLICATION_COMMAND_INVALID", "message": refusal}]}})),
        )
            .into_response(),
    )
}

/// Commands as Discord returns them once registered.
fn as_registered(commands: Value) -> Vec<Value> {
    commands
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, mut command)| {
            command["id"] = json!((5000 + index).to_string());
            command["application_id"] = json!(BOT_ID.to_string());
            command["version"] = json!("1");
            command["type"] = json!(1);
            // Kept as sent (a decimal string, or null: everyone).
            if command.get("default_member_permissions").is_none() {
                command["default_member_permissions"] = Value::Null;
            }
            command
        })
        .collect()
}
