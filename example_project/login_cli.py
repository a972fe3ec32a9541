"""Log in to the demo API from the command line through the browser, like ``gh auth login``.

Start the demo server (``make demo``), create a public client allowed the code
flow with a loopback redirect URI (any port matches)::

    .venv/bin/python manage.py create_client "Command-line app" --owner demo --public \\
        --grant authorization_code --redirect-uri http://127.0.0.1/callback --json

then, with the ``client_id`` it prints::

    .venv/bin/python -m example_project.login_cli --server http://127.0.0.1:8000 --client-id ID
    .venv/bin/python -m example_project.login_cli ... --logout   # revoke the stored pair

The first run opens your browser on the server's login and consent pages
(``--no-browser`` prints the URL instead, for a machine without one), receives
the redirect on ``127.0.0.1``, stores the pair in a file store, and calls
``/api/whoami/``. Later runs reuse the stored pair, refreshed when due, and
open the browser again only when it can no longer be renewed.

Only httpx and ``token_lifecycle.client`` are needed: no Django.
"""

from __future__ import annotations

import argparse
import os
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path

import httpx

from token_lifecycle.client import (
    AuthorizationFailed,
    FileTokenStore,
    LoopbackLogin,
    ReauthenticationRequired,
    TokenAuth,
    discover,
)


def default_store() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "token-lifecycle-demo" / "tokens"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8000", help="the API's base URL")
    parser.add_argument("--issuer", help="the issuer (default: SERVER/auth)")
    parser.add_argument("--client-id", required=True, help="a public client's client_id")
    parser.add_argument("--scope", help="scopes to ask for, space-separated")
    parser.add_argument("--store", type=Path, default=default_store(), help="token directory")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to log in")
    parser.add_argument("--no-browser", action="store_true", help="print the URL instead")
    parser.add_argument("--logout", action="store_true", help="revoke the stored pair")
    return parser.parse_args(argv)


def make_auth(args: argparse.Namespace, opener: Callable[[str], bool]) -> TokenAuth:
    server = discover(args.issuer or f"{args.server.rstrip('/')}/auth")
    grant = LoopbackLogin.from_metadata(
        server,
        scope=args.scope,
        timeout=args.timeout,
        opener=(lambda url: False) if args.no_browser else opener,
    )
    return TokenAuth(
        server.token_endpoint,
        args.client_id,
        grant=grant,
        store=FileTokenStore(args.store),
        revocation_url=server.revocation_endpoint,
        # Another run of this command waits for the login in progress instead of
        # opening a second browser window.
        lock_timeout=args.timeout + 10,
    )


def main(argv: list[str] | None = None, *, opener: Callable[[str], bool] = webbrowser.open) -> int:
    args = parse_args(argv)
    auth = make_auth(args, opener)
    try:
        if args.logout:
            auth.revoke()
            print("Logged out: the pair is revoked and removed from", args.store)
            return 0
        with httpx.Client(base_url=args.server, auth=auth, timeout=10) as api:
            whoami = api.get("/api/whoami/").raise_for_status().json()
        print(f"Logged in to {args.server} as {whoami['username']} (pair {whoami['pair_id']}).")
        print(f"The pair is stored in {args.store}; run again and no login happens.")
        return 0
    except AuthorizationFailed as failure:
        print(f"Login failed: {failure.error}: {failure.description}", file=sys.stderr)
        return 1
    except ReauthenticationRequired as failure:
        print(f"Log in again: {failure.error}: {failure.description}", file=sys.stderr)
        return 1
    finally:
        auth.close()


if __name__ == "__main__":
    sys.exit(main())
