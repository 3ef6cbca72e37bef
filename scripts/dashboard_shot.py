#!/usr/bin/env python3
"""Render the panels of dashboards/tower-jwt-auth.json from a real run.

Starts a redis-server (append-only file, so its data survives a restart) and
the quickstart against it (REDIS_URL, NEAR_CACHE=1), drives known traffic
(steady /me load, logins, refreshes, a refresh-token reuse, logouts, a kick,
a ban, bad tokens and a wave of forged ones), kills Redis for a while and
starts it again, scrapes GET /metrics every second, and draws each panel of
the dashboard from the scraped series with the panel's own query evaluated
here (rates over a 5 s window, histogram quantiles as Prometheus computes
them). Run by scripts/dashboard-shot.sh.

    dashboard_shot.py QUICKSTART_BINARY OUTPUT_PNG [SECONDS]
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(ROOT, "dashboards", "tower-jwt-auth.json")
WINDOW = 5  # seconds, the rate window
DEMO_SECRET = b"quickstart-demo-secret-change-me-0123456789"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


class Client:
    """One keep-alive HTTP/1.1 connection (reopened when it breaks)."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def call(self, method, path, token=None, body=None):
        headers = {}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["content-type"] = "application/json"
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                self.conn.request(method, path, body=data, headers=headers)
                res = self.conn.getresponse()
                payload = res.read()
                return res.status, payload
            except (OSError, http.client.HTTPException):
                self.conn = None
        return 0, b""


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims):
    """A token signed with the quickstart's demo secret."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(DEMO_SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def parse(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.groups()
        key = (name, tuple(sorted(LABEL.findall(labels or ""))))
        out[key] = float(value)
    return out


class Run:
    def __init__(self, binary, seconds):
        self.binary = binary
        self.seconds = seconds
        self.dir = tempfile.mkdtemp(prefix="dashboard-shot-")
        self.redis_port = free_port()
        self.qs_port = free_port()
        self.redis = None
        self.qs = None
        self.stop = threading.Event()
        self.scrapes = []  # (t, {series: value})
        self.marks = []  # (t, text)
        self.t0 = None
        self.lock = threading.Lock()
        self.pool = []  # admin tokens for the steady load

    def now(self):
        return time.time() - self.t0

    def mark(self, text):
        self.marks.append((self.now(), text))
        print(f"{self.now():6.1f}s {text}", flush=True)

    def start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--appendonly", "yes", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.redis_port)

    def start(self):
        self.start_redis()
        env = dict(os.environ,
                   QUICKSTART_ADDR=f"127.0.0.1:{self.qs_port}",
                   REDIS_URL=f"redis://127.0.0.1:{self.redis_port}",
                   NEAR_CACHE="1", MAX_DEVICES="3",
                   LOGIN_RATE_PER_SEC="100000", LOGIN_BURST="100000",
                   RUST_LOG="error")
        self.qs = subprocess.Popen([self.binary], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.qs_port)
        self.t0 = time.time()

    def login(self, client, user, device):
        status, body = client.call("POST", "/login", body={
            "username": user, "password": f"{user}-pw", "device": device})
        return json.loads(body) if status == 200 else None

    # --- the traffic -------------------------------------------------------

    def scraper(self):
        client = Client(self.qs_port)
        while not self.stop.is_set():
            t = self.now()
            status, body = client.call("GET", "/metrics")
            if status == 200:
                self.scrapes.append((t, parse(body.decode())))
            time.sleep(max(0.0, 1.0 - (self.now() - t)))

    def steady(self, n):
        client = Client(self.qs_port)
        i = n
        while not self.stop.is_set():
            with self.lock:
                token = self.pool[i % len(self.pool)] if self.pool else None
            i += 1
            if token:
                client.call("GET", "/me", token)
            time.sleep(0.002)

    def noise(self):
        """A trickle of bad requests, and a wave of forged tokens."""
        client = Client(self.qs_port)
        admin = self.pool[0]
        head, payload, sig = admin.split(".")
        forged = f"{head}.{payload}.{sig[:-4]}AAAA"
        expired = hs256({"sub": "alice", "iss": "tower-jwt-auth-quickstart",
                         "aud": "quickstart", "iat": 999_999_000, "exp": 1_000_000_000})
        while not self.stop.is_set():
            t = self.now()
            wave = 0.38 * self.seconds <= t < 0.46 * self.seconds
            client.call("GET", "/me", None)
            client.call("GET", "/me", "not-a-jwt")
            client.call("GET", "/me", expired)
            for _ in range(25 if wave else 1):
                client.call("GET", "/me", forged)
            time.sleep(0.2)

    def sessions(self):
        """Logins, refreshes, a reuse, logouts, a kick, a ban."""
        client = Client(self.qs_port)
        admin = self.pool[0]
        refresh_token = None
        step = 0
        done = set()
        while not self.stop.is_set():
            t = self.now()
            frac = t / self.seconds
            login = self.login(client, "alice", f"device-{step % 5}")
            if login:
                if refresh_token is None:
                    refresh_token = login["refresh_token"]
                if step % 3 == 0:
                    status, body = client.call(
                        "POST", "/refresh", body={"refresh_token": refresh_token})
                    if status == 200:
                        old, refresh_token = refresh_token, json.loads(body)["refresh_token"]
                        if step % 15 == 0:
                            client.call("POST", "/refresh", body={"refresh_token": old})
                            refresh_token = None
                if step % 4 == 1:
                    client.call("POST", "/logout", login["access_token"])
                # Its token in use for a while: after a logout or a
                # replacement, refused with that reason.
                for _ in range(3):
                    client.call("GET", "/me", login["access_token"])
            for at, what in ((0.20, "kick"), (0.28, "ban"), (0.31, "unban")):
                if frac >= at and what not in done:
                    done.add(what)
                    if what == "kick":
                        client.call("POST", "/admin/users/alice/kick", admin)
                    elif what == "ban":
                        client.call("PUT", "/admin/users/alice/ban", admin, {"seconds": 30})
                    else:
                        client.call("DELETE", "/admin/users/alice/ban", admin)
                    self.mark(what)
            step += 1
            time.sleep(0.5)

    def drive(self):
        client = Client(self.qs_port)
        for device in ("a", "b", "c"):
            login = self.login(client, "admin", device)
            self.pool.append(login["access_token"])
        threads = [threading.Thread(target=self.scraper)]
        threads += [threading.Thread(target=self.steady, args=(n,)) for n in range(3)]
        threads += [threading.Thread(target=self.noise), threading.Thread(target=self.sessions)]
        for t in threads:
            t.daemon = True
            t.start()
        outage = (0.55 * self.seconds, 0.70 * self.seconds)
        while self.now() < outage[0]:
            time.sleep(0.1)
        self.redis.send_signal(signal.SIGKILL)
        self.redis.wait()
        self.mark("Redis killed")
        while self.now() < outage[1]:
            time.sleep(0.1)
        self.start_redis()
        self.mark("Redis back")
        while self.now() < self.seconds:
            time.sleep(0.1)
        self.stop.set()
        for t in threads:
            t.join(timeout=10)

    def close(self):
        for p in (self.qs, self.redis):
            if p and p.poll() is None:
                p.kill()
                p.wait()


# --- the panels, evaluated from the scrapes ---------------------------------

def select(sample, name, match):
    return {labels: v for (n, labels), v in sample.items()
            if n == name and all(dict(labels).get(k) == w for k, w in match.items())}


def window_pairs(scrapes):
    """(t, earlier sample, later sample) with the earlier WINDOW s before."""
    j = 0
    for i, (t, later) in enumerate(scrapes):
        while scrapes[j][0] < t - WINDOW - 0.5:
            j += 1
        t0, earlier = scrapes[j]
        if t - t0 >= WINDOW - 0.5:
            yield t, t - t0, earlier, later


def rate_by(scrapes, name, by, match=None, increase=False):
    out = {}
    for t, dt, earlier, later in window_pairs(scrapes):
        groups = {}
        for labels, v in select(later, name, match or {}).items():
            d = v - select(earlier, name, match or {}).get(labels, 0.0)
            key = dict(labels).get(by, "")
            groups[key] = groups.get(key, 0.0) + (d if increase else d / dt)
        for key, v in groups.items():
            out.setdefault(key, []).append((t, v))
    return out


def quantile(q, buckets):
    """Prometheus's histogram_quantile over (le, cumulative count) pairs."""
    buckets = sorted(buckets)
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-12)
        prev_le, prev_count = le, count
    return prev_le


