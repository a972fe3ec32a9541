"""Figures of a soak run and the Markdown of ``bench/SOAK_RESULTS.md``.

The file keeps the newest runs (``KEEP_RUNS``), newest first, each between
``RUN_MARKER`` lines, so that two consecutive ``make soak`` runs can be compared.
"""

from __future__ import annotations

import platform
import re
import resource
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from soak_checks import Check
from soak_faults import Fault
from soak_load import Event, PurgeRun

RUN_MARKER = "<!-- soak-run -->"
KEEP_RUNS = 3
ENDPOINT_ORDER = [
    "whoami",
    "pairs",
    "refresh",
    "client_credentials",
    "password",
    "revoke",
    "logout",
    "logout_all",
]


def percentile(values: list[float], fraction: float) -> str:
    """The nearest-rank percentile, in whole milliseconds ("-" when there are no values)."""
    ordered = sorted(values)
    if not ordered:
        return "-"
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return f"{ordered[index]:.0f}"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        memory_kb = 0
    import os

    return (
        f"{cpu}, {os.cpu_count()} cores, {memory_kb / 1024 / 1024:.0f} GB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()} (shared machine)"
    )


def endpoint_table(events: list[Event], seconds: float, windows: list[tuple[float, float]]):
    by_endpoint: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_endpoint[event.endpoint].append(event)
    names = [n for n in ENDPOINT_ORDER if n in by_endpoint]
    names += sorted(set(by_endpoint) - set(names))

    def steady(event: Event) -> bool:
        return not any(start <= event.t_done <= end + 5 for start, end in windows)

    lines = [
        "| endpoint | requests | req/s | p50 ms | p99 ms | steady p50 | steady p99 | statuses |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in [*names, "all"]:
        chosen = events if name == "all" else by_endpoint[name]
        answered = [e.latency * 1000 for e in chosen if e.status]
        calm = [e.latency * 1000 for e in chosen if e.status and steady(e)]
        statuses = Counter("no answer" if e.status == 0 else str(e.status) for e in chosen)
        shown = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
        label = "**all**" if name == "all" else name
        lines.append(
            f"| {label} | {len(chosen)} | {len(chosen) / seconds:.1f} | "
            f"{percentile(answered, 0.5)} | {percentile(answered, 0.99)} | "
            f"{percentile(calm, 0.5)} | {percentile(calm, 0.99)} | {shown} |"
        )
    return lines


def error_table(events: list[Event]) -> list[str]:
    errors = Counter(
        (e.endpoint, "no answer" if e.status == 0 else e.status, e.error[:60])
        for e in events
        if e.status != 200
    )
    lines = ["| endpoint | status | error | count |", "|---|---|---|---:|"]
    for (endpoint, status, error), count in sorted(errors.items(), key=lambda i: -i[1]):
        lines.append(f"| {endpoint} | {status} | {error or '-'} | {count} |")
    return lines


def fault_section(fault: Fault, events: list[Event], t0: float) -> list[str]:
    load = [e for e in events if not e.actor.startswith("fault/")]
    lines = [
        f"#### {fault.name}",
        "",
        f"Window: t+{fault.t_start - t0:.1f} s to t+{fault.t_end - t0:.1f} s "
        f"({fault.t_end - fault.t_start:.1f} s).",
        "",
        "What the load's requests got (by the time they were answered): "
        f"during the window: {statuses(load, fault.t_start, fault.t_end)}; "
        f"in the 5 s after: {statuses(load, fault.t_end, fault.t_end + 5)}.",
        "",
    ]
    lines += [f"- {text}" for text in fault.seen]
    lines += [
        f"- {'PASS' if passed else '**FAIL**'}: {name}" + (f" ({detail})" if detail else "")
        for name, passed, detail in fault.checks
    ]
    return [*lines, ""]


def statuses(events: list[Event], start: float, end: float) -> str:
    seen = Counter(
        (e.endpoint, "no answer" if e.status == 0 else e.status)
        for e in events
        if start <= e.t_done < end
    )
    if not seen:
        return "no requests"
    return ", ".join(f"{ep} {st}: {n}" for (ep, st), n in sorted(seen.items(), key=str))


def postgres_errors(log: Path, limit: int = 12) -> tuple[Counter, list[str]]:
    """ERROR lines of the PostgreSQL log by message (deadlocks, serialization failures...)."""
    if not log.exists():
        return Counter(), []
    errors = [line for line in log.read_text(errors="replace").splitlines() if " ERROR: " in line]
    kinds = Counter(line.split(" ERROR: ", 1)[1].strip()[:80] for line in errors)
    return kinds, errors[:limit]


def checks_section(checks: list[Check]) -> list[str]:
    lines = ["| check | outcome | detail |", "|---|---|---|"]
    for check in checks:
        outcome = "PASS" if check.passed else "**FAIL**"
        lines.append(f"| {check.name} | {outcome} | {check.detail} |")
    evidence = [c for c in checks if c.evidence and not c.passed]
    for check in evidence:
        lines += ["", f"Evidence for *{check.name}*:", "", "```"]
        lines += check.evidence
        lines += ["```"]
    return lines


def purge_section(runs: list[PurgeRun] | None, t0: float, note: str) -> list[str]:
    if runs is None:
        return [note]
    lines = [note, "", "| at | seconds | exit | output (last line) |", "|---|---:|---:|---|"]
    for run in runs:
        last = run.output.strip().splitlines()[-1] if run.output.strip() else ""
        lines.append(
            f"| t+{run.t_start - t0:.1f} s | {run.seconds:.1f} | {run.returncode} | "
            f"{last[:150].replace('|', '/')} |"
        )
    return lines


def server_errors(log: Path, limit: int = 2) -> list[str]:
    """The tracebacks of 500s in the gunicorn log: each distinct one once, with its count."""
    if not log.exists():
        return []
    blocks: list[list[str]] = []
    for line in log.read_text(errors="replace").splitlines():
        if "Internal Server Error" in line:
            blocks.append([line])
        elif blocks and re.match(r"^\d{4}-\d\d-\d\d |^\[\d{4}", line):
            blocks.append([])  # the next log record: the traceback has ended
        elif blocks and blocks[-1]:
            blocks[-1].append(line)
    distinct: dict[str, list[str]] = {}
    counts: Counter = Counter()
    for block in filter(None, blocks):
        key = block[-1]
        counts[key] += 1
        distinct.setdefault(key, block)
    lines = []
    for key, block in list(distinct.items())[:limit]:
        lines += [f"# {counts[key]} x, first at:", *block, ""]
    return lines


def write_results(path: Path, run_lines: list[str]) -> None:
    previous = []
    if path.exists():
        previous = path.read_text().split(RUN_MARKER)[1:]
    runs = [RUN_MARKER + "\n" + "\n".join(run_lines) + "\n"]
    runs += [RUN_MARKER + text for text in previous[: KEEP_RUNS - 1]]
    path.write_text("\n".join(HEADER) + "\n\n" + "".join(runs))


def run_heading(number_hint: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"## Run of {stamp} {number_hint}".rstrip()


HEADER = [
    "# Soak results",
    "",
    "Written by `make soak` (`bench/soak.py`; its docstring says what it runs and checks).",
    "Newest run first; the file keeps the last three. Times are wall clock on one host:",
    "client send/answer times, the app's clock and PostgreSQL's commit timestamps.",
    "`SOAK_KEEP=1` keeps the work directory: the raw client-side history (`events.jsonl`,",
    "one line per request: times sent and answered, endpoint, pair ids, status), the",
    "gunicorn and PostgreSQL logs and the database.",
]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_markdown(config, stack, world, observed, results, facts) -> list[str]:
    """The section of one run: set-up, figures, checks, faults, purge, server errors."""
    events, seconds = observed.recorder.events, observed.t_stop - observed.t0
    load_events = [e for e in events if observed.t0 <= e.t_sent <= observed.t_stop]
    failed = [c for c in results if not c.passed]
    actors = config.clients * config.servers + len(world.sessions)
    lines = [
        run_heading(f"({'with' if config.faults else 'without'} faults)"),
        "",
        f"**Outcome: {'all checks passed' if not failed else f'{len(failed)} check(s) FAILED'}.**",
        "",
        f"- Machine: {machine()}; 1-minute load average {observed.load_average[0]:.1f} "
        f"at the start, {observed.load_average[1]:.1f} at the end (other engineers' test runs "
        f"share the 2 cores). Gunicorn used {observed.server_cpu:.1f} CPU-seconds, "
        f"{1000 * observed.server_cpu / max(1, len(events)):.1f} ms per request; the load "
        f"generator (this process) {cpu_seconds():.1f}. Latencies below are mostly waiting "
        "for a core.",
        f"- Command: `make soak` (`.venv/bin/python bench/soak.py`), SOAK_SECONDS="
        f"{config.seconds:g}, SOAK_FAULTS={int(config.faults)}; load ran {seconds:.1f} s.",
        f"- Stack: {stack.pg.version} (private cluster, port {stack.pg.port}, "
        f"track_commit_timestamp=on), private Redis on port {stack.redis.port}, gunicorn "
        f"{config.workers} sync workers, DEBUG off, settings `bench/soak_settings.py` (the "
        "example project's, with PBKDF2 at 1,000 iterations so password logins are cheap).",
        f"- Load: {config.clients} API clients x {config.servers} servers "
        f"({dict(world.flavours)}; short = access 8 s, refresh 60 s, grace 3 s; small-cap = "
        f"cap 3), {len(world.sessions)} password-grant app sessions, an admin every ~0.4 s, "
        f"the cap sampler every 0.15 s.",
        f"- Pairs in the table at the end: {facts['rows']} (seeded: "
        f"{len(world.seeded_purgeable) + len(world.seeded_kept)}); revocation reasons: "
        + ", ".join(f"{k} {v}" for k, v in facts["reasons"].most_common())
        + f"; {facts['unanswered']} pairs were committed but never reached a client "
        "(killed workers, requests cut by the faults).",
        "",
        "### Requests",
        "",
        *endpoint_table(load_events, seconds, [(f.t_start, f.t_end) for f in observed.faults]),
        "",
        "Latency is client-side, from sending to the answer; *steady* leaves out answers "
        "from a fault's start to 5 s after its end. The clients are closed-loop (each waits "
        f"for its answer, then thinks 0.3-1.2 s), so with {actors} of them the queue in front "
        f"of the {config.workers} sync workers is about {actors} - throughput x think time "
        "requests long (Little's law): "
        "latency here is mostly the wait for a worker, and a worker's wait for a core. "
        "'no answer': the connection was reset by a killed worker.",
        "",
        "### Errors by status",
        "",
        *error_table(load_events),
        "",
        "### Checks",
        "",
        *checks_section(results),
        "",
    ]
    if observed.faults:
        lines += ["### Faults and what clients saw", ""]
        for fault in observed.faults:
            lines += fault_section(fault, events, observed.t0)
    lines += [
        "### Purge",
        "",
        *purge_section(observed.purge_runs, observed.t0, observed.purge_note),
        "",
    ]
    admin = Counter((a.kind, "ok" if not a.error else "db error") for a in observed.recorder.admin)
    lines += [
        "### Admin actions",
        "",
        ", ".join(f"{k} ({s}): {n}" for (k, s), n in sorted(admin.items())) + ".",
        "",
    ]
    kinds, examples = postgres_errors(stack.pg.log)
    lines += ["### PostgreSQL errors", ""]
    if kinds:
        lines += [", ".join(f"{message} ({n})" for message, n in kinds.most_common()) + ".", ""]
        lines += ["```", *examples, "```", ""]
    else:
        lines += ["None in the server log.", ""]
    tracebacks = server_errors(stack.gunicorn.log)
    if tracebacks:
        lines += ["### Server errors in the gunicorn log", "", "```", *tracebacks, "```", ""]
    return lines
