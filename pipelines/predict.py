"""``xprospect predict MODEL --frontal IMG --lateral IMG --out ct.nii.gz``.

MODEL is a run folder, an export folder or a ``.keras`` file. The X-rays (PNG,
JPEG or DICOM) are displayed as a radiologist reads them: the frontal image
with the patient's right on the image's left, the lateral with anterior on the
left. The volume is written as NIfTI in Hounsfield units with the affine of the
canonical orientation (spacing = field of view / size), plus a PNG preview.

A diffusion row's run samples: ``--steps N`` DDIM steps (default: the row's
``diffusion.sample_steps``), ``--seed S`` (the same seed gives the same volume),
and ``--samples K`` writes the voxel-wise mean of K samples to ``--out`` and
their standard deviation (in HU) beside it (``*_std.nii.gz``): an uncertainty
map. A row conditioned on the frontal X-ray alone needs no ``--lateral``.
"""

import os

import numpy as np

from pipelines.common import log, read_run_config


def register(sub):
    p = sub.add_parser("predict", help="reconstruct a CT volume from a frontal and a lateral X-ray")
    p.add_argument("model", help="run folder, export folder or .keras file")
    p.add_argument("--frontal", required=True, help="frontal (PA/AP) X-ray: PNG, JPEG or DICOM")
    p.add_argument("--lateral", default=None, help="lateral X-ray: PNG, JPEG or DICOM (not read by a "
                   "frontal-only diffusion row)")
    p.add_argument("--out", required=True, help="output NIfTI (.nii or .nii.gz)")
    p.add_argument("--preview", default=None, help="preview PNG (default: next to --out)")
    p.add_argument("--overwrite", action="store_true", help="replace --out and the preview if they exist")
    p.add_argument("--steps", type=int, default=None, help="diffusion rows: DDIM steps (default: the row's)")
    p.add_argument("--seed", type=int, default=0, help="diffusion rows: seed of the sample (default 0)")
    p.add_argument("--samples", type=int, default=1,
                   help="diffusion rows: average this many samples; with K > 1 their voxel-wise standard "
                   "deviation is written beside --out (*_std.nii.gz)")
    p.set_defaults(func=main)


def main(args):
    from xprospect_tf.data.readers import read_xray
    from xprospect_tf.data.transforms import hu_unwindow, square_image
    from xprospect_tf.data.volume import Volume, centred_origin, write_nifti
    from xprospect_tf.outputs import check_output_file
    from xprospect_tf.evaluation.figures import preview_figure, save_figure
    from xprospect_tf.errors import InputError
    from xprospect_tf.export import load_keras_model
    from xprospect_tf.models.diffusion import DiffusionModel

    # every output is checked before the model runs: nothing existing is overwritten unasked
    check_output_file(args.out, "predicted CT", (".nii", ".nii.gz"), overwrite=args.overwrite)
    preview = args.preview or _strip_nii(args.out) + "_preview.png"
    check_output_file(preview, "preview", (".png",), overwrite=args.overwrite)
    std_path = _strip_nii(args.out) + "_std.nii.gz" if args.samples > 1 else None
    if std_path:
        check_output_file(std_path, "standard deviation of the samples", (".nii.gz",), overwrite=args.overwrite)
    if args.samples < 1 or (args.steps is not None and args.steps < 1):
        raise InputError("--samples and --steps: use positive integers")
    model_path, config = _locate(args.model)
    model = load_keras_model(model_path)
    diffusion = isinstance(model, DiffusionModel)
    if not diffusion and (args.samples > 1 or args.steps is not None):
        raise InputError(f"{args.model}: --samples and --steps apply to diffusion rows; this run "
                         f"({config.row}) predicts one volume")
    views = model.views if diffusion else ("frontal", "lateral")
    paths = {"frontal": args.frontal, "lateral": args.lateral}
    if any(paths[v] is None for v in views):
        raise InputError(f"{args.model}: the {config.row} model reads the {' and '.join(views)} X-rays; "
                         "pass --lateral too")
    size = model.size if diffusion else int(model.inputs[0].shape[1])
    window, fov = tuple(config.data.window), config.data.fov_mm
    images = {v: square_image(read_xray(paths[v]), size) for v in views}
    batch = {k: v[None, ..., None] for k, v in images.items()}
    if diffusion:
        samples = np.stack([model.sample(batch, steps=args.steps, seed=args.seed + k)[0, ..., 0]
                            for k in range(args.samples)])
        vol01 = samples.mean(axis=0)
    else:
        vol01 = np.asarray(model.predict_on_batch(batch))[0, ..., 0]
    spacing = (fov / size,) * 3
    write_nifti(Volume(hu_unwindow(vol01, window), spacing, centred_origin(vol01.shape, spacing)), args.out)
    if std_path:  # [0, 1] -> HU is affine: the spread scales by the window's width
        std_hu = samples.std(axis=0) * (window[1] - window[0])
        write_nifti(Volume(std_hu, spacing, centred_origin(vol01.shape, spacing)), std_path)
        log.info("wrote the standard deviation of %d samples to %s (mean %.1f HU)", args.samples, std_path,
                 float(std_hu.mean()))
    save_figure(preview_figure(vol01, images["frontal"], images.get("lateral", np.zeros_like(images["frontal"])),
                               title=os.path.basename(args.out)), preview)
    log.info("wrote %s (%d^3, %.2f mm voxels, window [%g, %g] HU) and %s",
             args.out, size, fov / size, *window, preview)
    return 0


def _strip_nii(path):
    for ext in (".nii.gz", ".nii"):
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


def _locate(model):
    """Return (path of the .keras file, the run's RunConfig).

    The run configuration says which HU window and field of view turn the
    model's [0, 1] output back into HU and millimetres; without it the
    prediction cannot be written honestly, so none is guessed.
    """
    from xprospect_tf.errors import InputError

    folder = model if os.path.isdir(model) else os.path.dirname(model) or "."
    path = os.path.join(model, "model.keras") if os.path.isdir(model) else model
    if not os.path.exists(path):
        raise InputError(f"{model}: no trained model here (expected {path})")
    if not os.path.exists(os.path.join(folder, "config.json")):
        raise InputError(
            f"{model}: no config.json beside the model, so its HU window and field of view are unknown; "
            "pass the run folder (xprospect train --out) or the export folder (xprospect export --out)")
    return path, read_run_config(folder)
