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
from typing import Any, NoReturn

from hotfolder import __version__
from hotfolder.config import Config, dump_config, load_config
from hotfolder.errors import ConfigError, HotfolderError, Reason, Rejected, SetupError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, help="folder holding inbox/ outbox/ … (default: .)")
    parser.add_argument(
        "--config", type=Path, help="configuration file (default: ROOT/config/hotfolder.yaml)"
    )


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr that says what to change, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}; see `{self.prog} --help`\n")


def _add_controls(commands: Any) -> None:
    """`cancel` and `retry`: requests a running service carries out (or the command does)."""
    cancel = commands.add_parser(
        "cancel", help="cancel a queued or running job (also: drop NAME.cancel into inbox/)"
    )
    cancel.add_argument("name", help="job name, e.g. station-3/IMG_0042")
    retry = commands.add_parser(
        "retry",
        help="put failed or cancelled jobs back into the queue, oldest first, as many as fit",
    )
    retry.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="job names (IMG_0042 or IMG_0042.jpg, station-3/IMG_0042) or folders (station-3/)",
    )
    retry.add_argument("--code", choices=[r.value for r in Reason], help="jobs failed with CODE")
    retry.add_argument("--all", action="store_true", help="every failed or cancelled job")
    for control in (cancel, retry):
        _common(control)
        control.add_argument(
            "--wait", type=float, default=30.0, help="seconds to wait for a running service"
        )


