"""The Python reference for the side-by-side benchmark (scripts/bench.sh): what RTFM replaces,
measured on the same broker, the same Chroma server and the same messages as the Rust rows.

    python bench_python.py --bootstrap HOST:PORT --chroma-url URL --corpus FILE --messages N --out FILE

Three rows, as the Python bot (and a careful rewrite of it) would do them:
  embed-only   sentence-transformers all-MiniLM-L6-v2, encode(batch_size=64);
  seed-style   one Kafka consumer, auto-commit, one encode + one Chroma add per message;
  batched      up to 64 messages per poll, one encode + one Chroma add per batch, then commit.
Writes a JSON object of rates (messages/s) and the peak RSS of this process (MiB).
"""

import argparse
import json
import os
import resource
import time
import uuid

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import chromadb  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from sentence_transformers import SentenceTransformer, models  # noqa: E402


def load_model(model_dir):
    # The model directory holds the transformer's files; pooling and normalisation are
    # sentence-transformers' own modules, as in the model's published configuration.
    transformer = models.Transformer(model_dir, max_seq_length=256)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), "mean")
    return SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")


def read_corpus(path, count):
    lines = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    messages = []
    for index in range(count):
        source = lines[index % len(lines)]
        message = dict(source)
        message["message_id"] = str(80_000_000 + index)
        messages.append(message)
    return messages


def fresh_topic(admin, prefix):
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    for future in admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)]).values():
        future.result()
    return name


def produce(bootstrap, topic, messages):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for message in messages:
        producer.produce(topic, key=message["channel_id"], value=json.dumps(message))
        producer.poll(0)
    producer.flush(60)


def consume_and_index(bootstrap, topic, collection, model, total, batch):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:10]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": batch == 1,
        }
    )
    consumer.subscribe([topic])
    done = 0
    started = None
    while done < total:
        records = consumer.consume(num_messages=batch, timeout=1.0)
        records = [record for record in records if record.error() is None]
        if not records:
            continue
        if started is None:
            started = time.perf_counter()
        messages = [json.loads(record.value()) for record in records]
        texts = [message["content"] for message in messages]
        vectors = model.encode(texts, batch_size=64)
        collection.add(
            ids=[message["message_id"] for message in messages],
            embeddings=[vector.tolist() for vector in vectors],
            documents=texts,
            metadatas=[
                {"channel_id": message["channel_id"], "user_id": message["user_id"]}
                for message in messages
            ],
        )
        if batch > 1:
            consumer.commit(asynchronous=False)
        done += len(messages)
    elapsed = time.perf_counter() - started
    consumer.close()
    return total / elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--chroma-url", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    messages = read_corpus(args.corpus, args.messages)
    texts = [message["content"] for message in messages]
    model = load_model(args.model_dir)
    model.encode(texts[:64], batch_size=64)  # warm-up

    started = time.perf_counter()
    model.encode(texts, batch_size=64)
    embed_rate = len(texts) / (time.perf_counter() - started)

    host, port = args.chroma_url.rsplit("//", 1)[-1].rsplit(":", 1)
    chroma = chromadb.HttpClient(host=host, port=int(port))
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    results = {"embed_only": embed_rate}
    for name, batch in (("seed_style", 1), ("batched", 64)):
        topic = fresh_topic(admin, f"bench-python-{name}")
        produce(args.bootstrap, topic, messages)
        collection = chroma.create_collection(
            f"bench_py_{uuid.uuid4().hex[:10]}", metadata={"hnsw:space": "cosine"}
        )
        results[name] = consume_and_index(
            args.bootstrap, topic, collection, model, len(messages), batch
        )
        chroma.delete_collection(collection.name)
        admin.delete_topics([topic])
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(results, handle)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
