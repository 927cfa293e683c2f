"""The load benchmark: fdm's pages and API over HTTP, served by gunicorn, with a large run history.

Steps (`run_load_benchmark`):
1. create a scratch database on the server of DATABASE_URL (dropped at the end, whatever happens),
2. migrate it and seed it (`syncengine.dev.history`: N scheduled tables, M runs over 30 days), create a
   superuser with a TOTP device and a viewer API key (`create_api_key`), each in a child process pointed at it,
3. start gunicorn on 127.0.0.1 (a free port, 3 workers, a random SECRET_KEY, FDM_HTTPS=false),
4. log in to the admin through its login form (password and TOTP code, as a person would), time each page
   and list endpoint (median of several requests),
5. run C client threads for S seconds against a mix of API list and detail endpoints: requests, throughput,
   latency percentiles and errors.

Every request goes to 127.0.0.1. The API key rate limit is off in the served process (FDM_API_KEY_RATE=none):
the benchmark measures the server, and one key sends all the traffic.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests
from django_otp.oath import TOTP
from psycopg import sql

PROJECT_DIR = Path(__file__).resolve().parents[2]
GUNICORN_WORKERS = 3
PAGE_SAMPLES = 5
USERNAME = "load-admin"
_SEED_SCRIPT = """
import json, sys
import django
django.setup()
from syncengine.dev.load import scratch_prepare
print(json.dumps(scratch_prepare(tables=int(sys.argv[1]), runs=int(sys.argv[2]), password=sys.argv[3])))
"""


@dataclass(frozen=True)
class LoadPlan:
    """The size of a load benchmark: the history seeded and the concurrent load."""

    clients: int
    seconds: float
    tables: int
    runs: int


@dataclass
class PageTiming:
    name: str
    path: str
    median_ms: float
    max_ms: float
    bytes: int


@dataclass
class LoadResult:
    clients: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class LoadReport:
    command: str
    tables: int
    runs: int
    setup_seconds: dict[str, float]
    pages: list[PageTiming]
    load: LoadResult
    mix: list[str]

    def to_markdown(self) -> str:
        lines = [
            "## fdm load benchmark",
            "",
            f"`{self.command}`: {self.tables} scheduled tables, {self.runs:,} runs over 30 days, gunicorn "
            f"with {GUNICORN_WORKERS} workers on 127.0.0.1, PostgreSQL on the same machine, {os.cpu_count()} "
            "CPU cores.",
            "",
            "Setup: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.setup_seconds.items()),
            "",
            f"### Pages and endpoints (one client, median of {PAGE_SAMPLES} requests after one warm-up)",
            "",
            "| page | path | median ms | max ms | bytes |",
            "|---|---|---:|---:|---:|",
        ]
        lines += [
            f"| {p.name} | `{p.path}` | {p.median_ms:.0f} | {p.max_ms:.0f} | {p.bytes:,} |"
            for p in self.pages
        ]
        load = self.load
        lines += [
            "",
            f"### {load.clients} concurrent API clients for {load.seconds:.0f} s",
            "",
            "Mix, in turn: " + ", ".join(f"`{path}`" for path in self.mix),
            "",
            "| requests | requests/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {load.requests:,} | {load.requests / load.seconds:.1f} | {load.percentile(0.5):.0f} | "
            f"{load.percentile(0.95):.0f} | {load.percentile(0.99):.0f} | {load.percentile(1.0):.0f} | "
            f"{sum(load.errors.values())} |",
        ]
        if load.errors:
            lines += ["", "Errors: " + ", ".join(f"{kind}: {n}" for kind, n in sorted(load.errors.items()))]
        return "\n".join(lines) + "\n"


def scratch_prepare(*, tables: int, runs: int, password: str) -> dict:
    """In the child process pointed at the scratch database: seed the history and create the superuser and its
    TOTP device. Returns what the parent needs to log in (the device's key stays in the scratch database)."""
    from django.contrib.auth.models import User

    from fdm.two_factor import totp_device_ensure
    from syncengine.dev.history import history_seed

    history = history_seed(tables=tables, runs=runs)
    user = User.objects.create_superuser(USERNAME, "load@example.com", password)
    device, _ = totp_device_ensure(user=user)
    return {
        "tables": [config.name for config in history.tables],
        "runs": history.runs,
        "totp": {"key": device.key, "step": device.step, "t0": device.t0, "digits": device.digits},
    }


def run_load_benchmark(*, database_url: str, plan: LoadPlan, command: str, say: Callable) -> LoadReport:
    """Steps 1-5 of the module's docstring; the scratch database and gunicorn are gone when this returns."""
    tables, runs, clients, seconds = plan.tables, plan.runs, plan.clients, plan.seconds
    server = _conninfo(database_url)
    setup: dict[str, float] = {}
    with scratch_database(server) as scratch:
        url = _with_database(database_url, str(psycopg.conninfo.conninfo_to_dict(scratch)["dbname"]))
        env = _child_env(url)
        say("migrating the scratch database")
        with _timed(setup, "migrate"):
            _manage(env, "migrate", "--noinput")
        say(f"seeding {tables} tables and {runs:,} runs")
        password = secrets.token_urlsafe(16)
        with _timed(setup, "seed"):
            seeded = json.loads(_python(env, _SEED_SCRIPT, str(tables), str(runs), password).splitlines()[-1])
        api_key = _manage(env, "create_api_key", "load-viewer", "--role", "viewer").strip().splitlines()[-1]
        with _gunicorn(env) as base:
            say(f"gunicorn serves {base}; timing pages")
            admin = _admin_session(base, password, seeded["totp"])
            api = requests.Session()
            api.headers["Authorization"] = f"Api-Key {api_key}"
            run_id = api.get(f"{base}/api/v1/pipeline/runs/", timeout=60).json()["results"][0]["id"]
            table = seeded["tables"][len(seeded["tables"]) // 2]
            pages = _time_pages(base, admin, api, table=table, run_id=run_id)
            mix = _mix(seeded["tables"], run_id)
            say(f"{clients} clients for {seconds:.0f} s")
            load = _load(base, api_key, mix, clients=clients, seconds=seconds)
    return LoadReport(
        command=command,
        tables=tables,
        runs=seeded["runs"],
        setup_seconds=setup,
        pages=pages,
        load=load,
        mix=[re.sub(r"load_\d{4}", "{name}", re.sub(r"/\d+/", "/{id}/", path)) for path in mix[:6]],
    )


@contextmanager
def scratch_database(server_dsn: str) -> Iterator[str]:
    """A new database `fdm_load_<random>` on the server of `server_dsn`, dropped on the way out, whatever
    happened (WITH (FORCE) ends gunicorn's or a child's leftover sessions); yields its connection string."""
    name = f"fdm_load_{secrets.token_hex(5)}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _conninfo(database_url: str) -> str:
    return psycopg.conninfo.make_conninfo(database_url)


def _with_database(database_url: str, name: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _child_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        FDM_HTTPS="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_SETTINGS_MODULE="fdm.settings",
        FDM_API_KEY_RATE="none",
        FDM_METRICS_TOKEN="",
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_DIR), env.get("PYTHONPATH", "")])),
    )
    return env


