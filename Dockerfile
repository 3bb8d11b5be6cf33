# Multi-stage build: compile in the Rust image, run in a small Debian image as
# a non-root user. Not built in this project's CI (no Docker engine there).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin leadbridge

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/leadbridge --create-home leadbridge
COPY --from=build /src/target/release/leadbridge /usr/local/bin/leadbridge
USER leadbridge
WORKDIR /var/lib/leadbridge
ENV LEADBRIDGE_LISTEN=0.0.0.0:8080 \
    LEADBRIDGE_DATABASE_URL=sqlite:///var/lib/leadbridge/leadbridge.db \
    LEADBRIDGE_LOG_FORMAT=json
VOLUME ["/var/lib/leadbridge"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["leadbridge", "healthcheck"]
ENTRYPOINT ["leadbridge"]
CMD ["serve"]
