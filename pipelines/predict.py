"""``xprospect predict MODEL --frontal IMG --lateral IMG --out ct.nii.gz``.

MODEL is a run folder, an export folder or a ``.keras`` file. The X-rays (PNG,
JPEG or DICOM) are displayed as a radiologist reads them: the frontal image
with the patient's right on the image's left, the lateral with anterior on the
left. The volume is written as NIfTI in Hounsfield units with the affine of the
canonical orientation (spacing = field of view / size), plus a PNG preview.
"""

import os

import numpy as np

from pipelines.common import log, read_run_config


def register(sub):
    p = sub.add_parser("predict", help="reconstruct a CT volume from a frontal and a lateral X-ray")
    p.add_argument("model", help="run folder, export folder or .keras file")
    p.add_argument("--frontal", required=True, help="frontal (PA/AP) X-ray: PNG, JPEG or DICOM")
    p.add_argument("--lateral", required=True, help="lateral X-ray: PNG, JPEG or DICOM")
    p.add_argument("--out", required=True, help="output NIfTI (.nii or .nii.gz)")
    p.add_argument("--preview", default=None, help="preview PNG (default: next to --out)")
    p.add_argument("--overwrite", action="store_true", help="replace --out and the preview if they exist")
    p.set_defaults(func=main)


def main(args):
    from xprospect_tf.data.readers import read_xray
    from xprospect_tf.data.transforms import hu_unwindow, square_image
    from xprospect_tf.data.volume import Volume, centred_origin, write_nifti
    from xprospect_tf.outputs import check_output_file
    from xprospect_tf.evaluation.figures import preview_figure, save_figure
    from xprospect_tf.export import load_keras_model

    # every output is checked before the model runs: nothing existing is overwritten unasked
    check_output_file(args.out, "predicted CT", (".nii", ".nii.gz"), overwrite=args.overwrite)
    preview = args.preview or _strip_nii(args.out) + "_preview.png"
    check_output_file(preview, "preview", (".png",), overwrite=args.overwrite)
    model_path, config = _locate(args.model)
    model = load_keras_model(model_path)
    size = int(model.inputs[0].shape[1])
    window, fov = tuple(config.data.window), config.data.fov_mm
    images = {name: square_image(read_xray(path), size) for name, path in
              (("frontal", args.frontal), ("lateral", args.lateral))}
    vol01 = np.asarray(model.predict_on_batch({k: v[None, ..., None] for k, v in images.items()}))[0, ..., 0]
    spacing = (fov / size,) * 3
    write_nifti(Volume(hu_unwindow(vol01, window), spacing, centred_origin(vol01.shape, spacing)), args.out)
    save_figure(preview_figure(vol01, images["frontal"], images["lateral"],
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
