//! The in-process model agrees with sentence-transformers (reference vectors computed by the
//! Python library for 12 sentences: short, long past 256 tokens, Unicode, code, mentions).

use std::path::PathBuf;

use processor::embedding::{cosine, default_model_dir, LocalModel, MINILM_DIMENSIONS};

fn model_dir() -> PathBuf {
    std::env::var_os("EMBEDDING_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(default_model_dir)
}

fn load() -> LocalModel {
    let dir = model_dir();
    LocalModel::load(&dir, 32).unwrap_or_else(|err| {
        panic!("{err}\nfetch the model with `scripts/model.sh` (the test suite does it)")
    })
}

#[test]
fn vectors_match_sentence_transformers_reference() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/eval/minilm-reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reference vectors at {}: {err}", path.display()));
    let reference: serde_json::Value = serde_json::from_str(&text).expect("reference json");
    let sentences: Vec<String> =
        serde_json::from_value(reference["sentences"].clone()).expect("sentences");
    let expected: Vec<Vec<f32>> =
        serde_json::from_value(reference["embeddings"].clone()).expect("embeddings");
    assert_eq!(sentences.len(), expected.len());

    let model = load();
    let actual = model.embed(&sentences).expect("embeds");
    for ((sentence, want), got) in sentences.iter().zip(&expected).zip(&actual) {
        assert_eq!(got.len(), MINILM_DIMENSIONS);
        let similarity = cosine(want, got);
        assert!(similarity >= 0.999, "cosine {similarity} for {sentence:?}");
    }
    // Batch composition must not change a vector (padding is masked out).
    let alone = model.embed(&sentences[..1]).expect("embeds");
    assert!(cosine(&alone[0], &actual[0]) > 0.9999);
}

#[test]
fn missing_model_files_are_a_clear_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = match LocalModel::load(dir.path(), 32) {
        Ok(_) => panic!("an empty directory cannot load"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("EMBEDDING_MODEL_DIR") && err.contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn corrupt_weights_are_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = model_dir();
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(source.join(file), dir.path().join(file)).expect("copy");
    }
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"not a safetensors file",
    )
    .expect("write");
    let err = match LocalModel::load(dir.path(), 32) {
        Ok(_) => panic!("corrupt weights cannot load"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("model.safetensors"), "{err}");
}
