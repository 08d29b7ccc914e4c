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
if [ ${#apt_needed[@]} -gt 0 ]; then
  step "apt-get install ${apt_needed[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${apt_needed[@]}" >/dev/null || die "apt-get install failed"
fi
export PORTUNUS_REQUIRE_JANUS_SAMPLES=1

# --- Static checks ------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check || die "formatting (run cargo fmt)"

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
run_cargo_tests rust-tests cargo test --workspace --all-features

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
