# Multi-stage build: compile in the Rust image, run in a small Debian image as
# a non-root user. No Docker engine runs in this project's CI, so
# .ci/image-check builds the binary from exactly the files the COPY lines of
# the first stage name: a file the build needs and this stage leaves out
# fails CI.
FROM rust:1-bookworm AS build
WORKDIR /src
# The workspace (its members must be present for cargo to read it), the
# schema the binary embeds (sqlx::migrate!) and the console (include_str!).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY console ./console
COPY crates ./crates
COPY xtask ./xtask
COPY benches ./benches
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
