"""Command line: `python -m emulator serve ...` runs the emulator; `python -m emulator ring ...` rings an app."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from aiohttp import web

from emulator.config import EmulatorConfig, env_defaults
from emulator.control_client import ControlAPIError, http_json
from emulator.server import create_app

log = logging.getLogger("emulator")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return ring(args)


def _parser() -> argparse.ArgumentParser:
    env = env_defaults()
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser(
        "serve", help="run the ACS Call Automation emulator", epilog="Each option also reads ACS_EMULATOR_<OPTION>."
    )
    serve_parser.add_argument("--host", default=env.get("host", defaults.host))
    serve_parser.add_argument("--port", type=int, default=int(env.get("port", defaults.port)))
    serve_parser.add_argument("--access-key", default=env.get("access_key", defaults.access_key), help="base64 key")
    serve_parser.add_argument(
        "--resource-id", default=env.get("resource_id", defaults.resource_id), help="immutable resource id: JWT aud"
    )
    serve_parser.add_argument("--issuer", default=env.get("issuer", defaults.issuer))
    serve_parser.add_argument("--script-dir", type=Path, default=Path(env.get("script_dir", defaults.script_dir)))
    serve_parser.add_argument("--default-script", default=env.get("default_script", defaults.default_script))
    serve_parser.add_argument(
        "--private-key-path", type=Path, default=env.get("private_key_path"), help="RSA PEM (default: a fresh key)"
    )
    serve_parser.add_argument(
        "--connect-delay",
        type=float,
        default=float(env.get("connect_delay", defaults.connect_delay)),
        help="seconds from create_call to CallConnected",
    )
    serve_parser.add_argument("--log-level", default=env.get("log_level", "INFO"))

    ring_parser = commands.add_parser("ring", help="make a running emulator ring the app (Event Grid IncomingCall)")
    ring_parser.add_argument("--app-url", required=True, help="the app's incoming-call webhook URL")
    ring_parser.add_argument("--script", default=None, help="script to play once answered (default: the server's)")
    ring_parser.add_argument("--emulator-url", default=env.get("url", f"http://127.0.0.1:{defaults.port}"))
    ring_parser.add_argument("--no-validate", action="store_true", help="skip the SubscriptionValidation handshake")
    return parser


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        access_key=args.access_key,
        resource_id=args.resource_id,
        issuer=args.issuer,
        script_dir=args.script_dir,
        default_script=args.default_script,
        private_key_path=args.private_key_path,
        connect_delay=args.connect_delay,
    )
    if not (config.script_dir / f"{config.default_script}.json").is_file():
        print(f"no script {config.default_script!r} in {config.script_dir}", file=sys.stderr)
        return 2
    print(f"ACS emulator listening on {config.base_url}", flush=True)
    print(f"Connection string: {config.connection_string}", flush=True)
    print(f"Resource id (JWT audience): {config.resource_id}", flush=True)
    # run_app turns SIGINT and SIGTERM into a graceful shutdown: calls end, callbacks drain.
    web.run_app(create_app(config), host=config.host, port=config.port, print=None, shutdown_timeout=5)
    return 0


def ring(args: argparse.Namespace) -> int:
    body = {"incoming_call_url": args.app_url, "script": args.script, "validate": not args.no_validate}
    try:
        result = http_json("POST", args.emulator_url.rstrip("/") + "/emulator/ring", body, timeout=60)
    except ControlAPIError as error:
        print(error.body, file=sys.stderr)
        return 1
    except OSError as error:
        print(f"cannot reach the emulator at {args.emulator_url}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