def latency(scrapes, q):
    out = []
    name = "jwt_auth_store_check_duration_seconds_bucket"
    for t, dt, earlier, later in window_pairs(scrapes):
        buckets = []
        for labels, v in select(later, name, {}).items():
            le = float(dict(labels)["le"].replace("+Inf", "inf"))
            buckets.append((le, v - select(earlier, name, {}).get(labels, 0.0)))
        if buckets:
            value = quantile(q, buckets)
            if value is not None:
                out.append((t, value * 1000))
    return out


def gauge(scrapes, name):
    return [(t, v) for t, s in scrapes for labels, v in select(s, name, {}).items()]


def hit_ratio(scrapes):
    rates = rate_by(scrapes, "jwt_auth_near_cache_requests_total", "result")
    hits = dict(rates.get("hit", []))
    out = []
    for t, miss in rates.get("miss", []):
        hit = hits.get(t, 0.0)
        if hit + miss > 0:
            out.append((t, 100 * hit / (hit + miss)))
    return out


PANELS = {
    "Requests by outcome": lambda s: (rate_by(s, "jwt_auth_requests_total", "outcome"), "req/s"),
    "Rejections by reason": lambda s: (
        rate_by(s, "jwt_auth_requests_total", "reason", {"outcome": "rejected"}), "req/s"),
    "Store check latency": lambda s: ({"p50": latency(s, 0.5), "p99": latency(s, 0.99)}, "ms"),
    "Circuit breaker open": lambda s: ({"open": gauge(s, "jwt_auth_circuit_breaker_open")}, ""),
    "Near-cache hit ratio": lambda s: ({"hit ratio": hit_ratio(s)}, "%"),
    "Session events": lambda s: (
        rate_by(s, "jwt_auth_session_events_total", "event", increase=True), f"per {WINDOW} s"),
}


