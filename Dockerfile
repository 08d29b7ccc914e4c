# Portunus: multi-stage build. CI runs the same build step (cargo build --release --locked) without Docker.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins

FROM debian:bookworm-slim
# CA certificates: broker TLS (RabbitMQ/MQTT, event handlers) verifies peers with the system roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home-dir /var/lib/portunus --create-home portunus \
 && mkdir -p /etc/portunus
COPY --from=build /src/target/release/portunus /usr/local/bin/portunus
COPY static /usr/share/portunus/static
# Inside a container the Admin API must listen beyond loopback to be reachable through -p;
# set PORTUNUS__GENERAL__ADMIN_SECRET (or disable the admin listeners) when you publish those ports.
ENV PORTUNUS__HTTP__ADMIN__ADMIN_IP=0.0.0.0 \
    PORTUNUS__WEBSOCKETS__ADMIN__ADMIN_WS_IP=0.0.0.0 \
    PORTUNUS__MEDIA__RTP_PORT_RANGE=20000-20200 \
    PORTUNUS__WEB__ROOT=/usr/share/portunus/static
# Configuration: mount a TOML file and set PORTUNUS_CONFIG=/etc/portunus/portunus.toml, or mount a
# Janus configuration folder and set PORTUNUS_CONFIGS_FOLDER=/etc/portunus, or use PORTUNUS__SECTION__KEY variables.
VOLUME ["/etc/portunus"]
EXPOSE 8000/tcp 8088/tcp 8188/tcp 7088/tcp 7188/tcp 20000-20200/udp
USER portunus
ENTRYPOINT ["/usr/local/bin/portunus"]
