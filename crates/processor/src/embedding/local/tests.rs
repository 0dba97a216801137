use super::Batching;

fn split(batching: Batching, lengths: &[usize]) -> Vec<Vec<usize>> {
    let order: Vec<usize> = (0..lengths.len()).collect();
    batching
        .split(&order, lengths)
        .into_iter()
        .map(<[usize]>::to_vec)
        .collect()
}

#[test]
fn batches_fill_a_token_budget_and_a_long_text_goes_alone() {
    let budget = Batching {
        max_sentences: 64,
        max_tokens: 20,
    };
    // Four of 5 tokens fill 20; one of 6 more would pad the batch to 5 × 6 = 30.
    assert_eq!(
        split(budget, &[5, 5, 5, 5, 6, 6, 300]),
        vec![vec![0, 1, 2, 3], vec![4, 5], vec![6]]
    );
    assert!(split(budget, &[]).is_empty());
}

#[test]
fn batches_never_exceed_their_sentence_cap() {
    let capped = Batching {
        max_sentences: 3,
        max_tokens: usize::MAX,
    };
    assert_eq!(
        split(capped, &[1; 7]),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
    );
    assert_eq!(split(Batching::sentences(2), &[300, 300, 300]).len(), 2);
    let zero = Batching {
        max_sentences: 0,
        max_tokens: 0,
    };
    assert_eq!(split(zero, &[1, 1]), vec![vec![0], vec![1]]);
}
