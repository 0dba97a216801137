"""The seed's Python services, as far as Kafka sees them: records shaped exactly as the seed's
bot.py shapes them, written and read with kafka-python the way the seed configures it. The
tests run it with each kafka-python version the seed may have (its requirements pin 2.0.2;
3.x is current), installed by scripts/seed_clients.sh, against our processor and our bot.

    seed_client.py BOOTSTRAP SUFFIX produce-messages CHANNEL TEXT...   one message per TEXT
    seed_client.py BOOTSTRAP SUFFIX produce-query CHANNEL QUESTION      prints the query_id
    seed_client.py BOOTSTRAP SUFFIX consume-response QUERY_ID SECONDS   prints its response
    seed_client.py BOOTSTRAP SUFFIX produce-response QUERY_ID MESSAGE_ID CHANNEL TEXT
    seed_client.py BOOTSTRAP SUFFIX consume TOPIC COUNT SECONDS         prints COUNT records

SUFFIX is the test's topic suffix (empty in production). Exit 0 only on success; any error
(an undecodable record, a missing codec) is printed and exits 1.
"""

import json
import sys
import time
import uuid
from datetime import datetime

import warnings

import kafka
from kafka import KafkaConsumer, KafkaProducer

# kafka-python 3.x warns that plain functions are not Serializer classes; the seed uses them.
warnings.simplefilter("ignore", DeprecationWarning)


def producer(bootstrap):
    # As the seed's bot: JSON values, string keys, gzip.
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        value_serializer=lambda value: json.dumps(value).encode("utf-8"),
        key_serializer=lambda key: key.encode("utf-8") if key else None,
        compression_type="gzip",
        acks="all",
    )


def consumer(bootstrap, topic, group):
    # As the seed's services: JSON values decoded by the client itself.
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        value_deserializer=lambda value: json.loads(value.decode("utf-8")),
        consumer_timeout_ms=1000,
    )


def snowflake():
    return str(int(time.time() * 1000) << 22 | uuid.uuid4().int & 0x3FFFFF)


def main(argv):
    bootstrap, suffix, command, *args = argv
    topic = lambda name: name + suffix
    if command == "produce-messages":
        channel, texts = args[0], args[1:]
        out = producer(bootstrap)
        for text in texts:
            message_id = snowflake()
            # bot.py: no guild_id, naive isoformat() timestamps, key = message id.
            record = {
                "message_id": message_id,
                "content": text,
                "username": "seeduser#0001",
                "user_id": "555000111",
                "channel_id": channel,
                "timestamp": datetime.now().isoformat(),
                "metadata": {"channel_name": "seed"},
            }
            out.send(topic("discord-messages"), key=message_id, value=record).get(timeout=30)
            print(message_id)
        out.flush()
    elif command == "produce-query":
        channel, question = args
        query_id = str(uuid.uuid4())
        record = {
            "query_id": query_id,
            "original_message_id": snowflake(),
            "question": question,
            "username": "seeduser#0001",
            "user_id": "555000111",
            "channel_id": channel,
            "timestamp": datetime.now().isoformat(),
            "context": {},
        }
        out = producer(bootstrap)
        out.send(topic("bot-queries"), key=query_id, value=record).get(timeout=30)
        out.flush()
        print(query_id)
    elif command == "produce-response":
        # As the seed's processor answers.
        query_id, message_id, channel, text = args
        record = {
            "response_id": str(uuid.uuid4()),
            "query_id": query_id,
            "original_message_id": message_id,
            "response_text": text,
            "channel_id": channel,
            "timestamp": datetime.now().isoformat(),
            "metadata": {"model": "gemini-2.5-flash", "confidence": 0.95, "sources_count": 3},
        }
        out = producer(bootstrap)
        out.send(topic("bot-responses"), key=query_id, value=record).get(timeout=30)
        out.flush()
    elif command == "consume-response":
        query_id, seconds = args[0], float(args[1])
        # A group of its own each time: every response on the topic, from the beginning.
        reader = consumer(bootstrap, topic("bot-responses"), "seed-bot-" + uuid.uuid4().hex[:8])
        deadline = time.time() + seconds
        while time.time() < deadline:
            for record in reader:
                if record.value.get("query_id") == query_id:
                    print(json.dumps(record.value))
                    return 0
        print(f"no response to {query_id} within {seconds} s", file=sys.stderr)
        return 1
    elif command == "consume":
        name, count, seconds = args[0], int(args[1]), float(args[2])
        reader = consumer(bootstrap, topic(name), "seed-reader-" + uuid.uuid4().hex[:8])
        seen = []
        deadline = time.time() + seconds
        while time.time() < deadline and len(seen) < count:
            for record in reader:
                seen.append(record.value)
                if len(seen) >= count:
                    break
        for value in seen:
            print(json.dumps(value))
        return 0 if len(seen) >= count else 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as error:  # the seed's client failing is the finding: say what it was
        print(f"kafka-python {kafka.__version__}: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
