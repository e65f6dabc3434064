"""What the benchmarks share: the cores, the bench database, a staff viewer's session, /metrics."""

from __future__ import annotations

import os
import urllib.request

from bench.servers import Server

SERVER_CORE = 1
GENERATOR_CORE = 0
BENCH_SECRET_KEY = "callscribe-benchmark-only-secret-key-not-for-production"
BENCH_METRICS_TOKEN = "bench-metrics-token"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- the bench database (in-process Django, same database and SECRET_KEY as the server) ----------


def setup_django(database_url: str) -> None:
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": BENCH_SECRET_KEY,
            "DEBUG": "False",
            "ACS_VERIFY_JWT": "False",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    import django

    django.setup()


def fresh_bench_database(admin_url: str, name: str, keep: bool) -> str:
    """A database of the benchmark's own, created empty for each invocation (unless `keep`), so that
    what earlier runs left behind (never-ended calls, their segments) cannot change the figures."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not keep:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not keep:
            connection.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def viewer_cookie() -> str:
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    user, _ = User.objects.get_or_create(username="bench-viewer", defaults={"is_staff": True})
    # Watching every call, as quality staff do (the scoped case is bench/scope_bench.py's).
    user.user_permissions.set(Permission.objects.filter(codename__in=["watch_call", "view_all_calls"]))
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def scrape_metrics(server: Server) -> dict[str, float]:
    """Callscribe's own metrics (/metrics): counters summed over labels, each histogram bucket summed over
    labels (`name_bucket{le=0.025}`), and p50/p99 of its histograms (upper bucket bounds, in ms)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/metrics", headers={"Authorization": f"Bearer {BENCH_METRICS_TOKEN}"}
    )
    try:
        body = urllib.request.urlopen(request, timeout=5).read().decode()
    except OSError:
        return {}
    totals: dict[str, float] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    for line in body.splitlines():
        if not line.startswith("callscribe_"):
            continue
        name, value = line.split("{")[0].split(" ")[0], float(line.rsplit(" ", 1)[1])
        if "{" in line and not name.endswith("_bucket"):
            labelled = line.rsplit(" ", 1)[0]  # e.g. callscribe_packets_total{kind="AudioData"}
            totals[labelled] = totals.get(labelled, 0.0) + value
        if name.endswith("_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.setdefault(name.removesuffix("_bucket"), []).append((float(bound), value))
            totals[f"{name}{{le={bound}}}"] = totals.get(f"{name}{{le={bound}}}", 0.0) + value  # over all labels
        else:
            totals[name] = totals.get(name, 0.0) + value
    for name, rows in buckets.items():
        rows.sort()
        count = rows[-1][1] if rows else 0
        for label, fraction in (("p50", 0.5), ("p99", 0.99)):
            bound = next((edge for edge, seen in rows if count and seen >= fraction * count), float("nan"))
            totals[f"{name}_{label}_ms"] = bound * 1000
    return totals