@contextmanager
def _timed(into: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    into[name] = time.perf_counter() - start


def _run(env: dict[str, str], argv: list[str]) -> str:
    done = subprocess.run(argv, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def _manage(env: dict[str, str], *args: str) -> str:
    return _run(env, [sys.executable, str(PROJECT_DIR / "manage.py"), *args])


def _python(env: dict[str, str], script: str, *args: str) -> str:
    return _run(env, [sys.executable, "-c", script, *args])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _gunicorn(env: dict[str, str]) -> Iterator[str]:
    """gunicorn serving fdm on 127.0.0.1 until the block ends; yields its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "gunicorn", "fdm.wsgi", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", str(GUNICORN_WORKERS), "--timeout", "120"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, env=env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_live(base, process, log)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_live(base: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"gunicorn exited ({process.returncode}): {log.read().decode()[-2000:]}")
        try:
            if requests.get(f"{base}/health/live", timeout=10).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or a worker still loading
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer {base}/health/live within 60 s")


def _admin_session(base: str, password: str, totp: dict) -> requests.Session:
    """A session logged in through the admin's login form: username, password and the device's current code."""
    session = requests.Session()
    page = session.get(f"{base}/admin/login/", timeout=60)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if csrf is None:
        raise RuntimeError("the admin login page has no CSRF token")
    code = TOTP(bytes.fromhex(totp["key"]), totp["step"], totp["t0"], totp["digits"]).token()
    response = session.post(
        f"{base}/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": csrf.group(1),
            "username": USERNAME,
            "password": password,
            "otp_token": f"{code:0{totp['digits']}d}",
            "next": "/admin/",
        },
        headers={"Referer": f"{base}/admin/login/"},
        timeout=60,
    )
    if "login-form" in response.text:
        raise RuntimeError("the admin login was refused")
    return session


def _time_pages(
    base: str, admin: requests.Session, api: requests.Session, *, table: str, run_id: int
) -> list[PageTiming]:
    table_pk = _admin_table_pk(base, admin, table)
    pages = [
        ("admin front page (dashboard)", admin, "/admin/"),
        ("tables changelist (status board)", admin, "/admin/syncconfig/tableconfig/"),
        ("runs changelist", admin, "/admin/syncengine/syncrun/"),
        ("table change page", admin, f"/admin/syncconfig/tableconfig/{table_pk}/change/"),
        ("run change page", admin, f"/admin/syncengine/syncrun/{run_id}/change/"),
        ("tables", api, "/api/v1/tables/"),
        ("runs", api, "/api/v1/pipeline/runs/"),
        ("table status list", api, "/api/v1/pipeline/tables/"),
        ("table status", api, f"/api/v1/pipeline/tables/{table}/"),
        ("metrics", api, "/metrics"),
    ]
    return [_time_page(base, name, session, path) for name, session, path in pages]


def _admin_table_pk(base: str, admin: requests.Session, table: str) -> int:
    response = admin.get(f"{base}/admin/syncconfig/tableconfig/", params={"q": table}, timeout=60)
    found = re.search(r'href="/admin/syncconfig/tableconfig/(\d+)/change/', response.text)
    if found is None:
        raise RuntimeError(f"table {table} not found in the admin's table list")
    return int(found.group(1))


def _time_page(base: str, name: str, session: requests.Session, path: str) -> PageTiming:
    times = []
    size = 0
    for _ in range(PAGE_SAMPLES + 1):
        start = time.perf_counter()
        response = session.get(f"{base}{path}", timeout=120, allow_redirects=False)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
        size = len(response.content)
    timed = times[1:]
    return PageTiming(name=name, path=path, median_ms=statistics.median(timed), max_ms=max(timed), bytes=size)


def _mix(tables: list[str], run_id: int) -> list[str]:
    """API paths the clients request in turn: list and detail endpoints, details of different tables."""
    paths = []
    for i, table in enumerate(tables[:50]):
        paths += [
            "/api/v1/pipeline/tables/",
            f"/api/v1/pipeline/tables/{table}/",
            "/api/v1/pipeline/runs/",
            f"/api/v1/pipeline/runs/{run_id - i}/",
            "/api/v1/tables/",
            f"/api/v1/tables/{table}/",
        ]
    return paths


def _load(base: str, api_key: str, mix: list[str], *, clients: int, seconds: float) -> LoadResult:
    result = LoadResult(clients=clients, seconds=seconds)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline: list[float] = []

    def client(number: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Api-Key {api_key}"
        latencies: list[float] = []
        errors: dict[str, int] = {}
        start.wait()
        i = number
        while time.monotonic() < deadline[0]:
            path = mix[i % len(mix)]
            i += 1
            began = time.perf_counter()
            try:
                status = session.get(f"{base}{path}", timeout=60).status_code
            except requests.RequestException as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if status == 200:
                latencies.append((time.perf_counter() - began) * 1000)
            else:
                errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
        with lock:
            result.latencies_ms += latencies
            for kind, n in errors.items():
                result.errors[kind] = result.errors.get(kind, 0) + n

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    deadline.append(time.monotonic() + seconds)
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - began
    return result
