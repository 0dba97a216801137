//! The gateway websocket: HELLO, IDENTIFY/RESUME, heartbeats, dispatched events, reconnects.

use axum::extract::ws::CloseFrame;

use super::*;

pub(super) async fn gateway_socket(
    State(fake): State<FakeDiscord>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade.on_upgrade(move |socket| run_gateway(fake, socket))
}

pub(super) async fn send(socket: &mut WebSocket, value: Value) -> bool {
    socket
        .send(WsMessage::Text(value.to_string().into()))
        .await
        .is_ok()
}

/// Why Discord would close the connection instead of answering this IDENTIFY (developer
/// documentation, "Gateway" → close event codes): 4004 "Authentication failed" for a token it
/// does not accept, 4014 "Disallowed intent(s)" for a privileged intent the application has not
/// enabled (Message Content is bit 15).
fn identify_refusal(fake: &FakeDiscord, identify: &Value) -> Option<(u16, &'static str)> {
    let options = fake.lock().options.clone();
    if !options.accepts_identify(identify["token"].as_str()) {
        fake.lock().refused_identifies += 1;
        return Some((4004, "Authentication failed."));
    }
    let message_content = identify["intents"].as_u64().unwrap_or(0) & (1 << 15) != 0;
    if message_content && !options.message_content_intent {
        fake.lock().refused_identifies += 1;
        return Some((4014, "Disallowed intent(s)."));
    }
    None
}

/// Counts an open gateway socket while it lives.
struct Open(FakeDiscord);

impl Drop for Open {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.open_sockets = inner.open_sockets.saturating_sub(1);
    }
}

pub(super) async fn run_gateway(fake: FakeDiscord, mut socket: WebSocket) {
    fake.lock().open_sockets += 1;
    let _open = Open(fake.clone());
    let mut commands = fake.gateway.subscribe();
    let mut live = false;
    if !send(
        &mut socket,
        json!({"op": 10, "d": {"heartbeat_interval": 41250}}),
    )
    .await
    {
        return;
    }
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let Some(Ok(frame)) = frame else { return };
                let text = match frame {
                    WsMessage::Text(text) => text.to_string(),
                    WsMessage::Close(_) => return,
                    _ => continue,
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else { continue };
                let reply = match payload["op"].as_u64() {
                    Some(1) => Some(json!({"op": 11})),
                    Some(2) => {
                        if let Some((code, reason)) = identify_refusal(&fake, &payload["d"]) {
                            let frame = CloseFrame { code, reason: reason.into() };
                            let _ = socket.send(WsMessage::Close(Some(frame))).await;
                            return;
                        }
                        let guilds: Vec<Value> = {
                            let mut inner = fake.lock();
                            inner.identifies += 1;
                            let guilds: std::collections::BTreeSet<u64> =
                                inner.channels.values().filter_map(|(guild, _)| *guild).collect();
                            guilds.into_iter().map(|id| json!({"id": id.to_string(), "unavailable": true})).collect()
                        };
                        // A new session: nothing dispatched before it is ever sent to it.
                        live = true;
                        let ready = json!({
                            "v": 10,
                            "user": user(BOT_ID, "rtfm", true),
                            "guilds": guilds,
                            "session_id": "fake-session",
                            "resume_gateway_url": format!("ws://{}/gateway", fake.addr),
                            "application": {"id": BOT_ID.to_string(), "flags": 0},
                        });
                        Some(json!({"op": 0, "t": "READY", "s": fake.next_sequence(), "d": ready}))
                    }
                    Some(6) => {
                        // A resumed session gets what it missed (everything dispatched after
                        // the last sequence it saw), then RESUMED.
                        let seen = payload["d"]["seq"].as_u64().unwrap_or(0);
                        let missed: Vec<Value> = {
                            let mut inner = fake.lock();
                            inner.resumes += 1;
                            inner.dispatched.iter().filter(|(sequence, _, _)| *sequence > seen)
                                .map(|(sequence, event, data)| json!({"op": 0, "t": event, "s": sequence, "d": data}))
                                .collect()
                        };
                        for event in missed {
                            if !send(&mut socket, event).await { return; }
                        }
                        live = true;
                        Some(json!({"op": 0, "t": "RESUMED", "s": fake.next_sequence(), "d": {}}))
                    }
                    _ => None,
                };
                if let Some(reply) = reply {
                    if !send(&mut socket, reply).await {
                        return;
                    }
                }
            }
            command = commands.recv() => {
                match command {
                    Ok(GatewayCommand::Dispatch(sequence, event, data)) => {
                        // Only to an identified or resumed session.
                        if live && !send(&mut socket, json!({"op": 0, "t": event, "s": sequence, "d": data})).await { return; }
                    }
                    Ok(GatewayCommand::Reconnect) => {
                        let _ = send(&mut socket, json!({"op": 7, "d": null})).await;
                        let _ = futures::SinkExt::close(&mut socket).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}
