"""bench/RESULTS.md and bench/ratios.png from the raw results of one ``make bench`` run.

``python bench/report.py RESULTS_DIR`` rewrites both from the JSON files a
run left in its work directory (run.py prints where), without measuring
again. The targets are the performance guard of the architecture issue
("One shape before the app grows"), and the DOT ratios of the earlier
performance issue; each is judged on the medians of this run and its gap
printed.
"""

# The report is Markdown for people: its typographic signs are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import BENCH_DIR, STACKS

PEERS = {
    "ours": "**token_lifecycle** `BearerTokenAuthentication`",
    "ours-stock-redis": "token_lifecycle, validation cache on Django's stock `RedisCache`",
    "simplejwt": "simplejwt `JWTAuthentication` (RS256)",
    "simplejwt-stateless": "simplejwt `JWTStatelessUserAuthentication` (RS256)",
    "dot": "DOT `OAuth2Authentication`",
    "knox": "knox `TokenAuthentication`",
    "allowany": "AllowAny (no authentication)",
}
SHORT = {
    "ours": "ours",
    "ours-stock-redis": "ours, stock RedisCache",
    "simplejwt": "simplejwt",
    "simplejwt-stateless": "simplejwt stateless",
    "dot": "DOT",
    "knox": "knox",
}
STACK_SHORT = {"sqlite-locmem": "SQLite + locmem", "postgres-redis": "PostgreSQL + Redis"}
#: Chart panels: title, and whether a bar meets its target by being below it.
PANELS = {
    "auth": ("authenticate(), warm: ours ÷ peer (lower is better)", True),
    "refresh": ("Token endpoint: ours ÷ peer (lower is better)", True),
    "http": ("HTTP whoami: req/s ÷ AllowAny (higher is better)", False),
}
#: Growth allowed between 10k and 1M pairs before "does not grow" is called missed.
SCALE_TOLERANCE = 1.25


