//! `/rtfm` slash commands: deferred, answered once, within the token's life, across restarts.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limited_slash_command_gets_a_notice_only_the_asker_sees() {
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &["--rate-limit-per-minute", "1"]).await;
    // The first one uses the user's quota (and notifies nothing); the second is over it. The
    // gateway hands events to concurrent tasks, so the second is sent only once the first is
    // known to have been counted (its question was published).
    let slash = |id| slash(id, "how do I deploy?");
    fake.push_interaction(slash(901));
    assert_eq!(queries.next(WAIT).await.original_message_id, "901");
    fake.push_interaction(slash(902));
    // Its response itself, ephemeral: a follow-up after a public defer would be public.
    let notice = eventually(WAIT, "the notice", || async {
        fake.callbacks()
            .into_iter()
            .find(|(id, _)| *id == 902)
            .map(|(_, body)| body)
    })
    .await;
    bot.stop().await;
    assert_eq!(notice["type"], 4, "a message, not a deferral: {notice}");
    assert_eq!(notice["data"]["flags"], 64, "only the asker sees it");
    assert!(notice["data"]["content"]
        .as_str()
        .is_some_and(|text| text.starts_with("⏳ You've asked")));
    let posted = fake.attempts();
    assert!(
        posted.iter().all(|post| post.kind == PostKind::Response),
        "no follow-up: {posted:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slash_command_without_an_answer_in_time_gets_one_notice_and_the_late_answer_goes_to_the_channel(
) {
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &["--slash-deadline-secs", "2"]).await;
    fake.push_interaction(slash(903, "how do I deploy?"));
    let query = queries.next(WAIT).await;
    eventually(WAIT, "the timeout notice", || async {
        (!fake.followups().is_empty()).then_some(())
    })
    .await;
    publish(
        &kafka,
        &response(query.query_id.as_str(), 903, "late answer"),
    )
    .await;
    fake.until_posted("the late answer in the channel", WAIT, |p| {
        p.content() == "late answer"
    })
    .await;
    bot.stop().await;
    let attempts = fake.attempts();
    let followups: Vec<_> = attempts
        .iter()
        .filter(|p| p.kind == fake_discord::PostKind::Followup)
        .collect();
    assert_eq!(followups.len(), 1, "exactly one follow-up: {attempts:#?}");
    assert_eq!(followups[0].content(), bot::questions::SLASH_TIMEOUT_NOTICE);
    // It replaces the public "thinking…": public, as Discord shows it, so it says so for all.
    assert!(!followups[0].ephemeral);
    assert_eq!(
        attempts.len(),
        2,
        "the notice and the answer: {attempts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_bot_finishes_a_slash_command_whose_token_is_still_alive() {
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let first = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_interaction(slash(904, "how do I deploy?"));
    let query = queries.next(WAIT).await;
    first.stop().await;
    assert_eq!(
        query.context["interaction"]["token"],
        "interaction-token-904"
    );
    let answer = slash_answer(&query, 904, "answered after a restart");
    let second = TestBot::start(&fake, &kafka, &[]).await;
    publish(&kafka, &answer).await;
    eventually(WAIT, "the follow-up from the new process", || async {
        (!fake.followups().is_empty()).then_some(())
    })
    .await;
    second.stop().await;
    let attempts = fake.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].kind, fake_discord::PostKind::Followup);
    assert_eq!(attempts[0].interaction_id, Some(904));
    assert_eq!(attempts[0].content(), "answered after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slash_command_deferred_before_a_restart_still_gets_its_one_follow_up() {
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let first = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_interaction(slash(905, "how do I deploy?"));
    queries.next(WAIT).await;
    first.stop().await;
    fake.until_disconnected(WAIT).await;
    // No answer ever comes (say the processor is down): the restarted bot still ends the
    // command at its deadline instead of leaving the asker on "thinking…".
    let second = TestBot::start(&fake, &kafka, &["--slash-deadline-secs", "2"]).await;
    eventually(WAIT, "the notice", || async {
        (!fake.followups().is_empty()).then_some(())
    })
    .await;
    second.stop().await;
    let attempts = fake.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].interaction_id, Some(905));
    assert_eq!(attempts[0].content(), bot::questions::SLASH_TIMEOUT_NOTICE);
}
