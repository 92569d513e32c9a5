# Multi-stage build: compile with the full Rust toolchain, ship a small non-root runtime image.
#   docker build -t portcullis .
#   docker run -p 8080:8080 -p 127.0.0.1:9090:9090 \
#     -v $PWD/conf/portcullis.yaml:/etc/portcullis/portcullis.yaml:ro portcullis
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin portcullis

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home portcullis \
    && mkdir -p /etc/portcullis /run/portcullis && chown portcullis /run/portcullis
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
COPY conf/portcullis.yaml /etc/portcullis/portcullis.yaml
USER portcullis
EXPOSE 8080 9090
# The admin listener must listen on 0.0.0.0 inside the container for this check to reach it
# only if you publish it; the default config keeps it on 127.0.0.1, which the check uses.
HEALTHCHECK --interval=10s --timeout=2s --retries=3 CMD curl -fsS http://127.0.0.1:9090/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["run", "-c", "/etc/portcullis/portcullis.yaml"]
