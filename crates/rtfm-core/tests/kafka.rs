//! rtfm-core against the real Kafka broker: round trips, consumer groups, offsets, dead letters
//! and transactions. Each test uses its own topics (random suffix).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use rtfm_core::kafka::{
    dlq_headers, Consumer, ConsumerOptions, KafkaConfig, Producer, TransactionalProducer,
};
use rtfm_core::schema::now_timestamp;
use rtfm_core::{BotQuery, BotResponse, DiscordMessage, Record, ResponseMetadata};
use serde_json::{json, Map};
use test_support::{eventually, services};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

fn message(id: u64, channel: u64) -> DiscordMessage {
    DiscordMessage {
        message_id: id.into(),
        content: format!("message number {id}"),
        username: "tester".into(),
        user_id: 42.into(),
        channel_id: channel.into(),
        timestamp: now_timestamp(),
        metadata: Map::from_iter([("channel_name".to_string(), json!("general"))]),
        guild_id: Some(7.into()),
        event: Default::default(),
        reply_to_message_id: None,
        extra: Map::new(),
        ..Default::default()
    }
}

fn query(id: u64) -> BotQuery {
    BotQuery {
        query_id: format!("query-{id}").parse().expect("a query id"),
        original_message_id: id.into(),
        question: "how do I rotate the API key?".into(),
        username: "tester".into(),
        user_id: 42.into(),
        channel_id: 5.into(),
        timestamp: now_timestamp(),
        context: Map::new(),
        guild_id: Some(7.into()),
        visible_channel_ids: None,
        extra: Map::new(),
    }
}

fn response_for(query: &BotQuery) -> BotResponse {
    BotResponse {
        response_id: format!("response-{}", query.query_id),
        query_id: query.query_id.clone(),
        original_message_id: query.original_message_id,
        response_text: "rotate it in the settings".into(),
        channel_id: query.channel_id,
        timestamp: now_timestamp(),
        metadata: ResponseMetadata {
            model: "test".into(),
            ..Default::default()
        },
        guild_id: query.guild_id,
        extra: Map::new(),
    }
}

