//! Integration tests against real message brokers and event-handler receivers: the RabbitMQ and
//! MQTT transports, the Unix socket transport, event handlers and the metrics endpoints.
//!
//! `tests/run.sh` starts rabbitmq-server and mosquitto on loopback (`brokers.sh`) and exports
//! where they listen; without those variables the broker tests are skipped with a message.

mod evh;
mod harness;
mod metrics;
mod mqtt;
mod rabbitmq;
mod unix;
