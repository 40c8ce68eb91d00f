"""``xprospect data ...``: prepare datasets (phantoms or CT files) and preview cases."""

import logging
import os
import sys

from xprospect_tf.checks import (
    DEFAULT_FOV_MM,
    DEFAULT_VAL_FRACTION,
    DEFAULT_WINDOW,
    check_data_size,
    check_fov_mm,
    check_window,
)
from xprospect_tf.errors import InputError

log = logging.getLogger("xprospect")


def register(subparsers):
    """Add ``data phantoms``, ``data prepare``, ``data split`` and ``data preview``."""
    data = subparsers.add_parser("data", help="prepare datasets and preview cases")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    p = sub.add_parser("phantoms", help="prepare a dataset of synthetic chest phantoms")
    p.add_argument("--count", type=int, default=100, help="number of cases (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default: 0)")
    p.add_argument("--findings", action="store_true",
                   help="draw each phantom's finding (a lung nodule in about half of them) and record a "
                        "0/1 label per case in the manifest (for xprospect classify)")
    p.add_argument("--nodule-radius", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="with --findings: range of the nodule radius in mm (default: 5 12)")
    p.add_argument("--nodule-contrast", type=float, default=None, metavar="HU",
                   help="with --findings: the nodule's HU above the lung's -850 HU (default: 880, a "
                        "solid nodule at 30 HU); smaller is harder to see")
    _add_prepare_args(p)
    p.set_defaults(func=run_phantoms)

    p = sub.add_parser("prepare", help="prepare CT files (NIfTI, DICOM folders, RAD-ChestCT npz)")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="CT files or folders holding them; 'phantom:N[:SEED]' adds phantoms")
    _add_prepare_args(p)
    p.set_defaults(func=run_prepare)

    p = sub.add_parser("split", help="hold validation cases out of a prepared dataset's non-test cases "
                                     "again (its test cases stay)")
    p.add_argument("path", metavar="DIR", help="a prepared dataset folder")
    _add_val_fraction_arg(p)
    p.set_defaults(func=run_split)

    p = sub.add_parser("preview", help="PNG of a CT volume or a prepared case: slices + X-rays")
    p.add_argument("path", metavar="PATH", help="a CT file/DICOM folder, or a prepared dataset folder")
    p.add_argument("--out", required=True, metavar="PNG", help="image to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--case", default=None, help="case id of a prepared dataset (default: its first case)")
    _add_settings_args(p)
    p.set_defaults(func=run_preview)


def _add_settings_args(parser):
    parser.add_argument("--size", type=int, default=128, help="cube side in voxels (default: 128)")
    low, high = DEFAULT_WINDOW
    parser.add_argument("--window", type=float, nargs=2, default=DEFAULT_WINDOW, metavar=("LO", "HI"),
                        help=f"HU window mapped to [0, 1] (default: {low:g} {high:g})")
    parser.add_argument("--fov", type=float, default=DEFAULT_FOV_MM, metavar="MM",
                        help=f"cube side in mm (default: {DEFAULT_FOV_MM:g})")
    parser.add_argument("--series", default=None, metavar="UID",
                        help="for DICOM folders holding several series: the SeriesInstanceUID (or index) to read")
    parser.add_argument("--no-hu-check", action="store_true",
                        help="accept volumes with no air (below -500 HU), e.g. a CT cropped to a bone; "
                             "by default they are refused as not a CT in Hounsfield units")


def _settings(args):
    """``(size, window, fov_mm)`` of the options, checked; errors name the option."""
    return (check_data_size(args.size, "--size"), check_window(args.window, "--window"),
            check_fov_mm(args.fov, "--fov"))


def _add_prepare_args(parser):
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder (resumable)")
    _add_settings_args(parser)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    parser.add_argument("--test-count", type=int, default=None, metavar="N",
                        help="fixed number of test cases (default: 20%% of the cases)")
    _add_val_fraction_arg(parser)
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the test and validation splits")


def _add_val_fraction_arg(parser):
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION, metavar="F",
                        help="share of the non-test cases held out for validation (default: "
                             f"{DEFAULT_VAL_FRACTION:g}, the paper's 80/20 train/validation split; "
                             "0: no validation split)")


