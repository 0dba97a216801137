//! The community's choices as every service reads them: `rtfm_core::kafka::Follower` against
//! the real broker, with its barrier (`caught_up`).

use std::time::Duration;

use rtfm_core::control::{ChannelPolicy, Refusal, Subjected};
use rtfm_core::kafka::{Follower, KafkaConfig, NotCaughtUp, Producer};
use rtfm_core::ControlRecord;
use test_support::{eventually, services};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_reads_the_choices_to_their_end_and_says_when_it_cannot() {
    // Started before its topic exists: it cannot say it is current, and says why.
    let config = KafkaConfig::new(services::kafka_bootstrap())
        .with_topic_suffix(test_support::unique_suffix());
    let stop = CancellationToken::new();
    let follower = Follower::start(&config, "test", stop.clone()).expect("follower");
    match follower.caught_up(Duration::from_secs(2)).await {
        Err(NotCaughtUp::Broker { reason, .. }) => {
            assert!(reason.contains("init-topics"), "{reason}")
        }
        other => panic!("no topic yet, yet {other:?}"),
    }
    services::create_topics(&config).await;
    // Once it exists (empty), current at once.
    eventually(WAIT, "caught up on the empty topic", || async {
        follower.caught_up(Duration::from_secs(2)).await.ok()
    })
    .await;
    // Written, then read before the barrier returns: the next call sees every choice.
    let producer = Producer::new(&config, "test").expect("producer");
    let member = |indexed| ControlRecord::member(1.into(), 2.into(), indexed);
    for record in [
        member(false),
        ControlRecord::channel(1.into(), 3.into(), false, "excluded"),
        member(true),
    ] {
        producer.send(&record).await.expect("acked");
    }
    follower
        .caught_up(Duration::from_secs(10))
        .await
        .expect("caught up");
    let in_channel_3 = Subjected {
        guild: Some(1.into()),
        channel: 3.into(),
        parent: None,
        author: 9.into(),
        at: None,
    };
    assert!(
        follower
            .state()
            .member(1.into(), 2.into())
            .is_some_and(|choice| choice.indexed),
        "the latest choice wins"
    );
    assert_eq!(
        follower.state().admits(ChannelPolicy::All, &in_channel_3),
        Err(Refusal::Channel)
    );
    // A record nobody can read is passed by; what follows it still counts.
    producer
        .send_raw(
            &config.topics().name(rtfm_core::TopicKind::Control),
            Some("x"),
            b"{not json",
            None,
        )
        .await
        .expect("acked");
    producer
        .send(&ControlRecord::channel(
            1.into(),
            3.into(),
            true,
            "included",
        ))
        .await
        .expect("acked");
    follower
        .caught_up(Duration::from_secs(10))
        .await
        .expect("caught up past the bad record");
    assert_eq!(
        follower.state().admits(ChannelPolicy::All, &in_channel_3),
        Ok(())
    );
    stop.cancel();
}
