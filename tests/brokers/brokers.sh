#!/usr/bin/env bash
# Starts, stops and restarts the message brokers the `brokers` test binary talks to: Debian's
# rabbitmq-server and mosquitto, each on 127.0.0.1 on a free port, with all their state under one
# folder. tests/run.sh calls `start` and `stop`; the reconnect tests call `restart-rabbitmq` and
# `restart-mosquitto` through the same script.
#
#   brokers.sh start DIR          start both, write DIR/env (export lines) and print it
#   brokers.sh stop DIR           stop both
#   brokers.sh restart-rabbitmq DIR | restart-mosquitto DIR | stop-rabbitmq DIR | start-rabbitmq DIR
#
# Readiness is polled with a deadline (no fixed sleeps): a broker is up when its port accepts.
set -uo pipefail

cmd=${1:?usage: brokers.sh start|stop|restart-rabbitmq|restart-mosquitto DIR}
DIR=${2:?state folder}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
RABBIT_BIN=/usr/lib/rabbitmq/bin

# A port nothing listens on (random in 20000..59999, checked with bash's /dev/tcp).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

# wait_port PORT SECONDS: 0 when 127.0.0.1:PORT accepts before the deadline.
wait_port() {
  local port=$1 deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  return 1
}

# wait_gone PID SECONDS
wait_gone() {
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
  return 0
}

load_env() { [ -f "$DIR/env" ] && . "$DIR/env"; }

rabbit_env() {
  export RABBITMQ_NODENAME="portunus-$PORTUNUS_TEST_AMQP_PORT@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$PORTUNUS_TEST_AMQP_PORT
  export RABBITMQ_DIST_PORT=$PORTUNUS_TEST_AMQP_DIST_PORT
  export RABBITMQ_MNESIA_BASE="$DIR/rabbitmq/mnesia"
  export RABBITMQ_LOG_BASE="$DIR/rabbitmq/log"
  export RABBITMQ_PID_FILE="$DIR/rabbitmq/pid"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/rabbitmq/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$DIR/rabbitmq/rabbitmq"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/rabbitmq/advanced.config"
  export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq/rabbitmq-env.conf"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export HOME="$DIR/rabbitmq/home"
  mkdir -p "$DIR/rabbitmq/mnesia" "$DIR/rabbitmq/log" "$HOME"
  [ -f "$RABBITMQ_ENABLED_PLUGINS_FILE" ] || echo '[].' > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  # Always rewritten: a folder reused by a later `start` gets new ports.
  printf 'loopback_users.guest = false\nlisteners.tcp.default = 127.0.0.1:%s\n' \
    "$PORTUNUS_TEST_AMQP_PORT" > "$RABBITMQ_CONFIG_FILE.conf"
  [ -f "$RABBITMQ_ADVANCED_CONFIG_FILE" ] || echo '[].' > "$RABBITMQ_ADVANCED_CONFIG_FILE"
  : > "$RABBITMQ_CONF_ENV_FILE"
}

start_rabbitmq() {
  rabbit_env
  # Run as the current user (root in CI), detached from this shell; the pid is the Erlang VM.
  setsid "$RABBIT_BIN/rabbitmq-server" >"$DIR/rabbitmq/stdout.log" 2>&1 < /dev/null &
  echo $! > "$DIR/rabbitmq/launcher.pid"
  if ! wait_port "$PORTUNUS_TEST_AMQP_PORT" 90; then
    echo "rabbitmq-server did not open port $PORTUNUS_TEST_AMQP_PORT; see $DIR/rabbitmq" >&2
    tail -20 "$DIR/rabbitmq/stdout.log" >&2
    return 1
  fi
}

stop_rabbitmq() {
  local pid
  pid=$(cat "$DIR/rabbitmq/launcher.pid" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  # The launcher leads its own process group (setsid) holding the Erlang VM; SIGTERM to the
  # group is a clean stop.
  kill -TERM -- "-$pid" 2>/dev/null
  wait_gone "$pid" 30 || kill -KILL -- "-$pid" 2>/dev/null
  rm -f "$DIR/rabbitmq/launcher.pid"
}

start_mosquitto() {
  mkdir -p "$DIR/mosquitto"
  cat > "$DIR/mosquitto/mosquitto.conf" <<EOF
listener $PORTUNUS_TEST_MQTT_PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest file $DIR/mosquitto/mosquitto.log
EOF
  setsid mosquitto -c "$DIR/mosquitto/mosquitto.conf" >"$DIR/mosquitto/stdout.log" 2>&1 < /dev/null &
  echo $! > "$DIR/mosquitto/pid"
  if ! wait_port "$PORTUNUS_TEST_MQTT_PORT" 20; then
    echo "mosquitto did not open port $PORTUNUS_TEST_MQTT_PORT" >&2
    cat "$DIR/mosquitto/stdout.log" "$DIR/mosquitto/mosquitto.log" >&2 2>/dev/null
    return 1
  fi
}

stop_mosquitto() {
  local pid
  pid=$(cat "$DIR/mosquitto/pid" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
  rm -f "$DIR/mosquitto/pid"
}

case "$cmd" in
  start)
    {
      echo "export PORTUNUS_TEST_AMQP_PORT=$(free_port)"
      echo "export PORTUNUS_TEST_AMQP_DIST_PORT=$(free_port)"
      echo "export PORTUNUS_TEST_MQTT_PORT=$(free_port)"
      echo "export PORTUNUS_TEST_BROKERS_DIR=$DIR"
      echo "export PORTUNUS_TEST_BROKERS_CTL=$(cd "$(dirname "$0")" && pwd)/brokers.sh"
    } > "$DIR/env"
    load_env
    start_mosquitto || exit 1
    (start_rabbitmq) || { stop_mosquitto; exit 1; }
    cat "$DIR/env"
    ;;
  stop)
    load_env
    stop_mosquitto
    stop_rabbitmq
    ;;
  restart-rabbitmq) load_env; stop_rabbitmq; (start_rabbitmq) ;;
  stop-rabbitmq) load_env; stop_rabbitmq ;;
  start-rabbitmq) load_env; (start_rabbitmq) ;;
  restart-mosquitto) load_env; stop_mosquitto; start_mosquitto ;;
  stop-mosquitto) load_env; stop_mosquitto ;;
  start-mosquitto) load_env; start_mosquitto ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
