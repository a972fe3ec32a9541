"""Cost of signing and verifying one access token, per algorithm (``make bench-jwt``).

Measures this app's own functions (``keys.encode_access_token`` and
``keys.decode_access_token``) with the signing key already loaded, which is
the steady state of a running process. Prints the median of several rounds,
each round the mean of many calls, and the min-max of the rounds, in
microseconds. Shared machines are noisy: compare medians and ratios, not
single runs.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from token_lifecycle import keys  # noqa: E402

ROUNDS = 15
ISSUER = "https://bench.example/auth"


def per_call_us(function, calls: int) -> list[float]:
    results = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        results.append((time.perf_counter() - start) / calls * 1e6)
    return results


def main() -> None:
    call_command("migrate", verbosity=0)
    now = timezone.now().replace(microsecond=0)
    print(
        f"# one access token, {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; median of {ROUNDS} rounds (min-max)\n"
    )
    print("| algorithm | sign µs | verify µs | token bytes |")
    print("|---|---|---|---|")
    for algorithm in ("RS256", "ES256", "EdDSA"):
        keys.rotate(algorithm, immediately=True)

        def sign():
            return keys.encode_access_token(
                pair_id="01a20639-1abd-7293-91b0-648472b66803",
                subject="42",
                client_id="bench-client",
                issued_at=now,
                expires_at=now + timedelta(days=15),
                issuer=ISSUER,
            )

        token = sign()

        def verify(token=token):
            return keys.decode_access_token(token, issuer=ISSUER, now=now)

        assert verify()["sub"] == "42"
        signs = per_call_us(sign, 200)
        verifies = per_call_us(verify, 500)
        print(
            f"| {algorithm} | {statistics.median(signs):.0f} ({min(signs):.0f}-{max(signs):.0f}) "
            f"| {statistics.median(verifies):.0f} ({min(verifies):.0f}-{max(verifies):.0f}) "
            f"| {len(token)} |"
        )


if __name__ == "__main__":
    main()