def _prepare(sources, args):
    from xprospect_tf.data.prepared import is_prepared_dataset, write_prepared
    from xprospect_tf.outputs import claim_folder

    size, window, fov_mm = _settings(args)
    # the dataset folder is locked by write_prepared itself; a folder this command
    # created is removed again if not a single case could be prepared
    with claim_folder(args.out, "prepared dataset", is_prepared_dataset, lock=False,
                      keep_on_error=_has_cases):
        manifest = write_prepared(
            sources, args.out, size=size, window=window, fov_mm=fov_mm,
            test_count=args.test_count, split_seed=args.split_seed, workers=args.workers,
            series=args.series, check_hu=not args.no_hu_check, val_fraction=args.val_fraction,
        )
        if not manifest.cases:
            reasons = "; ".join(f"{f['source']}: {f['reason']}" for f in manifest.failed[:3])
            raise InputError(f"no input could be prepared ({reasons}); nothing was written to {args.out}")
    print(f"{args.out}: {len(manifest.cases)} cases ({manifest.describe_splits()}) at {manifest.size}^3")
    if manifest.failed:
        print(f"xprospect: {len(manifest.failed)} input(s) failed:", file=sys.stderr)
        for failure in manifest.failed:
            print(f"  {failure['source']}: {failure['reason']}", file=sys.stderr)
        return 1
    return 0


def _has_cases(folder):
    cases = os.path.join(folder, "cases")
    return os.path.isdir(cases) and any(name.endswith(".tfrecord") for name in os.listdir(cases))


def run_phantoms(args):
    """``xprospect data phantoms``."""
    from xprospect_tf.data.prepared import PhantomFindings, phantom_sources
    from xprospect_tf.errors import ConfigError

    findings = None
    if args.findings:
        findings = PhantomFindings(args.nodule_radius, args.nodule_contrast)
    elif args.nodule_radius is not None or args.nodule_contrast is not None:
        raise ConfigError("--nodule-radius and --nodule-contrast set the finding's difficulty: add --findings")
    return _prepare(phantom_sources(args.count, args.seed, findings), args)


def run_prepare(args):
    """``xprospect data prepare``."""
    return _prepare(args.sources, args)


def run_split(args):
    """``xprospect data split``: divide the non-test cases into train and val again."""
    from xprospect_tf.data.prepared import split_prepared

    manifest = split_prepared(args.path, args.val_fraction)
    print(f"{args.path}: {len(manifest.cases)} cases ({manifest.describe_splits()}), "
          f"val_fraction {manifest.val_fraction:g}")
    return 0


def run_preview(args):
    """``xprospect data preview``: mid slices and projections of one case, as a PNG."""
    from xprospect_tf.evaluation.figures import preview_figure, save_figure
    from xprospect_tf.outputs import check_output_file

    check_output_file(args.out, "preview", (".png",), overwrite=args.overwrite)
    arrays, title = _preview_arrays(args)
    fig = preview_figure(arrays["ct"], arrays["ap"], arrays["lateral"],
                         arrays["drr_ap"], arrays["drr_lateral"], title=title)
    save_figure(fig, args.out)
    print(args.out)
    return 0


def _preview_arrays(args):
    from xprospect_tf.data import prepared

    path = args.path
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or folder; give a CT file, DICOM folder or prepared dataset")
    if args.case is not None or os.path.exists(os.path.join(path, prepared.MANIFEST)):
        manifest = prepared.read_manifest(path)
        ids = manifest.ids()
        if not ids:
            raise InputError(f"{path}: the prepared dataset has no cases; run xprospect data prepare")
        case_id = args.case or ids[0]
        return prepared.load_case(path, case_id), f"{path}: {case_id}"
    from xprospect_tf.data.readers import read_volume

    size, window, fov_mm = _settings(args)
    volume = read_volume(path, series=args.series, check_hu=not args.no_hu_check)
    arrays = prepared.case_arrays(volume, size, window, fov_mm)
    return arrays, f"{path} ({size}^3, {fov_mm:g} mm)"
