//! Scale-out as a user does it: several `processor` processes started from one shell with no
//! instance id set, in one consumer group, while messages and questions stream in — and the
//! group churning under them (a member SIGKILLed, a new one joining, one leaving on SIGTERM),
//! and a rebalance storm (a member joining and leaving every few seconds).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use processor::store::{ChromaStore, StoreConfig, VectorStore};
use rtfm_core::kafka::dead_letters::read_records;
use rtfm_core::kafka::Producer;
use rtfm_core::schema::now_timestamp;
use rtfm_core::{BotQuery, BotResponse, DiscordMessage, MessageEvent};
use serde_json::Map;
use test_support::process::{spawn_processor, ServiceProcess};
use test_support::{eventually, http_get, services};

const WAIT: Duration = Duration::from_secs(300);

fn message(i: u64) -> DiscordMessage {
    DiscordMessage {
        message_id: (40_000_000 + i).into(),
        content: format!(
            "scale-out fact {i}: service {} listens on port {}",
            i % 40,
            9000 + i % 40
        ),
        username: format!("user{}", i % 11),
        user_id: (600 + i % 11).into(),
        channel_id: (70 + i % 5).into(),
        timestamp: now_timestamp(),
        metadata: Map::new(),
        guild_id: Some(7.into()),
        event: MessageEvent::Create,
        reply_to_message_id: None,
        extra: Map::new(),
        ..Default::default()
    }
}

fn question(i: u64) -> BotQuery {
    BotQuery {
        query_id: format!("scale-{i}").parse().expect("a query id"),
        original_message_id: (41_000_000 + i).into(),
        question: format!("which port does service {} listen on?", i % 40),
        username: "asker".into(),
        user_id: 4242.into(),
        channel_id: (70 + i % 5).into(),
        timestamp: now_timestamp(),
        context: Map::new(),
        guild_id: Some(7.into()),
        visible_channel_ids: None,
        extra: Map::new(),
    }
}

/// How many committed answers each query has on `bot-responses`.
async fn answers_per_query(
    kafka: &rtfm_core::kafka::KafkaConfig,
) -> Result<BTreeMap<String, usize>, rtfm_core::kafka::dead_letters::DeadLetterReadError> {
    let mut per_query: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, response) in read_records::<BotResponse>(kafka, WAIT).await? {
        *per_query.entry(response.query_id.to_string()).or_default() += 1;
    }
    Ok(per_query)
}

/// Every one of `questions` gets an answer, and none a second one even after the group
/// committed past all of them.
async fn assert_one_answer_each(kafka: &rtfm_core::kafka::KafkaConfig, questions: u64) {
    let answered = eventually(WAIT, "an answer to each question", || async {
        let per_query = answers_per_query(kafka).await.ok()?;
        (per_query.len() as u64 == questions).then_some(per_query)
    })
    .await;
    // Once the group has committed past every question, nothing more can be produced for them.
    let positions: Vec<(i32, i64)> = read_records::<BotQuery>(kafka, WAIT)
        .await
        .expect("questions")
        .into_iter()
        .map(|(partition, offset, _)| (partition, offset))
        .collect();
    services::until_group_passed(
        kafka,
        rtfm_core::topics::GROUP_QUERY_PROCESSOR,
        rtfm_core::TopicKind::BotQueries,
        &positions,
        WAIT,
    )
    .await;
    let per_query = answers_per_query(kafka).await.expect("responses");
    let duplicates: Vec<_> = per_query.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "exactly one answer each: {duplicates:?}"
    );
    assert_eq!(per_query.len(), answered.len());
}

async fn start(
    kafka: &rtfm_core::kafka::KafkaConfig,
    chroma: &str,
    collection: &str,
) -> (ServiceProcess, String) {
    let (process, http) = spawn_processor(
        kafka,
        chroma,
        collection,
        &[("LLM_PROVIDER", "extractive"), ("INGEST_BATCH_SIZE", "64")],
    );
    let readyz = format!("http://{http}/readyz");
    eventually(WAIT, "processor /readyz", || async {
        (http_get(&readyz).await?.0 == 200).then_some(())
    })
    .await;
    (process, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processors_without_ids_share_the_work_through_kills_joins_and_leaves() {
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = format!("scale_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut processors = Vec::new();
    for _ in 0..3 {
        processors.push(start(&kafka, &chroma, &collection).await);
    }
    let producer = Producer::new(&kafka, "test").expect("producer");
    let (messages, questions) = (1_000u64, 150u64);
    // Ten waves of 100 messages and 15 questions; the group changes between waves.
    for wave in 0..10u64 {
        let batch: Vec<DiscordMessage> = (wave * 100..(wave + 1) * 100).map(message).collect();
        for result in join_all(batch.iter().map(|m| producer.send(m))).await {
            result.expect("acked");
        }
        let asked: Vec<BotQuery> = (wave * 15..(wave + 1) * 15).map(question).collect();
        for result in join_all(asked.iter().map(|q| producer.send(q))).await {
            result.expect("acked");
        }
        match wave {
            // A member dies without a word (its partitions wait out its session).
            3 => processors[1].0.kill_9(),
            // A new member joins the busy group.
            5 => processors.push(start(&kafka, &chroma, &collection).await),
            // A member leaves politely.
            7 => {
                let status = processors[0]
                    .0
                    .terminate(Duration::from_secs(30))
                    .expect("exits on SIGTERM");
                assert!(status.success(), "{status:?}");
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    let store = ChromaStore::connect(&StoreConfig::new(&chroma, &collection))
        .await
        .expect("chroma");
    eventually(WAIT, "all 1000 messages indexed", || async {
        (store.count().await.ok()? as u64 == messages).then_some(())
    })
    .await;
    assert_one_answer_each(&kafka, questions).await;
    for (index, (process, _)) in processors.iter_mut().enumerate() {
        if index == 0 || index == 1 {
            continue; // the one that left and the one that was killed
        }
        assert!(process.is_running(), "processor {index} is still alive");
    }
    let _ = store.drop_collection().await;
}

/// A rebalance storm: a third member joins and leaves (SIGTERM or SIGKILL) every few seconds
/// while questions flow. The two steady members never crash and every question gets exactly
/// one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebalance_storm_while_questions_flow_crashes_nothing_and_answers_each_once() {
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = format!("storm_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut steady = [
        start(&kafka, &chroma, &collection).await,
        start(&kafka, &chroma, &collection).await,
    ];
    let producer = Producer::new(&kafka, "test").expect("producer");
    let history: Vec<DiscordMessage> = (0..200).map(message).collect();
    for result in join_all(history.iter().map(|m| producer.send(m))).await {
        result.expect("acked");
    }
    let questions = 100u64;
    let asker = {
        let producer = producer.clone();
        tokio::spawn(async move {
            for i in 0..questions {
                producer.send(&question(i)).await.expect("acked");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    for round in 0..5 {
        let (mut churn, _) = start(&kafka, &chroma, &collection).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if round % 2 == 0 {
            let status = churn
                .terminate(Duration::from_secs(30))
                .expect("exits on SIGTERM");
            assert!(status.success(), "{status:?}");
        } else {
            churn.kill_9();
        }
    }
    asker.await.expect("all questions sent");
    assert_one_answer_each(&kafka, questions).await;
    for (index, (process, _)) in steady.iter_mut().enumerate() {
        assert!(
            process.is_running(),
            "steady processor {index} is still alive"
        );
    }
    let store = ChromaStore::connect(&StoreConfig::new(&chroma, &collection))
        .await
        .expect("chroma");
    let _ = store.drop_collection().await;
}