async fn receive_n<T: Record>(consumer: &Consumer<T>, n: usize, store: bool) -> Vec<T> {
    let shutdown = CancellationToken::new();
    let mut records = Vec::new();
    while records.len() < n {
        let received = tokio::time::timeout(WAIT, consumer.recv(&shutdown))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {n} records arrived within {WAIT:?}",
                    records.len()
                )
            })
            .expect("consumer works")
            .expect("not shut down");
        if store {
            consumer.store(&received);
        }
        records.push(received.record);
    }
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn each_topic_round_trips_a_typed_record() {
    let config = services::kafka_with_topics().await;
    let producer = Producer::new(&config, "test").expect("producer");
    let dead_letters = producer.clone();

    let sent_message = message(1001, 5);
    producer.send(&sent_message).await.expect("message acked");
    let sent_query = query(1002);
    producer.send(&sent_query).await.expect("query acked");
    let sent_response = response_for(&sent_query);
    producer.send(&sent_response).await.expect("response acked");

    // One group per topic, as in the services. Members of one group subscribed to different
    // topics would rebalance together, and a member that is not being polled (the test reads
    // the three one after another) holds every rebalance of the group up for its poll interval.
    let messages: Consumer<DiscordMessage> = Consumer::new(
        &config,
        &ConsumerOptions::new("round-trip-messages", "test"),
        dead_letters.clone(),
    )
    .expect("consumer");
    let queries: Consumer<BotQuery> = Consumer::new(
        &config,
        &ConsumerOptions::new("round-trip-queries", "test"),
        dead_letters.clone(),
    )
    .expect("consumer");
    let responses: Consumer<BotResponse> = Consumer::new(
        &config,
        &ConsumerOptions::new("round-trip-responses", "test"),
        dead_letters,
    )
    .expect("consumer");
    assert_eq!(receive_n(&messages, 1, true).await, vec![sent_message]);
    assert_eq!(receive_n(&queries, 1, true).await, vec![sent_query]);
    assert_eq!(receive_n(&responses, 1, true).await, vec![sent_response]);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_consumers_in_one_group_share_the_three_partitions() {
    let config = services::kafka_with_topics().await;
    let producer = Producer::new(&config, "test").expect("producer");
    let options = ConsumerOptions::new("sharing", "test");
    let first: Consumer<DiscordMessage> =
        Consumer::new(&config, &options, producer.clone()).expect("consumer");
    let second: Consumer<DiscordMessage> =
        Consumer::new(&config, &options, producer.clone()).expect("consumer");

    // Barrier: both members own partitions before anything is produced. Otherwise the first
    // member to join can take all three partitions and drain every record before the second
    // one is even in the group. Both are polled while waiting: a rebalance completes only when
    // each member serves it from its poll.
    let shutdown = CancellationToken::new();
    let mut early = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (mut a, mut b) = (first.assigned_partitions(), second.assigned_partitions());
        let mut union: Vec<i32> = a.drain(..).chain(b.drain(..)).collect();
        union.sort();
        if !first.assigned_partitions().is_empty()
            && !second.assigned_partitions().is_empty()
            && union == vec![0, 1, 2]
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group never settled with two members: {:?} {:?}",
            first.assigned_partitions(),
            second.assigned_partitions()
        );
        tokio::select! {
            received = first.recv(&shutdown) => early.push(received),
            received = second.recv(&shutdown) => early.push(received),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    assert!(early.is_empty(), "nothing was produced yet");

    // Messages over many channels so every partition gets some.
    let total = 60;
    for id in 0..total {
        producer
            .send(&message(10_000 + id, id % 12))
            .await
            .expect("acked");
    }
    let mut seen = BTreeSet::new();
    let mut by_consumer = [0usize; 2];
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < total as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {total} arrived",
            seen.len()
        );
        tokio::select! {
            received = first.recv(&shutdown) => {
                let received = received.expect("ok").expect("some");
                first.store(&received);
                by_consumer[0] += 1;
                seen.insert(received.record.message_id);
            }
            received = second.recv(&shutdown) => {
                let received = received.expect("ok").expect("some");
                second.store(&received);
                by_consumer[1] += 1;
                seen.insert(received.record.message_id);
            }
        }
    }
    let first_partitions = first.assigned_partitions();
    let second_partitions = second.assigned_partitions();
    let mut all: Vec<i32> = first_partitions
        .iter()
        .chain(&second_partitions)
        .copied()
        .collect();
    all.sort();
    assert_eq!(
        all,
        vec![0, 1, 2],
        "the group covers each partition once: {first_partitions:?} {second_partitions:?}"
    );
    assert!(
        !first_partitions.is_empty() && !second_partitions.is_empty(),
        "both members own partitions"
    );
    assert!(
        by_consumer[0] > 0 && by_consumer[1] > 0,
        "both members received records: {by_consumer:?}"
    );
    assert_eq!(
        by_consumer[0] + by_consumer[1],
        total as usize,
        "no record delivered twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_consumer_resumes_exactly_after_its_stored_offsets() {
    let config = services::kafka_with_topics().await;
    let producer = Producer::new(&config, "test").expect("producer");
    // One channel, so one partition and a total order.
    for id in 0..10 {
        producer
            .send(&message(20_000 + id, 9))
            .await
            .expect("acked");
    }
    let options = ConsumerOptions::new("resume", "test");
    {
        let consumer: Consumer<DiscordMessage> =
            Consumer::new(&config, &options, producer.clone()).expect("consumer");
        let first_six = receive_n(&consumer, 6, true).await;
        assert_eq!(first_six.last().map(|m| m.message_id.get()), Some(20005));
        // Read two more without storing them: their effect was "not durable".
        receive_n(&consumer, 2, false).await;
        consumer.commit().await.expect("commit stored offsets");
    }
    let consumer: Consumer<DiscordMessage> =
        Consumer::new(&config, &options, producer).expect("consumer");
    let rest: Vec<u64> = receive_n(&consumer, 4, true)
        .await
        .into_iter()
        .map(|m| m.message_id.get())
        .collect();
    assert_eq!(
        rest,
        vec![20006, 20007, 20008, 20009],
        "nothing re-read, nothing skipped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn commit_soon_commits_what_is_stored_without_waiting_for_auto_commit() {
    let config = services::kafka_with_topics().await;
    let producer = Producer::new(&config, "test").expect("producer");
    let mut delivered = Vec::new();
    for id in 0..5 {
        delivered.push(
            producer
                .send(&message(30_000 + id, 9))
                .await
                .expect("acked"),
        );
    }
    // Auto-commit an hour away: anything committed within the test was committed by
    // commit_soon.
    let options =
        ConsumerOptions::new("soon", "test").auto_commit_every(Duration::from_secs(3_600));
    let consumer: Consumer<DiscordMessage> =
        Consumer::new(&config, &options, producer).expect("consumer");
    receive_n(&consumer, 3, true).await;
    receive_n(&consumer, 2, false).await;
    consumer.commit_soon();
    let third = &delivered[2];
    services::until_group_passed(
        &config,
        "soon",
        rtfm_core::TopicKind::DiscordMessages,
        &[(third.partition, third.offset)],
        WAIT,
    )
    .await;
    let committed = rtfm_core::kafka::group::committed_offsets(
        &config,
        "soon",
        rtfm_core::TopicKind::DiscordMessages,
    )
    .await
    .expect("offsets");
    assert_eq!(
        committed.get(&third.partition),
        Some(&(third.offset + 1)),
        "exactly the stored prefix is committed, not the two records read after it"
    );
}

fn malformed_payloads() -> Vec<Vec<u8>> {
    let valid = serde_json::to_value(message(1, 1)).expect("json");
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    for i in 0..25 {
        payloads.push(format!("{{\"message_id\": \"{i}\", broken").into_bytes());
        let mut wrong_type = valid.clone();
        wrong_type["user_id"] = json!(i);
        payloads.push(serde_json::to_vec(&wrong_type).expect("json"));
        let mut missing = valid.clone();
        missing
            .as_object_mut()
            .expect("object")
            .remove("channel_id");
        payloads.push(serde_json::to_vec(&missing).expect("json"));
        let mut oversized = valid.clone();
        oversized["content"] = json!("x".repeat(4_001 + i));
        payloads.push(serde_json::to_vec(&oversized).expect("json"));
    }
    payloads
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_records_go_to_the_dead_letter_topic_and_valid_ones_still_arrive() {
    let config = services::kafka_with_topics().await;
    let producer = Producer::new(&config, "test").expect("producer");
    let topics = config.topics();
    let topic = topics.name(rtfm_core::TopicKind::DiscordMessages);
    let malformed = malformed_payloads();
    assert_eq!(malformed.len(), 100);
    let mut valid_ids = BTreeSet::new();
    for (i, payload) in malformed.iter().enumerate() {
        producer
            .send_raw(&topic, Some("1"), payload, None)
            .await
            .expect("acked");
        let valid = message(30_000 + i as u64, 1);
        valid_ids.insert(valid.message_id);
        producer.send(&valid).await.expect("acked");
    }

    let consumer: Consumer<DiscordMessage> = Consumer::new(
        &config,
        &ConsumerOptions::new("dlq", "test"),
        producer.clone(),
    )
    .expect("consumer");
    let received: BTreeSet<_> = receive_n(&consumer, 100, true)
        .await
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(
        received, valid_ids,
        "every valid record is delivered, in spite of the garbage between them"
    );

    let dead = read_dead_letters(
        &config,
        &topics.dead_letter(rtfm_core::TopicKind::DiscordMessages),
        100,
    )
    .await;
    assert_eq!(dead.len(), 100);
    let mut offsets = BTreeSet::new();
    for (payload, headers) in &dead {
        assert_eq!(headers.get(dlq_headers::ORIGIN_TOPIC), Some(&topic));
        let partition: i32 = headers
            .get(dlq_headers::ORIGIN_PARTITION)
            .expect("partition header")
            .parse()
            .expect("number");
        assert!((0..3).contains(&partition));
        let error = headers.get(dlq_headers::ERROR).expect("error header");
        assert!(!error.is_empty());
        assert!(malformed.contains(payload), "the original bytes are kept");
        offsets.insert(
            headers
                .get(dlq_headers::ORIGIN_OFFSET)
                .expect("offset header")
                .parse::<i64>()
                .expect("number"),
        );
    }
    // Malformed and valid records alternate on one partition: offsets 0, 2, 4, …
    assert_eq!(offsets, (0..100).map(|i| i * 2).collect::<BTreeSet<i64>>());
    let errors: Vec<&String> = dead
        .iter()
        .filter_map(|(_, h)| h.get(dlq_headers::ERROR))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("content") && e.contains("more than the 4000")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("user_id")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("channel_id")),
        "{errors:?}"
    );
}

