//! The processor end to end against the real Kafka broker and the real Chroma server, with a
//! fake model API. Each test has its own topics, groups and collection.

mod common;

use common::*;
use processor::store::{Filter, VectorStore};
use rtfm_core::kafka::Producer;
use rtfm_core::{DiscordMessage, MessageEvent, Record};
use test_support::fake_model::FakeModel;
use test_support::{eventually, services};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_messages_are_indexed_once_and_edits_and_deletes_apply() {
    let messages: Vec<_> = (0..1000u64)
        .map(|i| {
            message(
                5_000_000 + i,
                Some("77"),
                &format!("{}", 100 + i % 4),
                &format!("message {i} about topic {}", i % 13),
                (i % 600) as u32,
            )
        })
        .collect();
    let processor = TestProcessor::start(&messages, &[]).await;
    processor.until_indexed(1000).await;
    let (status, body) = processor.readyz().await;
    assert_eq!(status, 200, "ready once indexing: {body}");
    let (producer, store) = (&processor.producer, &processor.store);

    let stored = store
        .get(&Filter::All, &[5000007.into()], None)
        .await
        .expect("get");
    assert_eq!(stored.len(), 1);
    let metadata = &stored[0].metadata;
    assert_eq!(stored[0].document, "message 7 about topic 7");
    assert_eq!(metadata["guild_id"], "77");
    assert_eq!(metadata["channel_id"], "103");
    assert_eq!(metadata["user_id"], messages[7].user_id.to_string());
    assert_eq!(metadata["username"], messages[7].username.as_str());
    assert_eq!(metadata["message_id"], "5000007");
    assert_eq!(metadata["channel_name"], "general");
    assert_eq!(metadata["timestamp"], "2025-11-02T10:07:00.000Z");
    assert_eq!(metadata["timestamp_epoch"].as_f64(), Some(1_762_078_020.0));

    // The same 1000 again, then a sentinel: once the sentinel is in, the repeats were applied.
    publish(producer, &messages).await;
    let sentinel = message(5_999_999, Some("77"), "100", "sentinel", 0);
    publish(producer, std::slice::from_ref(&sentinel)).await;
    eventually(WAIT, "the sentinel", || async {
        (store.count().await.ok()? == 1001).then_some(())
    })
    .await;

    let mut edit = messages[7].clone();
    edit.event = MessageEvent::Edit;
    edit.content = "message 7, edited".into();
    let mut delete = messages[8].clone();
    delete.event = MessageEvent::Delete;
    delete.content = String::new();
    publish(producer, &[edit, delete]).await;
    eventually(WAIT, "the edit and the delete", || async {
        let edited = store
            .get(&Filter::All, &[5000007.into()], None)
            .await
            .ok()?;
        let deleted = store
            .get(&Filter::All, &[5000008.into()], None)
            .await
            .ok()?;
        (edited.first()?.document == "message 7, edited" && deleted.is_empty()).then_some(())
    })
    .await;
    assert_eq!(store.count().await.expect("count"), 1000);
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_cite_their_source_and_never_cross_a_guild_or_channel() {
    let processor = TestProcessor::start(&conversation(), &["--llm-provider", "extractive"]).await;
    processor.until_indexed(5).await;

    let question = "how can I rotate the deploy key?";
    let same_channel = query(7_100_001, Some("1"), "11", question);
    // Guild 2 asking, even naming guild 1's channel: a forged pair must not widen the scope.
    let other_guild = query(7_100_002, Some("2"), "11", question);
    let other_guild_own_channel = query(7_100_003, Some("2"), "21", question);
    let other_channel = query(7_100_004, Some("1"), "12", question);
    let mut late = query(7_100_006, Some("1"), "11", question);
    late.timestamp = "2025-11-02T12:34:56.789012".into(); // naive, long ago
    let dm_naming_guild_channel = query(7_100_005, None, "11", question);
    let queries = [
        &same_channel,
        &other_guild,
        &other_guild_own_channel,
        &other_channel,
        &dm_naming_guild_channel,
    ];
    processor.producer.send(&late).await.expect("acked");
    for query in queries {
        processor.producer.send(query).await.expect("acked");
    }
    let mut reader = ResponseReader::new(&processor.kafka);
    reader.until("six responses", |seen| seen.len() >= 6).await;
    let late_answer = reader.for_query(late.query_id.as_str())[0];
    assert!(
        late_answer
            .response_text
            .starts_with("⏰ Sorry for the late answer"),
        "{}",
        late_answer.response_text
    );
    assert!(late_answer.response_text.contains("vaultctl"));

    let answer = reader.for_query(same_channel.query_id.as_str())[0];
    assert!(
        answer.response_text.contains("vaultctl rotate"),
        "{}",
        answer.response_text
    );
    assert!(
        answer
            .response_text
            .contains("https://discord.com/channels/1/11/7000002"),
        "{}",
        answer.response_text
    );
    assert!(answer.metadata.source_message_ids.contains(&7000002.into()));
    assert_eq!(answer.metadata.provider.as_deref(), Some("extractive"));
    assert!(!answer.metadata.degraded);
    assert!(answer.metadata.confidence > 0.5);
    assert_eq!(
        answer.metadata.sources_count as usize,
        answer.metadata.source_message_ids.len()
    );
    assert_eq!(answer.original_message_id, "7100001");
    assert_eq!(answer.guild_id, Some(1.into()));

    for query in &queries[1..] {
        let response = reader.for_query(query.query_id.as_str())[0];
        assert!(
            response.response_text.starts_with("I couldn't find this"),
            "{query:?} → {}",
            response.response_text
        );
        assert!(!response.response_text.contains("vaultctl"));
        assert!(response.metadata.source_message_ids.is_empty());
    }
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hosted_embeddings_keep_to_the_batch_limit_and_a_refused_record_is_dead_lettered() {
    let fake = FakeModel::start().await;
    // Gemini refuses batches over 100 (the fake as strict as the API) and one poisoned input.
    fake.refuse_embedding_of("POISON");
    let total = 300u64;
    let poisoned = 8_800_150u64;
    let messages: Vec<DiscordMessage> = (0..total)
        .map(|i| {
            let id = 8_800_000 + i;
            let text = if id == poisoned {
                "POISON pill".to_string()
            } else {
                format!("hosted message {i}")
            };
            message(id, Some("1"), "11", &text, (i / 10) as u32)
        })
        .collect();
    let gemini = fake.gemini_base_url();
    let processor = TestProcessor::start(
        &messages,
        &hosted_embedding_flags(
            &gemini,
            &["--ingest-batch-size", "250", "--llm-provider", "extractive"],
        ),
    )
    .await;
    // Every other message.
    processor.until_indexed((total - 1) as usize).await;
    // The poisoned record.
    let dead = services::until_dead_lettered(
        &processor.kafka,
        rtfm_core::TopicKind::DiscordMessages,
        1,
        WAIT,
    )
    .await;
    processor.stop().await;
    assert_eq!(dead.len(), 1, "only the refused record: {dead:#?}");
    let record = DiscordMessage::decode(&dead[0].payload).expect("the original record");
    assert_eq!(record.message_id.get(), poisoned);
    assert!(
        dead[0].error.contains("content policy"),
        "the provider's own message: {}",
        dead[0].error
    );
    let largest = fake
        .requests()
        .iter()
        .filter(|request| request.path.ends_with(":batchEmbedContents"))
        .map(|request| request.body["requests"].as_array().map_or(0, Vec::len))
        .max()
        .unwrap_or(0);
    assert!(
        (1..=100).contains(&largest),
        "no call over Gemini's limit of 100: largest {largest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_question_is_committed_so_a_restart_does_not_dead_letter_it_again() {
    let kafka = services::kafka_with_topics().await;
    let producer = Producer::new(&kafka, "test").expect("producer");
    // The malformed question is the last record of its partition: no later transaction would
    // carry its offset.
    let topic = kafka.topics().name(rtfm_core::TopicKind::BotQueries);
    let poisoned = producer
        .send_raw(&topic, Some("11"), b"{\"query_id\": 42}", None)
        .await
        .expect("acked");
    let processor =
        TestProcessor::start_on(kafka.clone(), producer, &["--llm-provider", "extractive"]).await;
    // The malformed question.
    services::until_dead_lettered(&kafka, rtfm_core::TopicKind::BotQueries, 1, WAIT).await;
    services::until_group_passed(
        &kafka,
        rtfm_core::topics::GROUP_QUERY_PROCESSOR,
        rtfm_core::TopicKind::BotQueries,
        &[(poisoned.partition, poisoned.offset)],
        WAIT,
    )
    .await;
    // A restarted processor starts after it: still exactly one dead letter.
    let processor = processor.restart().await;
    processor.ask(7_900_001, "anyone here?").await;
    let mut reader = ResponseReader::new(&kafka);
    reader
        .until("the next question answered", |seen| !seen.is_empty())
        .await;
    processor.stop().await;
    let dead =
        services::until_dead_lettered(&kafka, rtfm_core::TopicKind::BotQueries, 1, WAIT).await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pasted_key_is_never_stored_embedded_or_quoted() {
    // Published as by anything but our bot (which redacts before publishing): the processor
    // redacts again before it embeds and stores. The key is made up, in AWS's real format.
    let key = "AKIAIOSFODNN7EXAMPLE";
    let password = "s3cr3t-passw0rd";
    let messages = vec![
        message(
            7_600_001,
            Some("1"),
            "11",
            "how do I configure the deploy credentials for the backup job?",
            0,
        ),
        message(
            7_600_002,
            Some("1"),
            "11",
            &format!("put the deploy credentials in backup.conf: aws_key {key} and DB_PASSWORD={password}, then restart the backup job"),
            1,
        ),
    ];
    let processor = TestProcessor::start(&messages, &[]).await;
    processor.until_indexed(2).await;
    let stored = processor
        .store
        .get(&Filter::All, &[7600002.into()], None)
        .await
        .expect("get");
    let trace = format!("{:?} {:?}", stored[0].document, stored[0].metadata);
    assert!(!trace.contains(key) && !trace.contains(password), "{trace}");
    assert!(
        stored[0].document.contains("[redacted AWS key]")
            && stored[0].document.contains("DB_PASSWORD=[redacted secret]")
            && stored[0].document.contains("restart the backup job"),
        "the rest stays searchable: {}",
        stored[0].document
    );

    processor
        .ask(
            7_600_003,
            "how do I configure the deploy credentials for the backup job?",
        )
        .await;
    let mut reader = ResponseReader::new(&processor.kafka);
    reader.until("the answer", |seen| !seen.is_empty()).await;
    let answer = &reader.seen[0].response_text;
    assert!(
        answer.contains("[redacted AWS key]"),
        "quoted, redacted: {answer}"
    );
    assert!(
        !answer.contains(key) && !answer.contains(password),
        "{answer}"
    );
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_retention_only_messages_younger_than_it_stay_in_the_index() {
    // Two messages of 2025-11-02 and one of now.
    let mut recent = message(7_700_003, Some("1"), "11", "said just now", 0);
    recent.timestamp = rtfm_core::schema::now_timestamp();
    let messages = vec![
        message(7_700_001, Some("1"), "11", "said long ago", 0),
        message(7_700_002, Some("1"), "11", "also long ago", 1),
        recent,
    ];
    let processor = TestProcessor::start(&messages, &[]).await;
    processor.until_indexed(3).await;
    let processor = processor
        .restart_with(|config| config.index_retention_days = Some(30))
        .await;
    processor.until_indexed(1).await;
    let left = processor
        .store
        .get(&Filter::All, &[], None)
        .await
        .expect("get");
    assert_eq!(left[0].id, "7700003", "the recent one stays");
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_go_to_the_configured_tenant_and_database_created_if_missing() {
    let chroma = test_support::services::chroma_url();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let (tenant, database) = (format!("rtfm_t_{suffix}"), format!("rtfm_db_{suffix}"));
    // Tenants are the Chroma operator's to create; the database is RTFM's.
    let created = reqwest::Client::new()
        .post(format!("{chroma}/api/v2/tenants"))
        .json(&serde_json::json!({ "name": tenant }))
        .send()
        .await
        .expect("Chroma answers");
    assert!(created.status().is_success(), "{created:?}");
    let messages: Vec<_> = (0..3u64)
        .map(|i| {
            message(
                7_800_001 + i,
                Some("1"),
                "11",
                &format!("fact {i}"),
                i as u32,
            )
        })
        .collect();
    let processor = TestProcessor::start(
        &messages,
        &["--chroma-tenant", &tenant, "--chroma-database", &database],
    )
    .await;
    let mut elsewhere = processor::store::StoreConfig::new(&chroma, processor.collection());
    elsewhere.chroma_tenant = Some(tenant.clone());
    elsewhere.chroma_database = database.clone();
    let there = processor::store::ChromaStore::connect(&elsewhere)
        .await
        .expect("the tenant's database");
    eventually(WAIT, "three messages in the tenant's database", || async {
        (there.count().await.ok()? == 3).then_some(())
    })
    .await;
    assert_eq!(
        processor.store.count().await.expect("count"),
        0,
        "nothing in the default tenant's database"
    );
    there.drop_collection().await.expect("cleanup");
    processor.stop().await;

    let mut missing = elsewhere.clone();
    missing.chroma_tenant = Some(format!("rtfm_missing_{suffix}"));
    let refused = processor::store::ChromaStore::connect(&missing)
        .await
        .err()
        .expect("a missing tenant is refused");
    assert!(refused.to_string().contains("CHROMA_TENANT"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_question_asked_again_links_to_where_it_was_answered_before() {
    let processor = TestProcessor::start(&conversation(), &[]).await;
    processor.until_indexed(5).await;
    let first = processor
        .answer(7_950_001, "how do I rotate the deploy key?")
        .await;
    assert!(
        !first
            .response_text
            .contains(processor::prompt::ASKED_BEFORE),
        "{}",
        first.response_text
    );
    let mut reader = ResponseReader::new(&processor.kafka);
    processor
        .ask(7_950_002, "How do I rotate the deploy key?")
        .await;
    reader.until("both answers", |seen| seen.len() == 2).await;
    let again = reader
        .seen
        .iter()
        .find(|response| response.original_message_id == "7950002")
        .expect("the second answer");
    assert!(
        again.response_text.contains(&format!(
            "{} <https://discord.com/channels/1/11/7950001>",
            processor::prompt::ASKED_BEFORE
        )),
        "{}",
        again.response_text
    );
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tally_reads_every_page_of_chroma_and_counts_by_field() {
    use processor::store::{ChromaStore, Field, Scalar, StoreConfig, StoredMessage};
    let collection = format!("tally_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let store = ChromaStore::connect(&StoreConfig::new(&services::chroma_url(), &collection))
        .await
        .expect("Chroma reachable (scripts/chroma.sh start)");
    let messages: Vec<StoredMessage> = (0..10)
        .map(|n| StoredMessage {
            id: n.into(),
            document: format!("text {n}"),
            metadata: serde_json::json!({
                "guild_id": if n < 9 { "1" } else { "2" },
                "channel_id": if n % 3 == 0 { "a" } else { "b" },
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        })
        .collect();
    let vectors: Vec<Vec<f32>> = (0..10).map(|n| vec![1.0, n as f32, 0.5]).collect();
    store.upsert(&messages, &vectors).await.expect("upsert");
    let guild = Filter::Eq(Field::Guild, Scalar::Text("1".into()));
    // Pages of 2: five requests, the last one short.
    let counts = store
        .tally_paged(&guild, Field::Channel, 2)
        .await
        .expect("tally");
    assert_eq!(counts.get("a"), Some(&3));
    assert_eq!(counts.get("b"), Some(&6));
    assert_eq!(
        store
            .tally(&Filter::All, Field::Guild)
            .await
            .expect("tally")
            .get("2"),
        Some(&1)
    );
    store.drop_collection().await.expect("cleanup");
}

/// The community's barrier failing is an outage, never a pass: with `rtfm-control` gone,
/// nobody can say the choices were read to their end, so the processor holds its batch,
/// commits nothing, says why on `/readyz` and answers that the index is unavailable. Once the
/// topic is back (`init-topics`), everything goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn choices_that_cannot_be_read_to_their_end_hold_ingestion_and_answers() {
    let processor = TestProcessor::start(&[], &[]).await;
    let admin = rtfm_core::kafka::admin::Admin::connect(&processor.kafka)
        .await
        .expect("the broker");
    admin
        .delete_topic(rtfm_core::TopicKind::Control)
        .await
        .expect("rtfm-control deleted");
    publish(&processor.producer, &conversation()).await;
    eventually(WAIT, "/readyz saying the batch is held", || async {
        let (status, body) = processor.readyz().await;
        (status != 200 && body.contains("holding")).then_some(())
    })
    .await;
    let answer = processor
        .answer(7_100_001, "how do I rotate the deploy key?")
        .await;
    assert!(
        answer.response_text.contains("index is unavailable"),
        "{}",
        answer.response_text
    );
    assert_eq!(
        processor.store.count().await.expect("count"),
        0,
        "nothing indexed ahead of the choices"
    );
    admin
        .create(1, false)
        .await
        .expect("rtfm-control created again");
    processor.until_indexed(conversation().len()).await;
    eventually(WAIT, "/readyz ready again", || async {
        (processor.readyz().await.0 == 200).then_some(())
    })
    .await;
    processor.stop().await;
}
