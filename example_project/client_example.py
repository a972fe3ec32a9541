"""Call the demo API the way a client service should: with ``token_lifecycle.client``.

Start the demo server (``make demo``), copy the client id and secret it prints, then:

    CLIENT_ID=... CLIENT_SECRET=... .venv/bin/python example_project/client_example.py
    .venv/bin/python example_project/client_example.py CLIENT_ID CLIENT_SECRET
    .venv/bin/python example_project/client_example.py --username demo   # password grant,
                                                                         # asks the password
    .venv/bin/python example_project/client_example.py --store /tmp/demo-tokens  # run it twice

What it shows, with the client's log lines (``token_lifecycle.client``):

1. The first request logs in; the next one reuses the pair.
2. ``POST /auth/logout/`` revokes the pair on the server. The next request gets
   401 ``invalid_token``: the auth object renews (the refresh token died with
   the pair, so it logs in again, once) and retries; the caller sees a 200.
3. With ``--store DIR`` the pair is kept in a file store: run the script
   twice, and the second process starts with the first one's pair (no login).

Only httpx and ``token_lifecycle.client`` are needed: no Django.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys

import httpx

from token_lifecycle.client import (
    ClientCredentials,
    FileTokenStore,
    MemoryTokenStore,
    PasswordGrant,
    ReauthenticationRequired,
    TokenAuth,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("client_id", nargs="?", default=os.environ.get("CLIENT_ID"))
    parser.add_argument("client_secret", nargs="?", default=os.environ.get("CLIENT_SECRET"))
    parser.add_argument("--base-url", default=os.environ.get("BASE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--username", help="log in as this user (password grant)")
    parser.add_argument("--password", help="the user's password (default: asked when needed)")
    parser.add_argument("--store", metavar="DIR", help="keep the pair in a file store in DIR")
    args = parser.parse_args(argv)
    if not args.client_id:
        parser.error("give CLIENT_ID and CLIENT_SECRET (arguments or environment)")
    return args


def make_auth(args: argparse.Namespace) -> TokenAuth:
    if args.username:
        # A callback: asked at each login only, so the password is not kept around.
        def password() -> str:
            return args.password or getpass.getpass(f"Password for {args.username}: ")

        grant = PasswordGrant(args.username, password)
    else:
        grant = ClientCredentials()
    return TokenAuth(
        f"{args.base_url}/auth/token/",
        args.client_id,
        args.client_secret,
        grant=grant,
        store=FileTokenStore(args.store) if args.store else MemoryTokenStore(),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="   [%(name)s] %(message)s", stream=sys.stdout
    )
    logging.getLogger("token_lifecycle.client").setLevel(logging.INFO)
    auth = make_auth(args)
    try:
        with httpx.Client(base_url=args.base_url, auth=auth, timeout=10) as api:
            print("1. Two requests, one pair:")
            first = api.get("/api/whoami/").raise_for_status().json()
            second = api.get("/api/whoami/").raise_for_status().json()
            print(f"   {first}")
            print(f"   same pair both times: {first['pair_id'] == second['pair_id']}")

            print("2. Log out (the pair is revoked on the server), then call again:")
            print(f"   logout: {api.post('/auth/logout/').raise_for_status().json()}")
            after = api.get("/api/whoami/").raise_for_status().json()
            print(f"   {after}")
            print(f"   a new pair: {after['pair_id'] != first['pair_id']}")
    except ReauthenticationRequired as error:
        print(f"Log in again: {error.error}: {error.description}", file=sys.stderr)
        return 1
    finally:
        auth.close()
    if args.store:
        print(f"3. The pair is kept in {args.store}: run again, and no login happens.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
