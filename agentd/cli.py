"""The `agentd` command line: run, check-config, check-cloud, devices, test-hardware, demo, bench.

Exit codes follow sysexits: 0 ok, 78 (EX_CONFIG) for any configuration error (the unit's
RestartPreventExitStatus=78 stops systemd from restart-looping on a bad config), 1 for a
runtime failure. Heavy modules are imported inside each command so `agentd version`
and the start of `agentd run` stay fast on a Pi.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agentd import __version__
from agentd.errors import AgentdError, ConfigError

if TYPE_CHECKING:
    from agentd.service.composition import DeviceBackend

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_CONFIG = 78


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EX_USAGE
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"agentd: configuration error: {_redacted(str(exc))}", file=sys.stderr)
        return EX_CONFIG
    except AgentdError as exc:
        print(f"agentd: error ({exc.error_kind}): {_redacted(str(exc))}", file=sys.stderr)
        return EX_FAILURE
    except KeyboardInterrupt:
        return EX_FAILURE


def _redacted(message: str) -> str:
    """Error messages echo bad values; an operator may have pasted a key into one."""
    from agentd.logs import Redactor
    from agentd.secrets import Secrets

    try:
        secrets = Secrets.load().known_values()
    except AgentdError:
        secrets = []
    return str(Redactor(secrets)(message))


def _parser() -> argparse.ArgumentParser:
    from agentd.config import DEFAULT_PATH

    parser = argparse.ArgumentParser(prog="agentd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (what systemd starts)")
    run.add_argument("--config", default=DEFAULT_PATH, help=f"config file (default {DEFAULT_PATH})")
    run.set_defaults(handler=_cmd_run)

    check = sub.add_parser("check-config", help="validate a config, print it with secrets redacted")
    check.add_argument("path", nargs="?", default=DEFAULT_PATH)
    check.add_argument("--json", action="store_true", help="print JSON instead of TOML-ish text")
    check.set_defaults(handler=_cmd_check_config)

    cloud = sub.add_parser(
        "check-cloud", help="test the configured STT, LLM and TTS services once, with latencies"
    )
    cloud.add_argument("--config", default=DEFAULT_PATH)
    cloud.add_argument(
        "--only", default="stt,llm,tts", help="comma-separated subset of stt,llm,tts"
    )
    cloud.set_defaults(handler=_cmd_check_cloud)

    devices = sub.add_parser("devices", help="list ALSA cards/PCMs and GPIO availability")
    devices.set_defaults(handler=_cmd_devices)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(handler=lambda _a: _print(f"agentd {__version__}"))

    hw = sub.add_parser("test-hardware", help="installer check: tone, 2 s recording, LEDs, buttons")
    hw.add_argument("--config", default=DEFAULT_PATH)
    hw.add_argument("--button-timeout", type=float, default=10.0)
    hw.add_argument(
        "--voice-s",
        type=float,
        default=5.0,
        help="after the sweep, ask for a sentence at the kiosk and record it this long to "
        "calibrate engagement.near_field (0 = skip)",
    )
    hw.add_argument(
        "--visitor-level-dbfs",
        type=float,
        default=None,
        help="calibrate from this visitor level (dBFS, loud syllables at 1 m) instead",
    )
    hw.set_defaults(handler=_cmd_test_hardware)

    demo = sub.add_parser("demo", help="offline demo conversation against the local emulators")
    demo.add_argument("--scenario", default="", help="scenario TOML (default: front desk)")
    demo.add_argument("--out", default="out/demo", help="directory for the WAV and report")
    demo.set_defaults(handler=_cmd_demo)

    emu = sub.add_parser("emulators", help="run the AssemblyAI/OpenAI/ElevenLabs emulators")
    emu.add_argument("--scenario", default="")
    emu.add_argument("--host", default="127.0.0.1")
    emu.set_defaults(handler=_cmd_emulators)

    bench = sub.add_parser(
        "bench",
        help="benchmarks: latency, audio, soak, engagement, engagement_array, turns, turn_model",
    )
    bench.add_argument(
        "kind",
        choices=(
            "latency",
            "audio",
            "soak",
            "engagement",
            "engagement_array",
            "turns",
            "turn_model",
        ),
    )
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    bench.set_defaults(handler=_cmd_bench)
    return parser


def _print(text: str) -> int:
    print(text)
    return EX_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from agentd.service.composition import BUILTIN_BACKENDS
    from agentd.service.lifecycle import run_daemon

    # The CLI, not the daemon, offers the simulator's devices: loaded only when a config
    # says `backend = "sim"` (the offline demo, end-to-end tests), never otherwise.
    return run_daemon(args.config, {**BUILTIN_BACKENDS, "sim": _sim_backend})


def _sim_backend() -> DeviceBackend:
    from agentd.sim.devices import sim_backend

    return sim_backend()


def _cmd_check_config(args: argparse.Namespace) -> int:
    from agentd.config import load_config, to_dict
    from agentd.secrets import Secrets

    config = load_config(args.path)
    secrets = Secrets.load()
    effective: dict[str, Any] = to_dict(config)
    effective["secrets"] = secrets.summary()
    if args.json:
        print(json.dumps(effective, indent=2, sort_keys=True))
    else:
        print(f"# {args.path}: OK")
        _print_tree(effective, "")
    return EX_OK


def _cmd_check_cloud(args: argparse.Namespace) -> int:
    from agentd.checkcloud import SERVICES, run_check_cloud

    services = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(services) - set(SERVICES))
    if unknown or not services:
        print(f"agentd: --only takes {','.join(SERVICES)}, got {args.only!r}", file=sys.stderr)
        return EX_USAGE
    return run_check_cloud(args.config, services)


def _print_tree(data: dict[str, Any], path: str) -> None:
    """TOML-like listing: scalars of this table, then each sub-table under its header."""
    for key, value in data.items():
        if not isinstance(value, dict) and key != "include":
            print(f"{key} = {json.dumps(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            sub_path = f"{path}.{key}" if path else key
            print(f"\n[{sub_path}]")
            _print_tree(value, sub_path)


def _cmd_devices(_args: argparse.Namespace) -> int:
    import dataclasses

    from agentd.audio.devices import list_devices

    report: dict[str, Any] = {"alsa": dataclasses.asdict(list_devices())}
    try:
        from agentd.gpio.diagnostics import describe_gpio

        report["gpio"] = describe_gpio()
    except ImportError as exc:  # GPIO support is optional on a dev machine
        report["gpio"] = {"error": str(exc)}
    print(json.dumps(report, indent=2, default=str))
    return EX_OK


def _cmd_test_hardware(args: argparse.Namespace) -> int:
    from agentd.config import load_config
    from agentd.gpio.diagnostics import test_hardware

    config = load_config(args.config)
    result = test_hardware(
        config,
        sys.stdout,
        button_timeout_s=args.button_timeout,
        voice_s=args.voice_s,
        visitor_level_dbfs=args.visitor_level_dbfs,
    )
    return int(result)


def _cmd_demo(args: argparse.Namespace) -> int:
    from agentd.demo import run_demo

    return run_demo(scenario_path=args.scenario, out_dir=args.out)


def _cmd_emulators(args: argparse.Namespace) -> int:
    from agentd.sim.stack import serve_forever

    return int(serve_forever(scenario_path=args.scenario, host=args.host))


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"agentd.bench.{args.kind}")
    rest = [a for a in args.rest if a != "--"]
    return int(module.main(rest))
