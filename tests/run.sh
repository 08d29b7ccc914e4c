#!/usr/bin/env bash
# The one test command (README "Run the tests"; .ci/run calls it).
# Installs what is missing (apt), checks formatting and lints, builds, runs every suite and ends
# with one summary line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG_DIR=${PORTUNUS_TEST_LOGS:-$ROOT/target/test-logs}
mkdir -p "$LOG_DIR"
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s\n' "$*"; }
die() { echo "FATAL: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

# --- Dependencies -------------------------------------------------------------------------------
# Debian's janus package: its sample .jcfg files are the fixtures of the jcfg reader tests.
apt_needed=()
[ -d /etc/janus ] || apt_needed+=(janus)
# Real brokers for the RabbitMQ/MQTT transport and event handler tests (tests/brokers).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || apt_needed+=(rabbitmq-server)
command -v mosquitto >/dev/null || apt_needed+=(mosquitto)
# A real TURN server for the server's own relay candidates (tests/e2e/test_echotest.py).
command -v turnserver >/dev/null || apt_needed+=(coturn)
if [ ${#apt_needed[@]} -gt 0 ]; then
  step "apt-get install ${apt_needed[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${apt_needed[@]}" >/dev/null || die "apt-get install failed"
fi
export PORTUNUS_REQUIRE_JANUS_SAMPLES=1

# Start rabbitmq-server and mosquitto on loopback now (rabbitmq takes a while to boot) and stop
# them whatever happens; the brokers suite reads where they listen from the exported variables.
BROKERS_DIR="$ROOT/target/test-brokers"
rm -rf "$BROKERS_DIR"
mkdir -p "$BROKERS_DIR"
bash tests/brokers/brokers.sh start "$BROKERS_DIR" > "$LOG_DIR/brokers-start.log" 2>&1 &
brokers_pid=$!
trap 'wait "$brokers_pid" 2>/dev/null; bash tests/brokers/brokers.sh stop "$BROKERS_DIR" >/dev/null 2>&1' EXIT

# --- Static checks ------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check || die "formatting (run cargo fmt)"

step "media facade boundary"
# Only actors/src/media/ may name the engine crates, and only actors/Cargo.toml may depend on them.
facade_leaks=$(grep -rlE '\b(webrtc|rtc|rtc_sdp)::' --include='*.rs' actors/src transports/src plugins/src src tests 2>/dev/null \
  | grep -v '^actors/src/media/' || true)
dep_leaks=$(grep -lE '^(webrtc|rtc|rtc-sdp) *=' Cargo.toml transports/Cargo.toml plugins/Cargo.toml 2>/dev/null || true)
[ -z "$facade_leaks$dep_leaks" ] || die "engine crates used outside actors/src/media: $facade_leaks $dep_leaks"
echo ok

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings 2>&1 | tail -20
[ "${PIPESTATUS[0]}" -eq 0 ] || die "clippy"

# The Dockerfile's build step, run here without Docker so CI keeps it working.
step "cargo build --release --locked --bins"
cargo build --release --locked --bins 2>&1 | tail -3
[ "${PIPESTATUS[0]}" -eq 0 ] || die "release build"

# --- Rust suites (unit + integration; integration tests start the real binary) -----------------
passed=0
failed=0
run_cargo_tests() {
  local name=$1; shift
  step "$name"
  local out="$LOG_DIR/$name.log"
  "$@" 2>&1 | tee "$out" | grep -E '^(test result|test .* FAILED|failures:|---- )' || true
  local rc=${PIPESTATUS[0]}
  local p f
  p=$(awk '/^test result/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /^passed/) s += $i } END { print s + 0 }' "$out")
  f=$(awk '/^test result/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /^failed/) s += $i } END { print s + 0 }' "$out")
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
    echo "$name: cargo exited $rc (build failure?)"; failed=$((failed + 1))
  fi
}
step "brokers"
if wait "$brokers_pid" && [ -f "$BROKERS_DIR/env" ]; then
  . "$BROKERS_DIR/env"
  echo "rabbitmq on 127.0.0.1:$PORTUNUS_TEST_AMQP_PORT, mosquitto on 127.0.0.1:$PORTUNUS_TEST_MQTT_PORT"
else
  cat "$LOG_DIR/brokers-start.log"
  die "message brokers did not start"
fi
# --no-fail-fast: a failing test binary must not hide the results of the others.
run_cargo_tests rust-tests cargo test --workspace --all-features --no-fail-fast

# A pytest / node --test summary ("N passed, N failed") into the totals.
count_summary() {
  local name=$1 out=$2 rc=$3 p f
  p=$(grep -Eo '[0-9]+ passed' "$out" | tail -1 | grep -Eo '[0-9]+')
  f=$(grep -Eo '[0-9]+ (failed|errors?)' "$out" | awk '{ s += $1 } END { print s + 0 }')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
    echo "$name: exited $rc"; failed=$((failed + 1))
  fi
}

# --- End-to-end media: independent aiortc peers against the release binary ---------------------
step "e2e (aiortc)"
E2E_VENV="$ROOT/tests/e2e/.venv"
[ -x "$E2E_VENV/bin/python" ] || python3 -m venv "$E2E_VENV" || die "python venv"
"$E2E_VENV/bin/pip" install -q -r tests/e2e/requirements.txt > "$LOG_DIR/e2e-pip.log" 2>&1 \
  || die "pip install for tests/e2e (see $LOG_DIR/e2e-pip.log)"
e2e_out="$LOG_DIR/e2e.log"
# The plugin-offer tests need the test plugin: cargo test --all-features left it in the debug build.
(cd tests/e2e && PORTUNUS_BIN="$ROOT/target/release/portunus" PORTUNUS_TEST_PLUGIN_BIN="$ROOT/target/debug/portunus" timeout 1500 "$E2E_VENV/bin/python" -m pytest -q -p no:warnings -rf) \
  > "$e2e_out" 2>&1
e2e_rc=$?
grep -Ev '^(Task was destroyed|task: )' "$e2e_out" | tail -15
count_summary e2e "$e2e_out" "$e2e_rc"

# --- Browser: headless Chromium (Debian's) driven by playwright-core ------------------------------
step "browser (Chromium)"
browser_out="$LOG_DIR/browser.log"
PORTUNUS_BIN="$ROOT/target/release/portunus" timeout 1200 bash tests/browser/run.sh > "$browser_out" 2>&1
browser_rc=$?
tail -12 "$browser_out"
# One TAP summary per test file: add them up.
bp=$(grep -Eo '^# pass [0-9]+' "$browser_out" | awk '{ s += $3 } END { print s + 0 }')
bf=$(grep -Eo '^# fail [0-9]+' "$browser_out" | awk '{ s += $3 } END { print s + 0 }')
passed=$((passed + ${bp:-0}))
failed=$((failed + ${bf:-0}))
if [ "$browser_rc" -ne 0 ] && [ "${bf:-0}" -eq 0 ]; then echo "browser: exited $browser_rc"; failed=$((failed + 1)); fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