def load(raw: Path, name: str) -> dict | None:
    path = raw / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def us(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def ms(value_us: float) -> str:
    value = value_us / 1000
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def span(row: dict, fmt=us) -> str:
    return f"{fmt(row['min'])}–{fmt(row['max'])}"


def queries(row: dict) -> str:
    q = row["queries"]
    count = str(q["min"]) if q["min"] == q["max"] else f"{q['min']}–{q['max']}"
    extra = q.get("with_tx", q["max"]) - q["max"]
    return f"{count} (+{extra} tx)" if extra > 0 else count


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×"


class Report:
    def __init__(self, raw: Path) -> None:
        self.raw = raw
        self.meta = load(raw, "meta") or {}
        self.micro = {stack: load(raw, f"micro-{stack}") for stack in STACKS}
        self.http = {stack: load(raw, f"http-{stack}") for stack in STACKS}
        self.remote = {stack: load(raw, f"remote-{stack}") for stack in STACKS}
        self.scale = load(raw, "scale")
        self.lines: list[str] = []
        #: (target, stack, measured, verdict) rows of the summary.
        self.targets: list[tuple[str, str, str, str]] = []
        #: (panel, label, value, target) bars of the chart; panel is a key of PANELS.
        self.bars: list[tuple[str, str, float, float | None]] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def judge(self, target: str, stack: str, value: float, limit: float, kind: str) -> None:
        """Record a target: ``kind`` is "max" (value <= limit) or "min" (value >= limit)."""
        met = value <= limit if kind == "max" else value >= limit
        if kind == "max":
            measured = f"{value:.2f}×"
            gap = "" if met else f" (over by {value - limit:.2f}×, {value / limit - 1:+.0%})"
        else:
            measured = f"{value:.2f}×"
            gap = "" if met else f" (short by {limit - value:.2f}×)"
        self.targets.append((target, stack, measured, ("met" if met else "**missed**") + gap))

    def judge_count(self, target: str, stack: str, value: int, limit: int) -> None:
        met = value <= limit
        gap = "" if met else f" ({value - limit} over)"
        self.targets.append((target, stack, str(value), ("met" if met else "**missed**") + gap))

    def judge_bool(self, target: str, stack: str, ok: bool, measured: str) -> None:
        self.targets.append((target, stack, measured, "met" if ok else "**missed**"))

    # -- Sections --

    def authenticate(self) -> None:
        self.add("## 1. `authenticate()` per request, warm", "")
        self.add(
            "Each package's DRF authentication class called directly on the same request "
            "(`GET /api/whoami/`, one `Authorization` header), the token already used once "
            "(our caches filled). Median of round means, µs per call; min–max of the rounds. "
            "Queries: per call, counted in a separate pass with `CaptureQueriesContext`. "
            "CPU µs: this process's CPU time per call (the rest of the wall time is spent "
            "waiting for the database or cache server, or for a core someone else holds). "
            "The last column is ours divided by the row: below 1 is faster.",
            "",
        )
        for stack, title in STACKS.items():
            data = self.micro[stack]
            if not data:
                continue
            warm = data["authenticate_warm"]
            ours = warm["ours"]["median"]
            self.add(
                f"**{title}** ({data['database']}, {data['cache']})",
                "",
                "| authentication class | median µs | min–max µs | CPU µs | queries "
                "| ours ÷ this |",
                "|---|--:|--:|--:|--:|--:|",
            )
            for name, row in warm.items():
                mine = "—" if name == "ours" else ratio(ours, row["median"])
                self.add(
                    f"| {PEERS[name]} | {us(row['median'])} | {span(row)} "
                    f"| {us(row['cpu_median'])} | {queries(row)} | {mine} |"
                )
            self.add("")
            self.judge_count(
                "authenticate() warm: 0 queries", title, warm["ours"]["queries"]["max"], 0
            )
            sj, stateless = warm["simplejwt"]["median"], warm["simplejwt-stateless"]["median"]
            # The guard of the architecture issue: clarity may cost microseconds, this much.
            limit = 0.5 if stack == "sqlite-locmem" else 1.0
            self.judge(
                f"authenticate() ≤ {limit:g}× simplejwt stateless",
                title,
                ours / stateless,
                limit,
                "max",
            )
            targets = {"simplejwt-stateless": limit}
            if "ours-stock-redis" in warm:
                self.judge(
                    "authenticate() on Django's stock RedisCache ≤ 0.5× simplejwt",
                    title,
                    warm["ours-stock-redis"]["median"] / sj,
                    0.5,
                    "max",
                )
            for name in ("simplejwt", "simplejwt-stateless", "dot", "knox"):
                self.bars.append(
                    (
                        "auth",
                        f"vs {SHORT[name]} ({STACK_SHORT[stack]})",
                        ours / warm[name]["median"],
                        targets.get(name),
                    )
                )

    def cold(self) -> None:
        self.add("## 2. `authenticate()` cold (ours)", "")
        self.add(
            "*Validation cache cleared*: the cache alias emptied before each call (the "
            "process still remembers the token's verified signature). *Fresh pair*: a pair "
            "issued just before and never presented to this process: RS256 verification "
            "plus the pair's row. The peers keep no cache: their warm figures above are also "
            "their cold ones.",
            "",
            "| stack | case | median µs | min–max µs | queries | ÷ simplejwt warm |",
            "|---|---|--:|--:|--:|--:|",
        )
        for stack, title in STACKS.items():
            data = self.micro[stack]
            if not data:
                continue
            sj = data["authenticate_warm"]["simplejwt"]["median"]
            worst = 0
            for name, row in data["authenticate_cold"].items():
                case = name.removeprefix("ours: ")
                worst = max(worst, row["queries"]["max"])
                self.add(
                    f"| {title} | {case} | {us(row['median'])} | {span(row)} | {queries(row)} "
                    f"| {ratio(row['median'], sj)} |"
                )
            self.judge_count("authenticate() cold: at most 1 query", title, worst, 1)
        self.add("")

    def revocation(self) -> None:
        self.add("## 3. Revocation inside the benchmark", "")
        self.add(
            "A token authenticated (twice, so ours has it cached as valid), revoked with the "
            "package's own means, then presented again.",
            "",
            "| stack | package | revoked by | accepted before | accepted after revocation |",
            "|---|---|---|:-:|:-:|",
        )
        for stack, title in STACKS.items():
            data = self.micro[stack]
            if not data:
                continue
            for name, row in data["revocation"].items():
                after = "**yes** (still accepted)" if row["accepted_after"] else "no (401)"
                self.add(
                    f"| {title} | {PEERS[name]} | {row['how']} | "
                    f"{'yes' if row['accepted_before'] else 'no'} | {after} |"
                )
            ours = data["revocation"]["ours"]
            self.judge_bool(
                "honours revocation (next authenticate() refused)",
                title,
                ours["accepted_before"] and not ours["accepted_after"],
                "refused" if not ours["accepted_after"] else "accepted",
            )
        self.add("")

    def remote_section(self) -> None:
        if not any(self.remote.values()):
            return
        self.add("## 3b. A resource server's cost per request (`token_lifecycle.remote`)", "")
        self.add(
            "`RemoteTokenAuthentication.authenticate()` in a process without the app's models "
            "(`bench/remote.py`), beside simplejwt's `JWTStatelessUserAuthentication` (RS256, "
            "no revocation). Warm: JWKS and introspection answer cached (the stack's cache). "
            "Cold: the answer dropped before each call, so one introspection round trip to the "
            "benchmark project served by gunicorn on this machine.",
            "",
            "| stack | case | median (µs) | min-max | ÷ simplejwt stateless |",
            "|---|---|--:|--:|--:|",
        )
        for stack, title in STACKS.items():
            data = self.remote[stack]
            if not data:
                continue
            floor = data["cases"]["simplejwt-stateless"]["median"]
            for case, row in data["cases"].items():
                self.add(
                    f"| {title} | {case} | {us(row['median'])} | {span(row)} "
                    f"| {ratio(row['median'], floor)} |"
                )
            limit = data["target_warm_ratio"]
            self.judge(
                f"resource server warm ≤ {limit}× simplejwt stateless",
                title,
                data["warm_ratio"],
                limit,
                "max",
            )
        self.add("")

    def endpoints(self) -> None:
        self.add("## 4. Token endpoint", "")
        self.add(
            "Each package's token view called with a `RequestFactory` POST (form-encoded; "
            "confidential clients authenticate with HTTP Basic, public ones send `client_id`), "
            "the response rendered. Refresh: a chain, each call using the refresh token the "
            "previous one returned (every package rotates). Steady state: our principals are "
            "at their cap of 10 live pairs (a refreshed pair stays live while its access token "
            "does), so each issue or refresh also evicts the oldest; *below the cap* revokes "
            "the principal's other pairs before each call, outside the clock (a client that "
            "refreshes when its access token expires). Queries: data statements per call; "
            "`+n tx` are BEGIN/COMMIT/SAVEPOINT statements Django also logs. "
            "**Passwords and DOT's confidential client secrets are hashed with Django's "
            "default hasher, PBKDF2-SHA256 (1,000,000 iterations in Django 5.2), for every "
            "package**; our client secrets are SHA-256 (256-bit random, no password hasher).",
            "",
        )
        sections = (
            ("refresh", "Refresh"),
            ("client_credentials", "Issue: client_credentials"),
            ("authorization_code", "Issue: authorization code exchange (public client, PKCE)"),
            ("password", "Issue: password grant"),
        )
        for stack, title in STACKS.items():
            data = self.micro[stack]
            if not data:
                continue
            self.add(f"**{title}** ({data['database']}, {data['cache']})", "")
            for key, label in sections:
                rows = data[key]
                first = next(iter(rows.values()))["median"]
                self.add(
                    f"*{label}*",
                    "",
                    "| case | median ms | min–max ms | queries | first row ÷ this |",
                    "|---|--:|--:|--:|--:|",
                )
                for name, row in rows.items():
                    self.add(
                        f"| {name} | {ms(row['median'])} | {span(row, ms)} | {queries(row)} "
                        f"| {ratio(first, row['median'])} |"
                    )
                self.add("")
            refresh = data["refresh"]
            sj = refresh["simplejwt refresh (rotation + blacklist)"]["median"]
            dot = refresh["dot refresh (confidential client)"]["median"]
            dot_public = refresh["dot refresh (public client)"]["median"]
            for variant in ("at the cap", "below the cap"):
                row = refresh[f"ours refresh (confidential client, {variant})"]
                self.judge(
                    f"refresh ({variant}) ≤ 0.6× simplejwt", title, row["median"] / sj, 0.6, "max"
                )
                self.judge(
                    f"refresh ({variant}) ≤ 0.3× DOT confidential",
                    title,
                    row["median"] / dot,
                    0.3,
                    "max",
                )
                self.judge_count(
                    f"refresh ({variant}): at most 6 queries", title, row["queries"]["max"], 6
                )
            exchange = data["authorization_code"]
            ours_code = exchange["ours authorization_code (public client, PKCE)"]["median"]
            dot_code = exchange["dot authorization_code (public client, PKCE)"]["median"]
            self.judge(
                "code exchange ≤ 0.5× DOT's (public client, PKCE)",
                title,
                ours_code / dot_code,
                0.5,
                "max",
            )
            public = refresh["ours refresh (public client, at the cap)"]["median"]
            at_cap = refresh["ours refresh (confidential client, at the cap)"]["median"]
            below = refresh["ours refresh (confidential client, below the cap)"]["median"]
            short = STACK_SHORT[stack]
            self.bars += [
                ("refresh", f"vs simplejwt, at the cap ({short})", at_cap / sj, 0.6),
                ("refresh", f"vs simplejwt, below the cap ({short})", below / sj, 0.6),
                ("refresh", f"vs DOT confid., at the cap ({short})", at_cap / dot, 0.3),
                ("refresh", f"code exchange vs DOT ({short})", ours_code / dot_code, 0.5),
                (
                    "refresh",
                    f"public vs DOT public, at the cap ({short})",
                    public / dot_public,
                    None,
                ),
            ]
        self.add(
            "Every package's query count, per call, is in the tables; DOT's includes the "
            "access token re-read after its transaction, simplejwt's two separate "
            "autocommitted writes (blacklist, new outstanding token).",
            "",
        )

    def http_section(self) -> None:
        self.add("## 5. HTTP: whoami under gunicorn", "")
        any_http = next((h for h in self.http.values() if h), None)
        if not any_http:
            self.add("Not measured in this run.", "")
            return
        self.add(
            f"`GET /api/whoami/<package>/` (the same view, each with its package's "
            f"authentication class alone; AllowAny: no authentication) under gunicorn, "
            f"{any_http['workers']} sync workers, loopback; load by {any_http['tool']}, "
            f"{any_http['connections']} connections, {any_http['seconds']:g} s per run after "
            f"a 2 s warm-up, {any_http['repeats']} runs per view interleaved; median "
            f"requests/s and min–max of the runs. The middleware is the example project's. "
            f"SQLite closes its connection after each request (Django's default "
            f"`CONN_MAX_AGE=0`), so a package that queries also reconnects; PostgreSQL "
            f"connections persist (`CONN_MAX_AGE=60`). *Server CPU*: CPU time of the "
            f"gunicorn workers (and, on PostgreSQL, of the backends serving them; Redis is "
            f"shared with others and not counted) per request, median of the runs: it "
            f"depends far less than requests/s on other people's load on this machine, and "
            f"*AllowAny ÷ this* on it is the throughput ratio a quiet machine would show "
            f"if the server were CPU-bound.",
            "",
            "| stack | view | median req/s | min–max | ÷ AllowAny | ours ÷ this "
            "| server CPU µs/req | AllowAny ÷ this (CPU) | non-2xx |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|",
        )
        for stack, title in STACKS.items():
            data = self.http[stack]
            if not data:
                continue
            views = data["views"]
            base = views["allowany"]["median"]
            base_cpu = views["allowany"]["cpu_us_per_request"]
            ours = views["ours"]["median"]
            for name, row in views.items():
                mine = "—" if name in ("ours", "allowany") else ratio(ours, row["median"])
                cpu = row["cpu_us_per_request"]
                self.add(
                    f"| {title} | {PEERS[name]} | {row['median']:,.0f} "
                    f"| {row['min']:,.0f}–{row['max']:,.0f} | {ratio(row['median'], base)} "
                    f"| {mine} | {cpu:,.0f} | {ratio(base_cpu, cpu)} | {row['non_2xx']} |"
                )
            limit = 0.8
            self.judge(f"HTTP req/s ≥ {limit}× AllowAny", title, ours / base, limit, "min")
            self.judge(
                "HTTP req/s ≥ 1.0× simplejwt stateless",
                title,
                ours / views["simplejwt-stateless"]["median"],
                1.0,
                "min",
            )
            self.judge(
                f"(same, by server CPU per request ≥ {limit}×)",
                title,
                base_cpu / views["ours"]["cpu_us_per_request"],
                limit,
                "min",
            )
            for name in ("ours", "simplejwt", "simplejwt-stateless", "dot", "knox"):
                self.bars.append(
                    (
                        "http",
                        f"{SHORT[name]} ({STACK_SHORT[stack]})",
                        views[name]["median"] / base,
                        limit if name == "ours" else None,
                    )
                )
        self.add("")

    def request_section(self) -> None:
        self.add("## 5b. The same whoami request in-process (Django's WSGI handler)", "")
        self.add(
            "What gunicorn calls for each request, without HTTP parsing, sockets or a load "
            "generator on the same two cores: `WSGIHandler()(environ, start_response)` with "
            "the same middleware, URL, view and headers as above, interleaved rounds. "
            "*AllowAny ÷ this* is the throughput ratio of a CPU-bound server; HTTP adds a "
            "fixed cost per request (parsing, accept, write) that pulls every ratio towards 1.",
            "",
            "| stack | view | median µs | min–max µs | CPU µs | AllowAny ÷ this "
            "| AllowAny ÷ this (CPU) | ours ÷ this |",
            "|---|---|--:|--:|--:|--:|--:|--:|",
        )
        for stack, title in STACKS.items():
            data = self.micro[stack]
            if not data or "request" not in data:
                continue
            rows = data["request"]
            base, base_cpu = rows["allowany"]["median"], rows["allowany"]["cpu_median"]
            ours = rows["ours"]["median"]
            for name, row in rows.items():
                mine = "—" if name in ("ours", "allowany") else ratio(ours, row["median"])
                self.add(
                    f"| {title} | {PEERS[name]} | {us(row['median'])} | {span(row)} "
                    f"| {us(row['cpu_median'])} | {ratio(base, row['median'])} "
                    f"| {ratio(base_cpu, row['cpu_median'])} | {mine} |"
                )
        self.add("")

    def scale_section(self) -> None:
        if not self.scale:
            self.add("## 6. Scale", "", "Not measured in this run.", "")
            return
        sizes = list(self.scale["sizes"])
        names = " vs ".join(f"{int(size):,}" for size in sizes)
        self.add(f"## 6. Scale: {names} pairs in the table (PostgreSQL + Redis)", "")
        self.add(
            "One database per size, other clients' live pairs bulk-loaded with `INSERT ... "
            "SELECT generate_series` (100 clients, 10,000 users, random UUID keys), then "
            "`ANALYZE`; our principal's own pairs stay few. The sizes are measured in turns, "
            "round by round (one worker process per database), so that both see the same "
            "load on this shared machine. Median µs (min–max); the last column is the "
            f'largest size ÷ the smallest. "Does not grow" is judged as ≤ {SCALE_TOLERANCE}× '
            "(noise allowance on this shared machine).",
            "",
            "| case | "
            + " | ".join(
                f"{int(size):,} pairs ({self.scale['sizes'][size]['size']})" for size in sizes
            )
            + f" | {int(sizes[-1]):,} ÷ {int(sizes[0]):,} | queries |",
            "|---|" + "--:|" * len(sizes) + "--:|--:|",
        )
        first = self.scale["sizes"][sizes[0]]["measurements"]
        last = self.scale["sizes"][sizes[-1]]["measurements"]
        for name in first:
            cells = []
            for size in sizes:
                row = self.scale["sizes"][size]["measurements"][name]
                cells.append(f"{us(row['median'])} ({span(row)})")
            growth = last[name]["median"] / first[name]["median"]
            self.add(
                f"| {name} | " + " | ".join(cells) + f" | {growth:.2f}× | {queries(last[name])} |"
            )
            if name.startswith("ours: ") or name.startswith("ours refresh"):
                self.judge(
                    f"does not grow {int(sizes[0]):,}→{int(sizes[-1]):,} pairs: "
                    f"{name.removeprefix('ours: ')}",
                    "PostgreSQL + Redis",
                    growth,
                    SCALE_TOLERANCE,
                    "max",
                )
        self.add("")

    def knox_growth(self) -> None:
        self.add("## 7. knox: cost grows with the user's token count", "")
        self.add(
            "knox's `authenticate()` walks every token of the user on each request "
            "(`_cleanup_token`).",
            "",
            "| stack | case | median µs | min–max µs | queries |",
            "|---|---|--:|--:|--:|",
        )
        for stack, title in STACKS.items():
            data = self.micro[stack]
            if not data:
                continue
            for name, row in data["knox_growth"].items():
                self.add(
                    f"| {title} | {name} | {us(row['median'])} | {span(row)} | {queries(row)} |"
                )
        self.add("")

    def profiles(self) -> None:
        self.add("## 8. Where our time goes (profiles)", "")
        self.add(
            "cProfile of our code paths, functions by own time, in µs per call of the path "
            "(cProfile inflates small functions; the proportions are what matter). The "
            "pyinstrument trees are in `bench/profiles/*.txt`, the full cProfile listings in "
            "`bench/profiles/*.cprofile.txt`.",
            "",
        )
        titles = {
            "authenticate_warm": "authenticate(), warm",
            "authenticate_cache_cleared": "authenticate(), validation cache cleared",
            "refresh": "refresh (confidential client, at the cap)",
        }
        for stack, title in STACKS.items():
            data = self.micro[stack]
            if not data:
                continue
            for key, label in titles.items():
                profile = data["profiles"][key]
                if profile.get("tree") and key != "authenticate_cache_cleared":
                    self.add(
                        f"pyinstrument, {label}, {title}: wall seconds for "
                        f"{profile['calls']:,} calls (divide for one call)",
                        "",
                        "```",
                        profile["tree"],
                        "```",
                        "",
                    )
                limit = 10 if key == "authenticate_warm" else 8
                self.add(
                    f"**{label}, {title}** ({profile['calls']:,} calls profiled)",
                    "",
                    "| function | where | calls per path | own µs | share |",
                    "|---|---|--:|--:|--:|",
                )
                for row in profile["top"][:limit]:
                    function = row["function"].replace("|", "\\|")
                    self.add(
                        f"| `{function}` | {row['where']} | {row['calls_per_call']:.0f} "
                        f"| {row['own_us']:.1f} | {row['own_share']:.0%} |"
                    )
                self.add("")
            primitives = data.get("cache_primitives")
            if primitives:
                self.add(
                    f"**One validation-cache read, {title}** (the three entries a warm "
                    f"request fetches from a shared cache; with local memory, a request "
                    f"whose answer the process kept reads one key instead)",
                    "",
                    "| operation | median µs | min–max µs | CPU µs |",
                    "|---|--:|--:|--:|",
                )
                for name, row in primitives.items():
                    self.add(
                        f"| {name} | {us(row['median'])} | {span(row)} | {us(row['cpu_median'])} |"
                    )
                self.add("")
            difference = data["profiles"].get("request_difference")
            if difference:
                self.add(
                    f"**whoami request, what ours adds to AllowAny, {title}** (cProfile of "
                    f"{difference['calls']:,} requests each through the WSGI handler; "
                    f"functions only ours calls (or calls more often), own time per request, "
                    f"{difference['total_extra_us']:.0f} µs in all under the profiler)",
                    "",
                    "| function | where | extra calls | extra own µs | share |",
                    "|---|---|--:|--:|--:|",
                )
                for row in difference["top"][:12]:
                    function = row["function"].replace("|", "\\|")
                    self.add(
                        f"| `{function}` | {row['where']} | {row['calls_per_call']:.0f} "
                        f"| {row['own_us']:.1f} | {row['own_share']:.0%} |"
                    )
                self.add("")

    # -- Assembly --

    def machine(self) -> list[str]:
        meta = self.meta
        machine = meta.get("machine", {})
        packages = machine.get("packages", {})
        databases = sorted(
            {data["database"] for data in self.micro.values() if data}
            | {data["cache"] for data in self.micro.values() if data}
        )
        load = machine.get("loadavg", ())
        lines = [
            "## Machine and method",
            "",
            f"- Date: {meta.get('date', '?')}; whole run {meta.get('seconds', 0) / 60:.1f} min"
            + (" (**BENCH_QUICK=1: fewer rounds, not for quoting**)" if meta.get("quick") else ""),
            f"- CPU: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores "
            f"(shared: load average {', '.join(f'{x:.1f}' for x in load)} at the start)",
            f"- Python {machine.get('python', '?')} on {machine.get('platform', '?')}",
            "- "
            + ", ".join(
                f"{name} {version}"
                for name, version in packages.items()
                if name != "django-token-lifecycle"
            ),
            f"- Stores: {', '.join(databases) or '?'}",
            "- Reproduce: `make bench` (builds `bench/.venv` from `.[dev]` and "
            "`bench/requirements.txt`, then runs `bench/run.py`; PostgreSQL on "
            "127.0.0.1:5432 and Redis on 127.0.0.1:6379 needed for the second stack). "
            "Re-render this page from a run's raw JSON: `bench/.venv/bin/python "
            "bench/report.py <workdir>/results`.",
            "- Method: cases are interleaved round by round so that load from other users of "
            "this shared machine hits every package alike; each figure is the median of the "
            "round means, with the min–max of the rounds. Ratios are of medians from the "
            "same run.",
        ]
        if meta.get("load"):
            loads = "; ".join(f"{name}: {value}" for name, value in meta["load"].items())
            lines.append(f"- Load average (1 min) as each stage started: {loads}")
        if meta.get("knobs"):
            knobs = ", ".join(f"{key}={value}" for key, value in meta["knobs"].items())
            lines.append(f"- Knobs set: {knobs}")
        lines.append("")
        return lines

    def summary(self) -> list[str]:
        lines = [
            "## Targets",
            "",
            "| target | stack | measured | verdict |",
            "|---|---|--:|---|",
        ]
        for target, stack, measured, verdict in self.targets:
            lines.append(f"| {target} | {stack} | {measured} | {verdict} |")
        skipped = self.meta.get("skipped", {})
        if skipped:
            lines += ["", "Not measured in this run:", ""]
            lines += [f"- {name}: {reason}" for name, reason in skipped.items()]
        lines.append("")
        return lines

    def write(self) -> None:
        self.authenticate()
        self.cold()
        self.revocation()
        self.remote_section()
        self.endpoints()
        self.http_section()
        self.request_section()
        self.scale_section()
        self.knox_growth()
        self.profiles()
        header = [
            "# Benchmarks: token_lifecycle beside simplejwt, django-oauth-toolkit and knox",
            "",
            "Generated by `make bench` (`bench/run.py`); do not edit by hand. All figures "
            'come from one run on the machine below. Ratios are "ours ÷ peer" for times '
            '(below 1: we are faster) and "÷ AllowAny" for HTTP throughput (1: '
            "authentication costs nothing).",
            "",
            "![ratios](ratios.png)",
            "",
        ]
        text = "\n".join(header + self.summary() + self.machine() + self.lines)
        (BENCH_DIR / "RESULTS.md").write_text(text.rstrip() + "\n")
        self.chart()

    def chart(self) -> None:
        """Horizontal bars, one panel per kind; a black tick marks each bar's target."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels = [(key, [b for b in self.bars if b[0] == key]) for key in PANELS]
        panels = [(key, bars) for key, bars in panels if bars]
        if not panels:
            return
        heights = [0.8 + 0.42 * len(bars) for _, bars in panels]
        figure, axes = plt.subplots(
            len(panels),
            1,
            figsize=(10, sum(heights) + 0.8),
            gridspec_kw={"height_ratios": heights},
            squeeze=False,
        )
        for axis, (key, bars) in zip(axes[:, 0], panels, strict=True):
            title, lower_is_better = PANELS[key]
            positions = list(range(len(bars)))[::-1]
            colors = []
            for _, _, value, target in bars:
                if target is None:
                    colors.append("#9aa5b1")
                elif (value <= target) == lower_is_better or value == target:
                    colors.append("#2b8a3e")
                else:
                    colors.append("#c92a2a")
            values = [bar[2] for bar in bars]
            axis.barh(positions, values, color=colors, height=0.7)
            for position, (_, _, value, target) in zip(positions, bars, strict=True):
                axis.text(value, position, f" {value:.2f}", va="center", fontsize=8)
                if target is not None:
                    axis.vlines(target, position - 0.45, position + 0.45, colors="black", lw=2)
                    sign = "≤" if lower_is_better else "≥"
                    axis.text(
                        target,
                        position + 0.38,
                        f"target {sign} {target:g} ",
                        fontsize=7,
                        ha="right",
                        va="bottom",
                    )
            axis.axvline(1.0, color="#555", linewidth=0.8, linestyle=":")
            axis.set_yticks(positions, [bar[1] for bar in bars], fontsize=8)
            axis.set_title(title, fontsize=10, loc="left")
            if lower_is_better:
                axis.set_xscale("log")
                axis.set_xlim(min(0.01, min(values) / 2), max(2.0, max(values) * 1.6))
            else:
                axis.set_xlim(0, max(1.1, max(values) * 1.15))
        figure.suptitle(
            "token_lifecycle vs simplejwt, django-oauth-toolkit, knox (one run; "
            "green: target met, red: missed, grey: no target)",
            fontsize=10,
        )
        figure.tight_layout(rect=(0, 0, 1, 0.98))
        figure.savefig(BENCH_DIR / "ratios.png", dpi=110)
        plt.close(figure)


def write_report(raw: Path) -> None:
    Report(raw).write()


if __name__ == "__main__":
    write_report(Path(sys.argv[1]))