def _edit_arguments(edit: argparse.ArgumentParser) -> None:
    """`hotfolder edit IMAGE -i TEXT [--ref A --ref B]`: one image now, without the service."""
    edit.add_argument("image", type=Path)
    edit.add_argument("-i", "--instruction", required=True, help='e.g. "Make the sky blue"')
    edit.add_argument("--seed", type=int)
    edit.add_argument("--preset")
    edit.add_argument("-o", "--output", type=Path, help="result file (default: NAME-edited.png)")
    edit.add_argument("--config", type=Path, help="configuration file")
    edit.add_argument("--editor", choices=["qwen", "identity"], help="editor to use")
    edit.add_argument(
        "--ref",
        type=Path,
        action="append",
        default=[],
        metavar="IMAGE",
        help="a reference image for edit-plus (up to two: --ref A --ref B)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hotfolder",
        description="A shared folder that works as an AI image-editing queue.",
    )
    parser.add_argument("--version", action="version", version=f"hotfolder {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    run = commands.add_parser("run", help="run the service on a root folder")
    _common(run)
    run.add_argument("--preset", help="default preset for jobs that name none")
    run.add_argument("--editor", choices=["qwen", "identity"], help="editor to use")
    run.add_argument(
        "--once", action="store_true", help="handle what is in inbox/ now, drain the queue, exit"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    run.add_argument(
        "--init",
        action="store_true",
        help="create the root if it does not exist, or set up a tree in a folder holding other files",
    )

    status = commands.add_parser("status", help="queue summary, or one job (service up or down)")
    _common(status)
    status.add_argument("name", nargs="?", help="job name, e.g. station-3/IMG_0042")
    status.add_argument(
        "--json", action="store_true", help="print JSON (the queue report, or the job's status)"
    )

    _add_controls(commands)
    for action, text in (
        ("pause", "stop taking new jobs (the job in flight finishes); intake goes on"),
        ("resume", "take jobs again"),
    ):
        _common(commands.add_parser(action, help=text))

    history = commands.add_parser("history", help="every job's record, also after retention")
    _common(history)
    history.add_argument("--since", help="ISO date/time (UTC) or an age like 30m, 2h, 7d")
    history.add_argument(
        "--status", choices=["queued", "processing", "completed", "failed", "cancelled"]
    )
    history.add_argument("--name", help="a job name, or a folder like station-3/")
    history.add_argument("--limit", type=int, help="at most this many rows")
    history.add_argument("--json", action="store_true", help="print JSON records")

    _edit_arguments(commands.add_parser("edit", help="edit one image now, with a progress bar"))

    selftest = commands.add_parser(
        "selftest", help="build a tiny random Qwen pipeline and run it through the real service"
    )
    selftest.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")

    check = commands.add_parser("check", help="validate configuration and sidecars")
    _common(check)
    check.add_argument("sidecars", nargs="*", type=Path, metavar="SIDECAR")
    return parser


def _config(args: argparse.Namespace, **overrides: Any) -> Config:
    return load_config(args.config, root=args.root, overrides=overrides)


def _tree(args: argparse.Namespace) -> Config:
    """The configuration of a command that works on an existing hotfolder tree (not `run`)."""
    from hotfolder.roots import require_tree

    config = _config(args)
    require_tree(config.root_path)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = COMMANDS[args.command]
        return handler(args)
    except (ConfigError, SetupError) as e:
        # The same cause gives the same status in every command: 2 for what must be set up.
        print(f"hotfolder: {e}", file=sys.stderr)
        return EXIT_USAGE
    except HotfolderError as e:
        print(f"hotfolder: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `hotfolder status | head`: the reader went away; that is not an error.
        sys.stderr.close()
        return EXIT_OK


def _stop_early(signum: int, _frame: object) -> None:
    # A stop before the service has set up its own handlers: nothing has started, leave now.
    raise SystemExit(EXIT_OK)


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    # Imports and start-up take a moment; a SIGTERM then is still a clean stop, not a kill.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_early)
    from hotfolder.roots import prepare
    from hotfolder.service import Service

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = _config(args, **{"editor.name": args.editor})
    if args.preset is not None:
        # Checked here, so a typo is blamed on the flag and not on the config file.
        _check_preset(config, args.preset)
        config = _config(args, default_preset=args.preset, **{"editor.name": args.editor})
    from hotfolder.config import config_file

    read = config_file(args.config, args.root)
    prepare(config.root_path, init=args.init, config_file=read)
    try:
        return Service(config, config_file=read).run(once=args.once)
    finally:
        # Stopped: a signal now (the second of two sent together) changes nothing, and must
        # not kill the interpreter while it exits (status -15 instead of 0; a chaos test).
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def _check_preset(config: Config, name: str) -> None:
    if name not in config.presets:
        known = ", ".join(sorted(config.presets))
        raise ConfigError(f"--preset {name!r} is not a configured preset; use one of: {known}")


def cmd_status(args: argparse.Namespace) -> int:
    from hotfolder.report import job_report, queue_report
    from hotfolder.table import job_block, queue_table

    config = _tree(args)
    if args.name:
        found = job_report(config, args.name) if args.json else job_block(config, args.name)
        if found is None:
            print(f"hotfolder: no job named {args.name!r}", file=sys.stderr)
            return EXIT_FAILED
        text = json.dumps(found, indent=2, ensure_ascii=False) if args.json else str(found)
    elif args.json:
        text = json.dumps(queue_report(config), indent=2, ensure_ascii=False)
    else:
        text = queue_table(config)
    print(text)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from hotfolder import sidecar

    config = _tree(args) if args.root is not None else _config(args)
    print(dump_config(config), end="")
    failures = 0
    for path in args.sidecars:
        try:
            layer = sidecar.read_layer(path, max_bytes=config.limits.max_sidecar_bytes)
            if path.name in (sidecar.DEFAULTS_NAME, "_defaults.yml"):
                sidecar.check_layer(layer, source=str(path))
                print(f"ok: {path} (defaults)")
                continue
            layers = _defaults_for(config, path)
            spec = sidecar.resolve([*layers, (str(path), layer)], config=config)
            _check_references(config, path, spec.images)
        except Rejected as e:
            failures += 1
            print(f"{path}: {e.code.value}: {e.message}", file=sys.stderr)
        except OSError as e:
            failures += 1
            print(f"{path}: cannot read: {e.strerror or e}", file=sys.stderr)
        else:
            print(f"ok: {path} (preset {spec.preset}, instruction {spec.instruction!r})")
    return EXIT_FAILED if failures else EXIT_OK


def _top(config: Config, path: Path) -> tuple[Path, Path]:
    """A sidecar's place, and the folder up to which `_defaults.yaml` files and assets apply
    to it: inbox/ when it is in this root's inbox/, else its own folder."""
    from hotfolder.layout import Layout

    place = path.resolve()
    inbox = Layout(config.root_path).inbox.resolve()
    return place, inbox if inbox in place.parents else place.parent


def _defaults_for(config: Config, path: Path) -> list[Any]:
    """The `_defaults.yaml` layers a drop beside `path` would take, as admission finds them
    (SPEC: the instruction is required "here or in _defaults.yaml")."""
    from hotfolder.defaults import FolderDefaults

    place, top = _top(config, path)
    layers = FolderDefaults(top, max_bytes=config.limits.max_sidecar_bytes).layers(place)
    if isinstance(layers, Rejected):
        raise layers
    return list(layers)


def _check_references(config: Config, path: Path, names: list[str]) -> None:
    """Find and check the assets `images:` names, as admission would for a drop beside
    `path`: from its folder up to inbox/ when it is in this root's inbox/, else its folder."""
    if not names:
        return
    from hotfolder import assets

    place, top = _top(config, path)
    assets.take(names, place, top, limits=config.limits, source=str(path))


def _control(args: argparse.Namespace) -> int:
    from hotfolder import control
    from hotfolder.editors.identity import IdentityEditor
    from hotfolder.errors import ServiceLocked
    from hotfolder.layout import Layout
    from hotfolder.report import service_state
    from hotfolder.service import Service, root_lock

    request = _control_request(args)
    config = _tree(args)
    layout = Layout(config.root_path)
    if not service_state(layout).startswith("running"):
        # What the service would log ("cancelled b: …") is said by the line printed below;
        # only errors also go to stderr.
        errors = logging.StreamHandler()
        errors.setLevel(logging.ERROR)
        errors.setFormatter(logging.Formatter("hotfolder: %(message)s"))
        logging.getLogger("hotfolder").addHandler(errors)
        try:
            with root_lock(layout):
                # No service: do it here, under the same lock a service would hold.
                service = Service(config, editor=IdentityEditor())
                service.load_stopped()
                ok, message = service.controls.handlers[args.command](request)
                service.publisher.publish(final=True)  # queue.json and the page, as stopped
                service.history.close()
        except ServiceLocked:
            pass  # a service started meanwhile: ask it
        else:
            print(message, file=sys.stdout if ok else sys.stderr)
            return EXIT_OK if ok else EXIT_FAILED
    request_id = control.submit(layout, request)
    result = control.wait_result(layout, request_id, args.wait)
    if result is None:
        print(
            f"hotfolder: the service did not answer within {args.wait:g} s; "
            "the request stays queued in .hotfolder/requests/",
            file=sys.stderr,
        )
        return EXIT_FAILED
    ok = bool(result.get("ok"))
    print(result.get("message", ""), file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


def _control_request(args: argparse.Namespace) -> dict[str, Any]:
    from hotfolder.control import make_request

    if args.command == "cancel":
        return make_request("cancel", args.name)
    from hotfolder.retries import Selection

    if not (args.names or args.code or args.all):
        raise ConfigError("retry: give NAME..., FOLDER/, --code CODE or --all")
    if args.all and args.names:
        raise ConfigError("retry: --all already means every job; drop the names, or drop --all")
    selection = Selection(targets=tuple(args.names), code=args.code, every=args.all)
    return make_request("retry", selection.describe(), selection=selection.to_json())


def _pause(args: argparse.Namespace) -> int:
    from hotfolder import fsops
    from hotfolder.layout import Layout

    layout = Layout(_tree(args).root_path)
    flag = layout.pause_flag
    if args.command == "pause":
        fsops.write_atomic(flag, b"paused by hotfolder pause\n")
        print("paused: the job in flight finishes, no new job starts; `hotfolder resume` to go on")
    else:
        fsops.remove(flag)
        print("resumed")
    return EXIT_OK


def _parse_since(text: str) -> str:
    import re
    import time as _time

    from hotfolder.status import iso, parse_iso

    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match:
        seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return iso(_time.time() - seconds) or ""
    stamp = parse_iso(text if "T" in text or ":" in text else text + "T00:00:00+00:00")
    if stamp is None:
        raise ConfigError(f"--since {text!r}: use an ISO date like 2026-11-29 or an age like 2h")
    return iso(stamp) or ""


def cmd_history(args: argparse.Namespace) -> int:
    from hotfolder.history import History
    from hotfolder.layout import Layout

    layout = Layout(_tree(args).root_path)
    path = layout.private / "history.db"
    if not path.exists():
        rows: list[dict[str, Any]] = []
    else:
        history = History(path)
        try:
            rows = history.query(
                since=_parse_since(args.since) if args.since else None,
                status=args.status,
                name=args.name.strip("/") if args.name else None,
                limit=args.limit,
            )
        finally:
            history.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for row in rows:
        error = f"  {row['error_code']}: {row['error']}" if row.get("error_code") else ""
        print(
            f"{row.get('created_at') or '-':24}  {row['status']:10}  {row['name']}"
            f"  preset={row.get('model')} seed={row.get('result_seed')}"
            f" attempts={row.get('attempts')}{error}"
        )
    return EXIT_OK


def cmd_edit(args: argparse.Namespace) -> int:
    from hotfolder.oneshot import edit_one

    config = load_config(args.config, overrides={"editor.name": args.editor})
    if args.preset is not None:
        _check_preset(config, args.preset)
    if not args.image.is_file():
        raise ConfigError(f"{args.image} is not a file; pass the image to edit")
    result = edit_one(
        config,
        args.image,
        args.instruction,
        seed=args.seed,
        preset=args.preset,
        out=args.output,
        references=args.ref,
    )
    print(result)
    return EXIT_OK


def cmd_selftest(args: argparse.Namespace) -> int:
    import re

    from hotfolder.selftest import run_selftest

    if not re.fullmatch(r"cpu|cuda(:\d+)?", args.device):
        raise ConfigError(f"--device {args.device!r}: use cpu, cuda or cuda:N")
    return EXIT_OK if run_selftest(args.device, sys.stdout) else EXIT_FAILED


COMMANDS = {
    "edit": cmd_edit,
    "selftest": cmd_selftest,
    "run": cmd_run,
    "status": cmd_status,
    "check": cmd_check,
    "cancel": _control,
    "retry": _control,
    "pause": _pause,
    "resume": _pause,
    "history": cmd_history,
}
