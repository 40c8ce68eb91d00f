"""Benchmarks that print figures.

``xprospect bench data``: time preparing a clinical-size CT and tf.data throughput.
``xprospect bench model``: one row's model on random tensors: step time, throughput,
FLOPs and memory, as one JSON line (TensorFlow or JAX: ``KERAS_BACKEND``).
``xprospect bench train``: ``bench model --train`` at several sizes, each in a fresh process.
"""

import json
import os
import platform
import tempfile
import time

import numpy as np

CLINICAL_SHAPE = (300, 512, 512)  # slices, rows, columns
CLINICAL_SPACING = (1.25, 0.7, 0.7)  # mm along (z, x, y)


def register(subparsers):
    """Add ``bench data``, ``bench model`` and ``bench train``."""
    bench = subparsers.add_parser("bench", help="benchmarks")
    sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True)
    p = sub.add_parser("data", help="time preparing one 512x512x300 CT and reading prepared cases")
    p.add_argument("--size", type=int, default=128, help="cube side in voxels (default: 128)")
    p.add_argument("--cases", type=int, default=16, help="phantom cases for the tf.data test (default: 16)")
    p.add_argument("--workers", type=int, default=None, help="processes preparing them (default: CPU count)")
    p.set_defaults(func=run_data_bench)
    register_model(sub)
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


def register_model(sub):
    """Add ``bench model``."""
    from xprospect_tf.training.precision import PRECISIONS

    p = sub.add_parser("model", help="one row's model on random tensors: step time, FLOPs, memory (one JSON line)")
    p.add_argument("--row", default="512-Dense", help="experiments.yaml row (default: 512-Dense)")
    p.add_argument("--preset", default="paper", help="preset whose settings the row takes (default: paper)")
    p.add_argument("--size", type=int, default=64, help="cube side, a power of two >= 16 (default: 64)")
    p.add_argument("--batch", type=int, default=1, help="volumes per step (default: 1)")
    p.add_argument("--precision", default=None,
                   help=f"model.precision: {', '.join(PRECISIONS)} (default: the row's, float32)")
    p.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step (default: 5)")
    p.add_argument("--base-filters", type=int, default=None, help="model.base_filters (default: the preset's)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--train", dest="mode", action="store_const", const="train", default="train",
                      help="time train steps (the default)")
    mode.add_argument("--predict", dest="mode", action="store_const", const="predict",
                      help="time predictions (a diffusion row: one denoiser call, one sampling step)")
    p.set_defaults(func=run_model_bench)


def run_model_bench(args):
    """``xprospect bench model``: prints :func:`measure_model`'s figures as one JSON line."""
    from xprospect_tf.checks import check_positive_int
    from xprospect_tf.config import load_experiments

    check_positive_int(args.steps, "--steps")
    check_positive_int(args.batch, "--batch")
    overrides = [f"size={args.size}", f"train.batch_size={args.batch}"]
    if args.precision is not None:
        overrides.append(f"model.precision={args.precision}")
    if args.base_filters is not None:
        overrides.append(f"base_filters={args.base_filters}")
    cfg = load_experiments().resolve(args.row, args.preset, overrides)
    print(json.dumps(measure_model(cfg, args.mode, args.steps)), flush=True)
    return 0


TRAIN_FLOPS_FACTOR = 3  # a train step ~ forward + backward (gradients of activations and of weights)


