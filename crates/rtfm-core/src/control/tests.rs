use super::*;

fn at(text: &str) -> DateTime<Utc> {
    parse_timestamp(text).expect("timestamp")
}

fn message(channel: u64, parent: Option<u64>, author: u64, when: &str) -> Subjected {
    Subjected {
        guild: Some(1.into()),
        channel: channel.into(),
        parent: parent.map(ChannelId::new),
        author: author.into(),
        at: Some(at(when)),
    }
}

fn record(mut record: ControlRecord, when: &str) -> ControlRecord {
    record.at = when.to_string();
    record
}

#[test]
fn a_forgotten_member_stays_forgotten_for_what_they_said_before_remember_me() {
    let mut state = ControlState::default();
    let before = message(10, None, 7, "2025-01-01T00:00:00Z");
    assert_eq!(state.admits(ChannelPolicy::All, &before), Ok(()));
    state.apply(&record(
        ControlRecord::member(1.into(), 7.into(), false),
        "2025-02-01T00:00:00Z",
    ));
    assert_eq!(
        state.admits(ChannelPolicy::All, &before),
        Err(Refusal::Member)
    );
    let while_forgotten = message(10, None, 7, "2025-02-15T00:00:00Z");
    assert_eq!(
        state.admits(ChannelPolicy::All, &while_forgotten),
        Err(Refusal::Member)
    );
    state.apply(&record(
        ControlRecord::member(1.into(), 7.into(), true),
        "2025-03-01T00:00:00Z",
    ));
    assert_eq!(
        state.admits(ChannelPolicy::All, &while_forgotten),
        Err(Refusal::Member),
        "what was said while forgotten is not indexed again after remember-me"
    );
    let after = message(10, None, 7, "2025-03-02T00:00:00Z");
    assert_eq!(state.admits(ChannelPolicy::All, &after), Ok(()));
    // Another member, another guild, a DM: untouched.
    assert_eq!(
        state.admits(
            ChannelPolicy::All,
            &message(10, None, 8, "2025-02-15T00:00:00Z")
        ),
        Ok(())
    );
    let elsewhere = Subjected {
        guild: Some(2.into()),
        ..while_forgotten
    };
    assert_eq!(state.admits(ChannelPolicy::All, &elsewhere), Ok(()));
    let dm = Subjected {
        guild: None,
        ..while_forgotten
    };
    assert_eq!(state.admits(ChannelPolicy::All, &dm), Ok(()));
    state.forget_key("member:1:7");
    assert_eq!(state.admits(ChannelPolicy::All, &before), Ok(()));
}

#[test]
fn channels_follow_the_policy_and_threads_their_parent() {
    let mut state = ControlState::default();
    let in_thread = message(11, Some(10), 7, "2025-01-01T00:00:00Z");
    assert_eq!(state.admits(ChannelPolicy::All, &in_thread), Ok(()));
    assert_eq!(
        state.admits(ChannelPolicy::OptIn, &in_thread),
        Err(Refusal::Channel)
    );
    state.apply(&ControlRecord::channel(
        1.into(),
        10.into(),
        true,
        "included",
    ));
    assert_eq!(state.admits(ChannelPolicy::OptIn, &in_thread), Ok(()));
    state.apply(&ControlRecord::channel(
        1.into(),
        11.into(),
        false,
        "thread deleted",
    ));
    assert_eq!(
        state.admits(ChannelPolicy::OptIn, &in_thread),
        Err(Refusal::Channel)
    );
    state.apply(&ControlRecord::channel(
        1.into(),
        10.into(),
        false,
        "excluded",
    ));
    assert_eq!(
        state.admits(
            ChannelPolicy::All,
            &message(10, None, 7, "2025-01-01T00:00:00Z")
        ),
        Err(Refusal::Channel)
    );
    state.apply(&ControlRecord::presence(1.into(), false, "removed"));
    assert_eq!(
        state.admits(
            ChannelPolicy::All,
            &message(12, None, 7, "2025-01-01T00:00:00Z")
        ),
        Err(Refusal::Guild)
    );
    assert_eq!(state.removed_guilds().len(), 1);
    assert_eq!(state.channels_of(1.into()).len(), 2);
}

#[test]
fn solved_marks_come_and_go() {
    let mut state = ControlState::default();
    state.apply(&ControlRecord::solved(1.into(), 20.into(), None, true));
    state.apply(&ControlRecord::solved(
        1.into(),
        10.into(),
        Some(99.into()),
        true,
    ));
    assert!(
        state.is_solved(1.into(), 20.into(), 5.into()),
        "every message of a solved post"
    );
    assert!(state.is_solved(1.into(), 10.into(), 99.into()));
    assert!(!state.is_solved(1.into(), 10.into(), 98.into()));
    assert!(
        !state.is_solved(2.into(), 20.into(), 5.into()),
        "another guild"
    );
    state.apply(&ControlRecord::solved(1.into(), 20.into(), None, false));
    assert!(!state.thread_solved(1.into(), 20.into()));
    state.forget_key("solved:1:10:99");
    assert!(!state.is_solved(1.into(), 10.into(), 99.into()));
}

#[test]
fn receipts_are_kept_per_subject() {
    let mut state = ControlState::default();
    state.apply(&ControlRecord::receipt(
        1.into(),
        Subject::Member(7.into()),
        "r1",
        3,
        false,
    ));
    state.apply(&ControlRecord::receipt(
        1.into(),
        Subject::Member(7.into()),
        "r1",
        5,
        true,
    ));
    let receipt = state
        .receipt(1.into(), Subject::Member(7.into()))
        .expect("receipt");
    assert_eq!((receipt.removed, receipt.done), (5, true));
    assert!(state
        .receipt(1.into(), Subject::Channel(7.into()))
        .is_none());
    state.forget_key("receipt:1:member:7");
    assert!(state.receipt(1.into(), Subject::Member(7.into())).is_none());
}
