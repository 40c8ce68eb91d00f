"""Benchmarks that print figures.

``xprospect bench data``: time preparing a clinical-size CT and tf.data throughput.
``xprospect bench train``: step time and peak memory of a reconstruction row.
"""

import os
import platform
import tempfile
import time

import numpy as np

CLINICAL_SHAPE = (300, 512, 512)  # slices, rows, columns
CLINICAL_SPACING = (1.25, 0.7, 0.7)  # mm along (z, x, y)


def register(subparsers):
    """Add ``bench data``."""
    bench = subparsers.add_parser("bench", help="benchmarks")
    sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True)
    p = sub.add_parser("data", help="time preparing one 512x512x300 CT and reading prepared cases")
    p.add_argument("--size", type=int, default=128, help="cube side in voxels (default: 128)")
    p.add_argument("--cases", type=int, default=16, help="phantom cases for the tf.data test (default: 16)")
    p.add_argument("--workers", type=int, default=None, help="processes preparing them (default: CPU count)")
    p.set_defaults(func=run_data_bench)
    register_train(sub)


def clinical_volume(seed=0):
    """A 512x512x300 phantom CT at 0.7x0.7x1.25 mm, like a clinical chest scan.

    Generated at 256^3 (1.5 mm) and resampled linearly onto the clinical grid.

    Args:
        seed: phantom seed.

    Returns:
        A :class:`~xprospect_tf.data.volume.Volume` in HU, shape ``(300, 512, 512)``.
    """
    from scipy import ndimage

    from xprospect_tf.data.phantom import phantom_volume
    from xprospect_tf.data.volume import Volume

    base = phantom_volume(size=256, seed=seed, fov_mm=384.0)
    step = np.asarray(CLINICAL_SPACING) / np.asarray(base.spacing)
    # output voxel i (centred grid) -> input index (i - c_out) * step + c_in
    offset = (np.asarray(base.shape) - 1) / 2 - (np.asarray(CLINICAL_SHAPE) - 1) / 2 * step
    hu = ndimage.affine_transform(base.hu, step, offset=offset, output_shape=CLINICAL_SHAPE,
                                  order=1, mode="constant", cval=-1000.0)
    return Volume(hu=np.round(hu), spacing=CLINICAL_SPACING, source="clinical phantom")


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _throughput(path, cache):
    """Cases per second over one epoch (with ``cache``: the second, cached epoch)."""
    from xprospect_tf.data.prepared import load_prepared

    ds = load_prepared(path, "all", batch_size=1, cache=cache)
    epochs = []
    for _ in range(2 if cache else 1):
        t0 = time.perf_counter()
        n = sum(int(ct.shape[0]) for _, ct in ds)
        epochs.append(n / (time.perf_counter() - t0))
    return epochs[-1]