def render(run, output):
    with open(DASHBOARD) as f:
        titles = [p["title"] for p in json.load(f)["panels"]]
    missing = [t for t in titles if t not in PANELS]
    if missing:
        sys.exit(f"no renderer for the dashboard's panels {missing}")
    plt.style.use("dark_background")
    fig, axes = plt.subplots(2, 3, figsize=(18, 9), facecolor="#111217")
    outage = [t for t, text in run.marks if text.startswith("Redis")]
    for ax, title in zip(axes.flat, titles):
        series, unit = PANELS[title](run.scrapes)
        ax.set_facecolor("#181b1f")
        for label, points in sorted(series.items()):
            if not points or max(v for _, v in points) <= 0:
                continue
            xs, ys = zip(*points)
            step = "post" if title == "Circuit breaker open" else None
            if step:
                ax.step(xs, ys, where="post", label=label, linewidth=1.6)
            else:
                ax.plot(xs, ys, label=label, linewidth=1.4)
        if len(outage) == 2:
            ax.axvspan(outage[0], outage[1], color="#f2495c", alpha=0.12,
                       label="Redis down")
        ax.set_title(title, loc="left", fontsize=12, color="#d8d9da")
        ax.set_ylabel(unit, color="#8e8e8e")
        ax.set_xlabel("seconds", color="#8e8e8e")
        ax.grid(color="#2c3235", linewidth=0.6)
        ax.set_ylim(bottom=0)
        ax.set_xlim(0, run.seconds)
        ax.legend(fontsize=8, loc="upper left", ncol=2, frameon=False)
    fig.suptitle("tower-jwt-auth dashboard: the quickstart against a real redis-server, "
                 "scraped every second (killed and restarted mid-run)",
                 color="#d8d9da", fontsize=13)
    fig.tight_layout()
    fig.savefig(output, dpi=80, facecolor=fig.get_facecolor())
    print(f"wrote {output} from {len(run.scrapes)} scrapes", flush=True)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 100
    run = Run(sys.argv[1], seconds)
    try:
        run.start()
        run.drive()
    finally:
        run.close()
    render(run, sys.argv[2])


if __name__ == "__main__":
    main()
