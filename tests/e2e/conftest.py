"""Fixtures for the end-to-end suite: a real Portunus binary and independent aiortc peers."""

import json
import os
import subprocess
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# aioice skips loopback when it lists host addresses; tests run on 127.0.0.1 only, so gather
# exactly one host candidate there (and no STUN: RTCConfiguration(iceServers=[])).
import aioice.ice  # noqa: E402

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def _binary():
    explicit = os.environ.get("PORTUNUS_BIN")
    if explicit:
        return explicit
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, "portunus")
        if os.path.exists(path):
            return path
    raise RuntimeError("build portunus first (cargo build --release)")


class Server:
    """A running Portunus with every listener on an ephemeral loopback port."""

    def __init__(self, extra_env=None, extra_args=None, binary=None):
        env = dict(os.environ)
        env.update({
            "PORTUNUS__HTTP__IP": "127.0.0.1",
            "PORTUNUS__WEBSOCKETS__WS_IP": "127.0.0.1",
            "PORTUNUS__NAT__ICE_ENFORCE_LIST": "127.0.0.1",
            "PORTUNUS__GENERAL__DEBUG_LEVEL": os.environ.get("PORTUNUS_E2E_LOG_LEVEL", "3"),
        })
        env.update(extra_env or {})
        args = [binary or _binary(), "--http-port", "0", "--ws-port", "0", "--admin-http-port", "0", "--admin-ws-port", "0",
                "--web-port", "0"]
        args += extra_args or []
        self.log_path = os.path.join(ROOT, "target", "test-logs", f"e2e-server-{os.getpid()}-{time.time_ns()}.log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.addrs = self._wait_ready(deadline=time.time() + 30)

    def _wait_ready(self, deadline):
        result = {}

        def read():
            for line in self.proc.stdout:
                if line.startswith("PORTUNUS_READY "):
                    result.update(json.loads(line.split(" ", 1)[1]))
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(max(0.0, deadline - time.time()))
        if not result:
            self.stop()
            raise RuntimeError(f"server did not become ready; see {self.log_path}")
        return result

    @property
    def http_url(self):
        return f"http://{self.addrs['http']}/janus"

    @property
    def ws_url(self):
        return f"ws://{self.addrs['ws']}/"

    @property
    def admin_url(self):
        return f"http://{self.addrs['admin_http']}/admin"

    async def admin(self, body):
        """One Admin API request over HTTP (a transaction is added)."""
        import aiohttp

        body = dict({"transaction": "admin-" + os.urandom(4).hex()}, **body)
        async with aiohttp.ClientSession() as http:
            async with http.post(self.admin_url, data=json.dumps(body)) as r:
                return json.loads(await r.text())

    async def metrics(self):
        """The Prometheus series of /metrics as {series: value}."""
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.get(self.admin_url.rsplit("/", 1)[0] + "/metrics") as r:
                text = await r.text()
        return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines()
                                          if line and not line.startswith("#"))}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def fault_server():
    """A server built with the `fault-injection` feature (test plugin, room faults), given by
    PORTUNUS_TEST_PLUGIN_BIN (tests/run.sh points it at the debug build); skipped without one."""
    binary = os.environ.get("PORTUNUS_TEST_PLUGIN_BIN")
    if not binary or not os.path.exists(binary):
        pytest.skip("PORTUNUS_TEST_PLUGIN_BIN not set (needs a build with --features fault-injection)")
    s = Server(binary=binary)
    yield s
    s.stop()
