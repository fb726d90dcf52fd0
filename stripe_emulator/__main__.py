"""`python -m stripe_emulator` / `seatsvc-stripe-emulator`: serve the emulator."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from stripe_emulator.emulator import StripeEmulator
from stripe_emulator.persist import persist


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="seatsvc-stripe-emulator",
        description="Stateful Stripe API emulator for the official stripe SDK.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=12111, help="port (default 12111)")
    parser.add_argument(
        "--secret-key",
        "--api-key",
        dest="api_key",
        default=None,
        help="accept only this key (default: any sk_test_/rk_test_ key)",
    )
    parser.add_argument("--frozen-clock", action="store_true", help="start with a frozen clock")
    parser.add_argument(
        "--webhook-url", help="register a webhook endpoint for every event at startup"
    )
    parser.add_argument(
        "--webhook-secret", help="its signing secret (whsec_...); generated when omitted"
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="keep objects across restarts in this JSON file (default: memory only)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    emulator = StripeEmulator(api_key=args.api_key)
    saver = persist(emulator, args.state_file) if args.state_file else None
    # `kill` ends the server like Ctrl-C does: through `finally`, so the state is saved.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.frozen_clock:
        emulator.freeze_clock(True)
    print(
        f"stripe emulator on http://{args.host}:{args.port} (control API: /_emulator/)", flush=True
    )
    if args.webhook_url:
        endpoint = emulator.add_webhook_endpoint(args.webhook_url, args.webhook_secret)
        print(f"webhooks -> {endpoint['url']} signed with {endpoint['secret']}", flush=True)
    try:
        emulator.serve_forever(args.host, args.port)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.dispatcher.stop()
        if saver is not None:
            saver.stop()


if __name__ == "__main__":
    main()