def measure_model(cfg, mode, steps, seed=0):
    """Time a row's model on random tensors: one warm-up step, then ``steps`` timed ones.

    The model is the row's (:func:`~xprospect_tf.training.rows.build_compiled_model`,
    at ``cfg.data.size``, ``cfg.train.batch_size`` and ``cfg.model.precision``), so
    the figures are the model's alone, without data loading. ``"train"`` times
    ``train_on_batch``; ``"predict"`` times ``predict_on_batch``, for a diffusion row
    that of its denoiser (one of ``diffusion.sample_steps`` sampling steps).

    Args:
        cfg: the row's resolved :class:`~xprospect_tf.config.RunConfig`.
        mode: ``"train"`` or ``"predict"``.
        steps: timed steps.
        seed: seed of the random tensors.

    Returns:
        a dict of plain values: the machine and versions, the settings, the
        parameter count, forward GFLOPs per volume (:mod:`xprospect_tf.training.flops`),
        the time to build and compile the model (``build_s``; under JAX it includes
        compiling each weight initializer), the warm-up step's time
        (tracing/compilation, ``trace_compile_s``), the
        median/min/max step time, volumes/s, achieved GFLOP/s (train steps count
        ``train_flops_factor`` = 3 forward passes), the host memory once the model is
        built (RSS before the first step) and at its peak (max RSS)
        and accelerator memory (``None`` where the backend reports none), and the
        tensor-size guard's estimates: the tensors of a train step and the process's
        peak in ``mode`` (:meth:`~xprospect_tf.training.guard.SizeReport.process_peak_bytes`).
    """
    import keras

    from xprospect_tf.errors import ConfigError
    from xprospect_tf.training.flops import forward_flops
    from xprospect_tf.training.guard import tensor_size_report
    from xprospect_tf.training.rows import build_compiled_model, is_baseline, is_diffusion

    if is_baseline(cfg):
        raise ConfigError(f"row {cfg.row!r} is a baseline computed without a trained model: nothing to "
                          "bench; use a trained row (e.g. 512-Dense, 512-ProjInj, Diffusion-Frontal)")
    model, build_s = _timed(build_compiled_model, cfg, steps_per_epoch=cfg.train.steps_per_epoch or 1)
    built_rss = _current_rss_bytes()
    diffusion = is_diffusion(cfg)
    network = model.denoiser if diffusion else model  # what --predict calls and the FLOPs count
    batch, size = cfg.train.batch_size, cfg.data.size
    rng = np.random.default_rng(seed)
    if mode == "train":
        x = {k: rng.random((batch, size, size, 1), dtype=np.float32) for k in ("frontal", "lateral")}
        y = rng.random((batch, size, size, size, 1), dtype=np.float32)
        step = lambda: model.train_on_batch(x, y)  # noqa: E731  (returns host floats: synchronized)
    else:
        inputs = [rng.random((batch, *t.shape[1:]), dtype=np.float32) for t in network.inputs]
        step = lambda: network.predict_on_batch(inputs)  # noqa: E731  (returns numpy: synchronized)
    first = _timed(step)[1]
    times = [_timed(step)[1] for _ in range(steps)]
    gflops = forward_flops(network) / 1e9
    report = tensor_size_report(model, batch)
    factor = TRAIN_FLOPS_FACTOR if mode == "train" else 1
    median = float(np.median(times))
    return {
        "backend": keras.backend.backend(),
        "device": _device_name(),
        "keras": keras.__version__,
        "backend_version": _backend_version(),
        "row": cfg.row,
        "preset": cfg.preset,
        "size": size,
        "batch": batch,
        "base_filters": cfg.model.base_filters,
        "precision": cfg.model.precision,
        "mode": mode,
        "measured": (f"denoiser.predict_on_batch: one of diffusion.sample_steps = {cfg.diffusion.sample_steps} "
                     "DDIM steps" if diffusion and mode == "predict" else f"model.{mode}_on_batch"),
        "parameters": int(model.count_params()),
        "forward_gflops": round(gflops, 4),
        "flops_of": ("one denoiser call (the train step's X-ray encoder, perceptual network and "
                     "discriminator are not counted)" if diffusion else "the model"),
        "train_flops_factor": TRAIN_FLOPS_FACTOR if mode == "train" else None,
        "build_s": round(build_s, 4),
        "trace_compile_s": round(first, 4),
        "steps": steps,
        "step_s_median": round(median, 4),
        "step_s_min": round(min(times), 4),
        "step_s_max": round(max(times), 4),
        "volumes_per_s": round(batch / median, 4),
        "achieved_gflop_s": round(gflops * factor * batch / median, 3),
        "rss_built_gib": round(built_rss / 2**30, 3),
        "peak_rss_gib": round(_peak_rss_bytes() / 2**30, 3),
        "peak_accelerator_gib": _gib(_peak_accelerator_bytes()),
        "guard_training_gib": round(report.training_bytes / 2**30, 3),
        "guard_peak_gib": round(report.process_peak_bytes(mode) / 2**30, 3),
    }


def _gib(n):
    return None if n is None else round(n / 2**30, 3)


def _peak_rss_bytes():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _current_rss_bytes():
    """The process's resident memory now (``VmRSS`` of ``/proc/self/status``; 0 where there is none)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def _backend_version():
    import importlib

    import keras

    return importlib.import_module(keras.backend.backend()).__version__


def _cpu_name():
    """The CPU's model name (``/proc/cpuinfo``, as ``lscpu`` shows it), else the platform's word."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _device_name():
    """The accelerator the backend computes on, or ``"cpu: <model name>, N cores"``."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return device.device_kind
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    return f"cpu: {_cpu_name()}, {os.cpu_count()} cores"


def _peak_accelerator_bytes():
    """Peak accelerator memory in bytes where the backend reports it (a GPU), else ``None``."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        stats = jax.devices()[0].memory_stats()
        return stats.get("peak_bytes_in_use") if stats else None
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"]
    return None


def register_train(sub):
    """Add ``bench train``."""
    p = sub.add_parser("train", help="bench model --train at several sizes, each in a fresh process")
    p.add_argument("--row", default="512-Dense", help="experiments.yaml row (default: 512-Dense)")
    p.add_argument("--size", type=int, nargs="+", default=[64], help="cube sides to measure (default: 64)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    p.add_argument("--base-filters", type=int, default=None, help="default: the paper preset's")
    p.set_defaults(func=run_train_bench)


def run_train_bench(args):
    """``bench model --train`` per size, each in a fresh process so its peak memory (max RSS) is its own;
    prints each size's JSON line (or its error)."""
    failed = 0
    for size in args.size:
        options = ["--train", "--preset", "paper", "--row", args.row, "--size", str(size),
                   "--batch", str(args.batch_size), "--steps", str(args.steps)]
        if args.base_filters is not None:
            options += ["--base-filters", str(args.base_filters)]
        line, error = bench_in_fresh_process(options)
        if error:
            failed += 1
            print(f"size {size}: failed: {error}")
        else:
            print(line, flush=True)
    return 1 if failed else 0


def bench_in_fresh_process(options):
    """``xprospect bench model`` with ``options`` (a list of strings) in a fresh process, so its
    peak memory is its own: ``(JSON line, None)``, or ``(None, its last line of stderr)``."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pipelines", "bench", "model", *options],
                         capture_output=True, text=True)
    if out.returncode:
        return None, (out.stderr.strip().splitlines() or ["?"])[-1]
    return out.stdout.strip(), None
