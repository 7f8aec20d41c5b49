"""The command line: build the configuration, call the service or read its files.

Exit status: 0 success, 1 the command's work failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hotfolder import __version__
from hotfolder.config import Config, dump_config, load_config
from hotfolder.errors import ConfigError, HotfolderError, Rejected

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, help="folder holding inbox/ outbox/ … (default: .)")
    parser.add_argument(
        "--config", type=Path, help="configuration file (default: ROOT/config/hotfolder.yaml)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotfolder",
        description="A shared folder that works as an AI image-editing queue.",
    )
    parser.add_argument("--version", action="version", version=f"hotfolder {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run the service on a root folder")
    _common(run)
    run.add_argument("--preset", help="default preset for jobs that name none")
    run.add_argument("--editor", choices=["qwen", "identity"], help="editor to use")
    run.add_argument(
        "--once", action="store_true", help="handle what is in inbox/ now, drain the queue, exit"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log debug messages")

    status = commands.add_parser("status", help="queue summary, or one job (service up or down)")
    _common(status)
    status.add_argument("name", nargs="?", help="job name, e.g. station-3/IMG_0042")
    status.add_argument("--json", action="store_true", help="print JSON")

    check = commands.add_parser("check", help="validate configuration and sidecars")
    _common(check)
    check.add_argument("sidecars", nargs="*", type=Path, metavar="SIDECAR")
    return parser


def _config(args: argparse.Namespace, **overrides: Any) -> Config:
    return load_config(args.config, root=args.root, overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = COMMANDS[args.command]
        return handler(args)
    except ConfigError as e:
        print(f"hotfolder: {e}", file=sys.stderr)
        return EXIT_USAGE
    except HotfolderError as e:
        print(f"hotfolder: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def cmd_run(args: argparse.Namespace) -> int:
    from hotfolder.errors import ServiceLocked
    from hotfolder.service import Service

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = _config(args, default_preset=args.preset, **{"editor.name": args.editor})
    try:
        service = Service(config)
        return service.run(once=args.once)
    except ServiceLocked as e:
        print(f"hotfolder: {e}", file=sys.stderr)
        return EXIT_USAGE


def cmd_status(args: argparse.Namespace) -> int:
    from hotfolder.report import job_report, queue_report

    config = _config(args)
    if args.name:
        data = job_report(config, args.name)
        if data is None:
            print(f"hotfolder: no job named {args.name!r}", file=sys.stderr)
            return EXIT_FAILED
    else:
        data = queue_report(config)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            shown = json.dumps(value) if isinstance(value, list | dict) else value
            print(f"{key}: {shown}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from hotfolder import sidecar

    config = _config(args)
    print(dump_config(config), end="")
    failures = 0
    for path in args.sidecars:
        try:
            layer = sidecar.read_layer(path, max_bytes=config.limits.max_sidecar_bytes)
            if path.name in (sidecar.DEFAULTS_NAME, "_defaults.yml"):
                sidecar.check_layer(layer, source=str(path))
                print(f"ok: {path} (defaults)")
                continue
            spec = sidecar.resolve([(str(path), layer)], config=config)
        except Rejected as e:
            failures += 1
            print(f"{path}: {e.code.value}: {e.message}", file=sys.stderr)
        except OSError as e:
            failures += 1
            print(f"{path}: cannot read: {e.strerror or e}", file=sys.stderr)
        else:
            print(f"ok: {path} (preset {spec.preset}, instruction {spec.instruction!r})")
    return EXIT_FAILED if failures else EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "status": cmd_status,
    "check": cmd_check,
}
