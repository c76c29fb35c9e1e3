"""The `embedrt` command line."""
from __future__ import annotations

import argparse
import json
import sys


def _cmd_info(args) -> int:
    import embedrt

    info = embedrt.cpu_info()
    info["version"] = embedrt.__version__
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            if isinstance(value, list):
                value = " ".join(value)
            print(f"{key:14s} {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedrt",
        description="embedrt: on-device embedding runtime (SIMD kernels, indexes, CPU text encoder).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="show the CPU features, the ISA level in use and threads")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, OSError) as e:
        print(f"embedrt {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
