#!/usr/bin/env python3
"""What a `where` filter costs a Chroma query, by the size of the set each clause matches.

Usage: CHROMA_URL=http://127.0.0.1:PORT python3 scripts/probe_chroma_where.py [GUILD_SIZE ...]

For each guild size it creates a throw-away collection holding one 1 000-message channel plus
the rest of the guild in another channel (random unit vectors, the processor's metadata keys),
times 100 queries (10 nearest, metadata + documents + distances) per filter, prints p50 / p90
in ms and drops the collection. Standard library only. The README's "Benchmarks" quotes it
(the guild check moved out of Chroma's `where`).
"""

import http.client
import json
import math
import os
import random
import sys
import time
import uuid
from urllib.parse import urlparse

DATABASE = "/api/v2/tenants/default_tenant/databases/default_database"
CHANNEL_SIZE = 1_000
INCLUDE = ["metadatas", "documents", "distances"]


def client():
    url = urlparse(os.environ.get("CHROMA_URL", ""))
    if not url.hostname:
        sys.exit("set CHROMA_URL (e.g. `source .rtfm/run/chroma.env` after scripts/chroma.sh start)")
    connection = http.client.HTTPConnection(url.hostname, url.port or 80)

    def call(method, path, body=None):
        connection.request(method, path, body=None if body is None else json.dumps(body),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        if response.status >= 300:
            sys.exit(f"{method} {path}: HTTP {response.status}: {data[:300]!r}")
        return json.loads(data) if data else None

    return call


def unit_vector(rng):
    vector = [rng.gauss(0, 1) for _ in range(384)]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def metadata(i):
    epoch = 1.7e9 + 20 * i
    return {"guild_id": "77", "is_dm": False, "channel_id": "20" if i < CHANNEL_SIZE else "21",
            "user_id": str(1000 + i % 50), "username": f"user{i % 50}", "timestamp": "",
            "timestamp_epoch": epoch, "time_bucket": int(epoch // 60), "message_id": str(i)}


def probe(call, guild_size, rng):
    name = f"probe_where_{uuid.uuid4().hex[:8]}"
    collection = call("POST", f"{DATABASE}/collections",
                      {"name": name, "metadata": {"hnsw:space": "cosine"}})
    path = f"{DATABASE}/collections/{collection['id']}"
    try:
        for start in range(0, guild_size, 100):
            ids = range(start, min(guild_size, start + 100))
            call("POST", f"{path}/upsert", {
                "ids": [str(i) for i in ids],
                "embeddings": [unit_vector(rng) for _ in ids],
                "metadatas": [metadata(i) for i in ids],
                "documents": [f"message {i} about something" for i in ids]})
        question = unit_vector(rng)
        channel = {"$or": [{"channel_id": {"$eq": "20"}},
                           {"thread_parent_channel_id": {"$eq": "20"}}]}
        filters = {
            "no filter": None,
            "channel (and its threads)": channel,
            "guild and channel": {"$and": [{"guild_id": {"$eq": "77"}}, channel]},
            "guild only": {"guild_id": {"$eq": "77"}},
        }
        for label, where in filters.items():
            body = {"query_embeddings": [question], "n_results": 10, "include": INCLUDE}
            if where is not None:
                body["where"] = where
            times = []
            for _ in range(100):
                started = time.perf_counter()
                call("POST", f"{path}/query", body)
                times.append((time.perf_counter() - started) * 1e3)
            times.sort()
            print(f"| {guild_size} | {label} | {times[50]:.1f} | {times[90]:.1f} |")
    finally:
        call("DELETE", f"{DATABASE}/collections/{name}")


def main():
    sizes = [int(arg) for arg in sys.argv[1:]] or [3_000, 10_000]
    call = client()
    print("| guild size | where | p50 ms | p90 ms |\n|---|---|---|---|")
    rng = random.Random(1)
    for size in sizes:
        probe(call, max(size, CHANNEL_SIZE), rng)


if __name__ == "__main__":
    main()
