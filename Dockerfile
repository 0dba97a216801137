# Multi-stage build of all four binaries on a slim runtime image.
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

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 rtfm \
 && mkdir -p /home/rtfm/.cache/rtfm/models \
 && chown -R rtfm:rtfm /home/rtfm/.cache
COPY --from=build /out/ /usr/local/bin/
USER rtfm
WORKDIR /home/rtfm
ENV RUST_LOG=info
# The processor downloads all-MiniLM-L6-v2 into ~/.cache/rtfm/models on first start
# (a volume in docker-compose.yml, created here and owned by `rtfm` so the volume is writable by
# the image's user); set EMBEDDING_MODEL_DIR to use a copy you provide.
CMD ["processor"]
