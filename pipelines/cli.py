"""The ``xprospect`` command line: dispatches to the workflow modules.

Exit status: 0 done; 1 done, but some inputs failed (listed); 2 a user error
(:class:`xprospect_tf.errors.XprospectError`: one clear line naming the file or
setting, no traceback); 3 an unexpected error (one line; the traceback is
written to a file whose path is printed); 130 interrupted (Ctrl-C).
"""

import argparse
import importlib
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads (importing xprospect_tf loads it)

from xprospect_tf.errors import XprospectError  # noqa: E402

# Workflow modules, in the order their commands appear in --help.
WORKFLOWS = ("data", "train", "table1", "classify", "style", "export", "predict", "bench")


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
    except Exception as e:  # the last line of defence: one line, never a raw traceback
        return _unexpected(e)
    return int(status or 0)


def _unexpected(error):
    """Report an exception that is not an XprospectError: a known TensorFlow data
    error as a user error (exit 2), anything else as a bug with its traceback in a file (exit 3)."""
    import tempfile
    import time
    import traceback

    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    if type(error).__name__ in ("DataLossError", "NotFoundError") and type(error).__module__.startswith("tensorflow"):
        print(f"xprospect: error: a prepared case could not be read ({first_line}); the dataset is damaged: "
              "rerun xprospect data prepare with the same --out to rewrite missing cases, or prepare it again",
              file=sys.stderr)
        return 2
    fd, path = tempfile.mkstemp(prefix=f"xprospect-error-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"xprospect {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exception(error, file=f)
    print(f"xprospect: internal error: {type(error).__name__}: {first_line}\n"
          f"This is a bug in xprospect-tf. Please report it with the full traceback, written to {path}",
          file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
