"""The ``xprospect`` command line: dispatches to the workflow modules.

User errors (:class:`xprospect_tf.errors.XprospectError`) are printed as one
clear message without a traceback, with exit status 2. Ctrl-C exits with 130.
"""

import argparse
import importlib
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads (importing xprospect_tf loads it)

from xprospect_tf.errors import XprospectError  # noqa: E402

# Workflow modules, in the order their commands appear in --help.
WORKFLOWS = ("data", "train", "table1", "style", "export", "predict", "bench")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="xprospect",
        description="CT volume generation from paired chest X-rays (XprospeCT, Paulson et al. 2024).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in WORKFLOWS:
        try:
            module = importlib.import_module(f"pipelines.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"pipelines.{name}":
                continue  # workflow not built yet
            raise
        module.register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("absl").setLevel(logging.ERROR)  # TensorFlow's Python-side chatter
    try:
        status = args.func(args)
    except XprospectError as e:
        print(f"xprospect: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xprospect: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