def run_data_bench(args):
    """``xprospect bench data``: prints timings with the machine and settings."""
    import tensorflow as tf

    from xprospect_tf.checks import DEFAULT_FOV_MM, DEFAULT_WINDOW
    from xprospect_tf.data.prepared import phantom_sources, write_case, write_prepared
    from xprospect_tf.data.projection import drr, mean_projections
    from xprospect_tf.data.readers import read_volume
    from xprospect_tf.data.volume import write_nifti
    from xprospect_tf.data.transforms import hu_window, prepare_volume

    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, "
          f"python {platform.python_version()}, tensorflow {tf.__version__}")
    fov_mm, (low, high) = DEFAULT_FOV_MM, DEFAULT_WINDOW
    print(f"settings: size {args.size}^3, fov {fov_mm:g} mm, window [{low:g}, {high:g}] HU, {args.cases} cases")
    with tempfile.TemporaryDirectory(prefix="xprospect-bench-") as tmp:
        ct, t = _timed(clinical_volume)
        nifti = os.path.join(tmp, "clinical.nii")
        write_nifti(ct, nifti, dtype=np.int16, ras_storage=True)  # as scanners store it
        print(f"synthesized {ct.shape[2]}x{ct.shape[1]}x{ct.shape[0]} CT at 0.7x0.7x1.25 mm in {t:.1f} s")
        volume, t_read = _timed(read_volume, nifti)
        cube, t_prep = _timed(prepare_volume, volume, args.size, fov_mm)
        vol01 = hu_window(cube.hu, (low, high))
        _, t_mean = _timed(mean_projections, vol01)
        _, t_drr = _timed(drr, cube.hu, cube.spacing)
        _, t_write = _timed(write_case, os.path.join(tmp, "one"), "clinical", volume, args.size,
                            (low, high), fov_mm)
        print(f"one case: read {t_read:.2f} s, prepare_volume {t_prep:.2f} s, mean projections "
              f"{t_mean * 1e3:.1f} ms, DRR {t_drr * 1e3:.1f} ms; read + prepare + projections + DRR "
              f"+ write {t_read + t_write:.2f} s")
        record = os.path.join(tmp, "one", "cases", "clinical.tfrecord")
        print(f"record size: {os.path.getsize(record) / 2**20:.2f} MiB")

        shards = os.path.join(tmp, "shards")
        _, t = _timed(write_prepared, phantom_sources(args.cases), shards, size=args.size,
                      window=(low, high), fov_mm=fov_mm, test_count=0, val_fraction=0,
                      workers=args.workers, progress=False)
        print(f"prepared {args.cases} phantom cases in {t:.1f} s ({args.cases / t:.2f} cases/s)")
        for cache in (False, True):
            rate = _throughput(shards, cache)
            print(f"tf.data read + decode, {'cached' if cache else 'uncached'}: {rate:.1f} cases/s")
    return 0


def register_train(sub):
    """Add ``bench train``."""
    p = sub.add_parser("train", help="step time and peak memory of one reconstruction row")
    p.add_argument("--row", default="512-Dense", help="experiments.yaml row (default: 512-Dense)")
    p.add_argument("--size", type=int, nargs="+", default=[64], help="cube sides to measure (default: 64)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    p.add_argument("--base-filters", type=int, default=None, help="default: the paper preset's")
    p.set_defaults(func=run_train_bench)


def run_train_bench(args):
    """Each size in a fresh process, so its peak memory (max RSS) is its own."""
    import subprocess
    import sys

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"row {args.row}, batch {args.batch_size}, {args.steps} timed steps after 1 warm-up")
    for size in args.size:
        cmd = [sys.executable, "-c", "import sys; from pipelines.bench import _train_step_probe as p; "
               "p(*sys.argv[1:])", args.row, str(size), str(args.batch_size), str(args.steps),
               str(args.base_filters or 0)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"size {size}: failed: {out.stderr.strip().splitlines()[-1:]}")
        else:
            print(out.stdout.strip())
    return 0


def _train_step_probe(row, size, batch, steps, base_filters):
    """Build ``row`` at ``size`` (paper preset), train ``steps`` steps on random data, print figures."""
    import resource

    import keras

    from pipelines.train import build_compiled_model
    from xprospect_tf.config import load_experiments
    from xprospect_tf.training.guard import tensor_size_report

    size, batch, steps, base_filters = int(size), int(batch), int(steps), int(base_filters)
    overrides = [f"size={size}", f"train.batch_size={batch}"] + ([f"base_filters={base_filters}"] if base_filters else [])
    cfg = load_experiments().resolve(row, "paper", overrides)
    model = build_compiled_model(cfg)
    rng = np.random.default_rng(0)
    x = {k: rng.random((batch, size, size, 1), dtype=np.float32) for k in ("frontal", "lateral")}
    y = rng.random((batch, size, size, size, 1), dtype=np.float32)
    t0 = time.perf_counter()
    model.train_on_batch(x, y)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    step = (time.perf_counter() - t0) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    est = tensor_size_report(model, batch).training_bytes / 2**30
    print(f"size {size}^3: {model.count_params():,} parameters, base_filters {cfg.model.base_filters}, "
          f"first step (tracing) {warm:.1f} s, step {step:.2f} s, peak memory (max RSS) {peak:.2f} GiB, "
          f"guard estimate {est:.2f} GiB, keras {keras.__version__}")
