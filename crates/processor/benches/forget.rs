//! How long forget-me takes (#27): from the member's choice written to `rtfm-control` to
//! nothing of theirs left in the index, for a member with 1 000, 10 000 (and more, on
//! demand) messages among other members' messages, through the real broker and Chroma and the
//! processor's own removal applier. Prints one table.
//!
//!   cargo bench -p processor --bench forget -- [--sizes 1000,10000] [--others 10000]
//!
//! The messages are stored with made-up vectors (a removal never reads them), so the figure is
//! the removal's alone: the choice read, the messages counted, the counted receipt written,
//! Chroma's delete, the 5 s settle and second sweep, the final receipt. The column "gone"
//! is when Chroma no longer holds any of the member's messages (answers stopped quoting them
//! at once, when the choice was read). Needs KAFKA_BOOTSTRAP_SERVERS and CHROMA_URL
//! (`scripts/kafka.sh start`, `scripts/chroma.sh start`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use processor::removal::{self, Removal};
use processor::store::{
    ChromaStore, Field, Filter, Scalar, StoreConfig, StoredMessage, VectorStore,
};
use rtfm_core::kafka::{Consumer, ConsumerOptions, Follower, Producer};
use rtfm_core::schema::Subject;
use rtfm_core::topics::GROUP_CONTROL_APPLIER;
use rtfm_core::ControlRecord;
use serde_json::json;
use test_support::services;
use tokio_util::sync::CancellationToken;

const GUILD: u64 = 4_242;
const MEMBER: u64 = 77;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|arg| arg == name)?;
    args.get(at + 1).cloned()
}

/// `count` messages of `author`, ids from `first`, over 20 channels.
fn messages(first: u64, count: u64, author: u64) -> Vec<StoredMessage> {
    (first..first + count)
        .map(|id| StoredMessage {
            id: id.into(),
            document: format!("message {id}"),
            metadata: json!({
                "guild_id": GUILD.to_string(),
                "channel_id": (100 + id % 20).to_string(),
                "user_id": author.to_string(),
                "timestamp_epoch": 1_790_000_000.0 + id as f64,
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        })
        .collect()
}

async fn store_all(store: &ChromaStore, messages: &[StoredMessage]) {
    for chunk in messages.chunks(1_000) {
        let vectors: Vec<Vec<f32>> = chunk
            .iter()
            .map(|message| {
                let id: f32 = message.id.get() as f32;
                let mut vector = vec![0.01f32; 384];
                vector[(id as usize) % 384] = 1.0;
                vector[0] = id.sin();
                vector
            })
            .collect();
        store.upsert(chunk, &vectors).await.expect("upsert");
    }
}

fn member_filter() -> Filter {
    Filter::all_of([
        Filter::Eq(Field::Guild, Scalar::Text(GUILD.to_string())),
        Filter::Eq(Field::Author, Scalar::Text(MEMBER.to_string())),
    ])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<u64> = arg("--sizes")
        .unwrap_or_else(|| "1000,10000".into())
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect();
    let others: u64 = arg("--others")
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let chroma = services::chroma_url();
    println!("| member's messages | others | read + counted | gone from Chroma | receipt done | removed |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for size in sizes {
        let kafka = services::kafka_with_topics().await;
        let collection = format!(
            "forget_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let store = Arc::new(
            ChromaStore::connect(&StoreConfig::new(&chroma, &collection))
                .await
                .expect("Chroma reachable (scripts/chroma.sh start)"),
        );
        store_all(&store, &messages(1, size, MEMBER)).await;
        store_all(&store, &messages(10_000_000, others, MEMBER + 1)).await;
        let stop = CancellationToken::new();
        let producer = Producer::new(&kafka, "forget-bench").expect("producer");
        let follower = Follower::start(&kafka, "forget-bench", stop.clone()).expect("follower");
        let removal = Removal {
            messages: store.clone() as Arc<dyn VectorStore>,
            others: Vec::new(),
            producer: producer.clone(),
            follower: Arc::clone(&follower),
            settle: Duration::from_secs(5),
        };
        let consumer = Arc::new(
            Consumer::<ControlRecord>::new(
                &kafka,
                &ConsumerOptions::new(GROUP_CONTROL_APPLIER, "control"),
                producer.clone(),
            )
            .expect("consumer"),
        );
        let applier = tokio::spawn(removal::run(consumer, removal, stop.clone()));
        let started = Instant::now();
        let request = format!("bench-{size}");
        producer
            .send(
                &ControlRecord::member(GUILD.into(), MEMBER.into(), false)
                    .requested(MEMBER.into(), &request),
            )
            .await
            .expect("acked");
        let (mut counted, mut gone) = (None, None);
        let done = loop {
            let receipt = follower
                .state()
                .receipt(GUILD.into(), Subject::Member(MEMBER.into()))
                .filter(|receipt| receipt.request_id == request)
                .cloned();
            if counted.is_none() && receipt.is_some() {
                counted = Some(started.elapsed());
            }
            if gone.is_none() {
                let left: usize = store
                    .tally(&member_filter(), Field::Guild)
                    .await
                    .expect("tally")
                    .values()
                    .sum();
                if left == 0 {
                    gone = Some(started.elapsed());
                }
            }
            if let Some(receipt) = receipt.filter(|receipt| receipt.done) {
                break (started.elapsed(), receipt.removed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let seconds =
            |at: Option<Duration>| at.map_or("-".into(), |at| format!("{:.2} s", at.as_secs_f64()));
        println!(
            "| {size} | {others} | {} | {} | {:.2} s | {} |",
            seconds(counted),
            seconds(gone),
            done.0.as_secs_f64(),
            done.1
        );
        stop.cancel();
        let _ = applier.await;
        store.drop_collection().await.expect("cleanup");
    }
}
