"""``manage.py purge_expired_tokens [--dry-run] [--batch-size N] [--older-than DAYS]``.

Meant for cron. The work is :func:`token_lifecycle.purge.purge`; this module
parses arguments, turns failures into a non-zero exit with a message
(``CommandError``) and prints one summary line.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from token_lifecycle import purge
from token_lifecycle.conf import lifecycle_settings


def parse_batch_size(value: str) -> int:
    """``--batch-size``: a whole number from 1 to ``purge.MAX_BATCH_SIZE``."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= number <= purge.MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {purge.MAX_BATCH_SIZE:,}; larger batches make long transactions"
        )
    return number


def parse_days(value: str) -> int:
    """``--older-than``: a whole number of days, 0 or more."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more days")
    # timedelta's own limit, so that a huge value is an argument error, not a crash.
    if number > timedelta.max.days:
        raise argparse.ArgumentTypeError(f"must be at most {timedelta.max.days:,} days")
    return number


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 pair``, ``2 pairs``, ``1,000 batches``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {nouns or noun + 's'}"


def describe_duration(duration: timedelta) -> str:
    """``7 days``, ``1 day``, ``12:00:00``: how the retention reads in the output."""
    if duration % timedelta(days=1) == timedelta(0):
        return plural(duration.days, "day")
    return str(duration)


def summary(report: purge.PurgeReport) -> str:
    """The one line an operator reads in the cron log."""
    pairs = plural(report.pairs, "pair")
    batches = plural(report.batches, "batch", "batches")
    keys = plural(report.signing_keys, "signing key")
    codes = plural(report.authorization_codes, "authorization code")
    live = f"{plural(report.live_pairs, 'live pair')} untouched"
    if report.dry_run:
        return f"Would delete {pairs} in {batches}, {keys} and {codes}; {live}."
    timing = f"{report.seconds:.1f} s"
    if report.pairs_per_second is not None and report.pairs:
        timing += f", {report.pairs_per_second:,.0f} rows/s"
    line = f"Deleted {pairs} in {batches} ({timing}), {keys} and {codes}; {live}"
    if report.pairs_left_locked:
        line += (
            f"; {plural(report.pairs_left_locked, 'pair')} in use by other transactions "
            "left for the next run"
        )
    return line + "."


class Command(BaseCommand):
    help = (
        "Delete token pairs, signing keys and authorization codes that have been dead for "
        "longer than the retention (PURGE_RETENTION, or --older-than). A pair is dead once "
        "revoked, or once both of its tokens have expired; live pairs are never touched. "
        "A code is dead once expired. Deletes in "
        "batches, each its own short transaction, skipping rows other transactions hold, "
        "so it is safe to run while clients refresh."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be deleted; delete nothing.",
        )
        parser.add_argument(
            "--batch-size",
            type=parse_batch_size,
            default=purge.DEFAULT_BATCH_SIZE,
            metavar="N",
            help=f"Rows per transaction (default {purge.DEFAULT_BATCH_SIZE:,}).",
        )
        parser.add_argument(
            "--older-than",
            type=parse_days,
            metavar="DAYS",
            help="Retention in days, overriding the PURGE_RETENTION setting (7 days unless "
            "configured): delete what has been dead for longer than this.",
        )

    def handle(self, *args, dry_run: bool, batch_size: int, older_than: int | None, **options):
        # Values passed to call_command() as Python objects skip the parser's type check.
        batch_size = _checked(batch_size, "--batch-size", parse_batch_size)
        if older_than is not None:
            older_than = _checked(older_than, "--older-than", parse_days)
        retention = (
            lifecycle_settings().purge_retention
            if older_than is None
            else timedelta(days=older_than)
        )
        verbosity = options["verbosity"]
        if verbosity >= 1:
            self.stdout.write(
                f"{'Counting' if dry_run else 'Purging'} pairs, signing keys and authorization "
                "codes dead for "
                f"more than {describe_duration(retention)}."
            )

        def on_batch(number: int, rows: int) -> None:
            if verbosity >= 2:
                self.stdout.write(f"  batch {number:,}: {plural(rows, 'pair')} deleted")

        try:
            report = purge.purge(
                retention=retention, batch_size=batch_size, dry_run=dry_run, on_batch=on_batch
            )
        except purge.PurgeFailed as failure:
            raise CommandError(failure_message(failure)) from failure
        if verbosity >= 1:
            self.stdout.write(summary(report))


def failure_message(failure: purge.PurgeFailed) -> str:
    done = failure.progress
    if done.batches:
        progress = (
            f"after deleting {plural(done.pairs, 'pair')} in "
            f"{plural(done.batches, 'batch', 'batches')} (those stay deleted; run again to "
            "continue)"
        )
    else:
        progress = "before deleting anything"
    return f"Purge failed {progress}. Database error: {failure}"


def _checked(value, option: str, parse) -> int:
    """Run an option given to ``call_command()`` through the parser's check."""
    try:
        return parse(str(value))
    except argparse.ArgumentTypeError as error:
        raise CommandError(f"Error: argument {option}: {error}") from None
