use super::*;
use processor::conversation::Role;
use processor::retrieval::{SourceGroup, SourceMessage};

fn query(relevant: &[&str], source: &[&str], thread: &[&str]) -> EvalQuery {
    EvalQuery {
        query_id: "q".parse().expect("a query id"),
        question: "?".into(),
        channel_id: 1.into(),
        relevant_message_ids: ids(relevant),
        source_message_ids: ids(source),
        thread_message_ids: ids(thread),
        split: String::new(),
    }
}

/// Ids named by short texts: digits as themselves, letters as their bytes.
fn ids(list: &[&str]) -> Vec<MessageId> {
    list.iter()
        .map(|s| {
            s.parse().unwrap_or_else(|_| {
                MessageId::new(s.bytes().fold(0, |n, byte| n * 256 + u64::from(byte)))
            })
        })
        .collect()
}

#[test]
fn scores_match_the_reference_scorer_on_a_hand_example() {
    // Own message "s" is dropped; relevant "a" at rank 2 and "b" at rank 4 after that.
    let metrics = score(&[(
        query(&["a", "b"], &["s"], &["t"]),
        ids(&["s", "x", "a", "t", "b"]),
    )]);
    assert_eq!(metrics.count, 1);
    assert!((metrics.recall_at_1 - 0.0).abs() < 1e-9);
    assert!((metrics.recall_at_5 - 1.0).abs() < 1e-9);
    assert!((metrics.mrr_at_10 - 0.5).abs() < 1e-9);
    let ndcg = (1.0 / 3f64.log2() + 1.0 / 5f64.log2()) / (1.0 + 1.0 / 3f64.log2());
    assert!((metrics.ndcg_at_10 - ndcg).abs() < 1e-9);
    assert!((metrics.thread_success_at_10 - 1.0).abs() < 1e-9);
}

#[test]
fn off_topic_questions_are_not_scored() {
    let metrics = score(&[
        (query(&[], &[], &[]), ids(&["x"])),
        (query(&["a"], &[], &[]), ids(&["a"])),
    ]);
    assert_eq!(metrics.count, 1);
    assert!((metrics.recall_at_1 - 1.0).abs() < 1e-9);
}

#[test]
fn quoted_precision_counts_what_belongs_to_the_conversation() {
    let answerable = query(&["3"], &["1"], &["2"]);
    let offtopic = query(&[], &[], &[]);
    let results = vec![
        (answerable.clone(), vec![]),
        (answerable, vec![]),
        (offtopic, vec![]),
    ];
    let shown = vec![
        (ids(&["1", "3", "9", "8"]), 0.9),
        (Vec::new(), 0.2),
        (ids(&["7"]), 0.4),
    ];
    let quoting = quoted_precision(&results, &shown);
    assert_eq!(
        quoting.questions, 1,
        "off-topic and empty answers are not scored"
    );
    assert!((quoting.precision - 0.5).abs() < 1e-9);
    assert!((quoting.mean_shown - 4.0).abs() < 1e-9);
}

#[test]
fn rankings_put_every_hit_and_its_answers_before_any_context() {
    let message = |id: &str| {
        let role = match id {
            "3" | "9" => Role::Hit,
            "4" => Role::Answer,
            _ => Role::Context,
        };
        SourceMessage::sample(id.parse().expect("an id"), role)
    };
    let retrieved = Retrieved {
        groups: vec![
            SourceGroup {
                hit_id: 3.into(),
                similarity: 0.9,
                messages: ["1", "2", "3", "4", "5"].map(message).to_vec(),
            },
            SourceGroup {
                hit_id: 9.into(),
                similarity: 0.8,
                messages: ["4", "9"].map(message).to_vec(),
            },
        ],
    };
    assert_eq!(ranked_ids(&retrieved), ids(&["3", "4", "9", "5", "2", "1"]));
}