async fn read_dead_letters(
    config: &KafkaConfig,
    topic: &str,
    n: usize,
) -> Vec<(Vec<u8>, HashMap<String, String>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", format!("dlq-reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    while out.len() < n {
        let message = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} dead letters arrived", out.len()))
            .expect("recv");
        let mut headers = HashMap::new();
        if let Some(list) = message.headers() {
            for header in list.iter() {
                headers.insert(
                    header.key.to_string(),
                    String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        out.push((message.payload().unwrap_or_default().to_vec(), headers));
    }
    out
}

/// Reads everything committed on `bot-responses` as a `read_committed` consumer would, until
/// `quiet` passes without a new record.
async fn committed_responses(config: &KafkaConfig, quiet: Duration) -> Vec<BotResponse> {
    let producer = Producer::new(config, "test").expect("producer");
    let consumer: Consumer<BotResponse> = Consumer::new(
        config,
        &ConsumerOptions::new(&format!("reader-{}", uuid::Uuid::new_v4()), "test"),
        producer,
    )
    .expect("consumer");
    let shutdown = CancellationToken::new();
    let mut out = Vec::new();
    while let Ok(received) = tokio::time::timeout(quiet, consumer.recv(&shutdown)).await {
        out.push(received.expect("ok").expect("some").record);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_aborted_by_a_crash_shows_nothing_and_the_input_is_processed_again() {
    let config = services::kafka_with_topics().await;
    let producer = Producer::new(&config, "test").expect("producer");
    let input = query(40_001);
    producer.send(&input).await.expect("acked");
    let transactional_id = format!("txn-test-{}", uuid::Uuid::new_v4());
    let options = ConsumerOptions::new("txn", "test").transactional();

    // First incarnation: consumes the query, produces the response inside a transaction, and
    // "crashes" before committing: the producer is leaked with its transaction open (no abort,
    // no flush, like `kill -9`); the consumer leaves the group without committing anything.
    {
        let consumer: Consumer<BotQuery> =
            Consumer::new(&config, &options, producer.clone()).expect("consumer");
        let transactional = TransactionalProducer::new(&config, &transactional_id)
            .await
            .expect("txn producer");
        let received = receive_n(&consumer, 1, false).await;
        assert_eq!(received, vec![input.clone()]);
        transactional.begin().await.expect("begin");
        transactional
            .send(&response_for(&input))
            .await
            .expect("sent inside the transaction");
        std::mem::forget(transactional);
        drop(consumer);
    }
    let visible = committed_responses(&config, Duration::from_secs(3)).await;
    assert!(
        visible.is_empty(),
        "an uncommitted response is never visible: {visible:?}"
    );

    // Second incarnation, same transactional id: fences the first, re-reads the query (its offset
    // was never committed) and answers it once.
    let consumer: Consumer<BotQuery> =
        Consumer::new(&config, &options, producer.clone()).expect("consumer");
    let transactional = TransactionalProducer::new(&config, &transactional_id)
        .await
        .expect("txn producer");
    let shutdown = CancellationToken::new();
    let again = tokio::time::timeout(WAIT, consumer.recv(&shutdown))
        .await
        .expect("the query is delivered again")
        .expect("ok")
        .expect("some");
    assert_eq!(again.record, input);
    transactional
        .send_with_offset(&consumer, &again, &[response_for(&input)])
        .await
        .expect("transaction commits");

    let visible = eventually(WAIT, "the committed response", || async {
        let responses = committed_responses(&config, Duration::from_secs(2)).await;
        (!responses.is_empty()).then_some(responses)
    })
    .await;
    assert_eq!(visible.len(), 1, "exactly one response: {visible:?}");
    assert_eq!(visible[0].query_id, input.query_id);

    // And the input offset was committed with it: a new member of the group sees nothing.
    drop(consumer);
    let consumer: Consumer<BotQuery> =
        Consumer::new(&config, &options, producer).expect("consumer");
    let nothing = tokio::time::timeout(Duration::from_secs(5), consumer.recv(&shutdown)).await;
    assert!(
        nothing.is_err(),
        "the answered query is not delivered again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_never_committed_ahead_of_valid_records_still_in_hand() {
    let config = services::kafka_with_topics().await;
    let producer = Producer::new(&config, "test").expect("producer");
    let kind = rtfm_core::TopicKind::DiscordMessages;
    let topic = config.topics().name(kind);
    // One channel, so one partition: a valid record, a bad one, a valid one.
    let first = producer.send(&message(40_001, 5)).await.expect("acked");
    let bad = producer
        .send_raw(&topic, Some("5"), b"not json", None)
        .await
        .expect("acked");
    let last = producer.send(&message(40_002, 5)).await.expect("acked");
    assert_eq!(
        (bad.partition, last.partition),
        (first.partition, first.partition)
    );
    let options =
        ConsumerOptions::new("inhand", "test").auto_commit_every(Duration::from_secs(3_600));
    let consumer: Consumer<DiscordMessage> =
        Consumer::new(&config, &options, producer).expect("consumer");
    let shutdown = CancellationToken::new();
    let a = consumer
        .recv(&shutdown)
        .await
        .expect("ok")
        .expect("a record");
    // Reading the next valid record dead-letters the bad one on the way, while `a` is in hand.
    let c = consumer
        .recv(&shutdown)
        .await
        .expect("ok")
        .expect("a record");
    services::until_dead_lettered(&config, kind, 1, WAIT).await;
    let committed = || async {
        consumer.commit().await.expect("commit");
        rtfm_core::kafka::group::committed_offsets(&config, "inhand", kind)
            .await
            .expect("offsets")
            .get(&first.partition)
            .copied()
    };
    assert!(
        committed()
            .await
            .is_none_or(|offset| offset <= first.offset),
        "nothing committed past the record still in hand"
    );
    consumer.store(&a);
    assert_eq!(
        committed().await,
        Some(bad.offset + 1),
        "done with `a`: past it and the dead letter behind it"
    );
    consumer.store(&c);
    assert_eq!(committed().await, Some(last.offset + 1));
}
