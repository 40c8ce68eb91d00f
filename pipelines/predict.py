"""``xprospect predict MODEL --frontal IMG --lateral IMG --out ct.nii.gz``.

MODEL is a run folder, an export folder or a ``.keras`` file. The X-rays (PNG,
JPEG or DICOM) are displayed as a radiologist reads them: the frontal image
with the patient's right on the image's left, the lateral with anterior on the
left. The volume is written as NIfTI in Hounsfield units with the affine of the
canonical orientation (spacing = field of view / size), plus a PNG preview.
"""

import os

import numpy as np

from pipelines.common import log


def register(sub):
    p = sub.add_parser("predict", help="reconstruct a CT volume from a frontal and a lateral X-ray")
    p.add_argument("model", help="run folder, export folder or .keras file")
    p.add_argument("--frontal", required=True, help="frontal (PA/AP) X-ray: PNG, JPEG or DICOM")
    p.add_argument("--lateral", required=True, help="lateral X-ray: PNG, JPEG or DICOM")
    p.add_argument("--out", required=True, help="output NIfTI (.nii or .nii.gz)")
    p.add_argument("--preview", default=None, help="preview PNG (default: next to --out)")
    p.set_defaults(func=main)


def main(args):
    import json

    import nibabel as nib

    from xprospect_tf.data.readers import read_xray
    from xprospect_tf.data.transforms import hu_unwindow, square_image
    from xprospect_tf.data.volume import canonical_affine
    from xprospect_tf.errors import ConfigError
    from xprospect_tf.export import load_keras_model
    from xprospect_tf.files import atomic_path

    if not args.out.endswith((".nii", ".nii.gz")):
        raise ConfigError(f"--out {args.out}: the output must end in .nii or .nii.gz")
    model_path, config = _locate(args.model)
    model = load_keras_model(model_path)
    size = int(model.inputs[0].shape[1])
    window = config["data"]["window"] if config else (-1000.0, 1000.0)
    fov = config["data"]["fov_mm"] if config else 400.0
    images = {name: square_image(read_xray(path), size) for name, path in
              (("frontal", args.frontal), ("lateral", args.lateral))}
    vol01 = np.asarray(model.predict_on_batch({k: v[None, ..., None] for k, v in images.items()}))[0, ..., 0]
    hu = hu_unwindow(vol01, window).astype(np.float32)
    spacing = (fov / size,) * 3
    origin = -canonical_affine(spacing)[:3, :3] @ np.full(3, (size - 1) / 2)  # cube centred at 0
    with atomic_path(args.out) as tmp:
        nib.save(nib.Nifti1Image(hu, canonical_affine(spacing, origin)), tmp)
    preview = args.preview or _strip_nii(args.out) + "_preview.png"
    from xprospect_tf.evaluation.figures import preview_figure, save_figure

    save_figure(preview_figure(vol01, images["frontal"], images["lateral"],
                               title=os.path.basename(args.out)), preview)
    log.info("wrote %s (%d^3, %.2f mm voxels, %s HU window) and %s",
             args.out, size, fov / size, json.dumps(list(window)), preview)
    return 0


def _strip_nii(path):
    for ext in (".nii.gz", ".nii"):
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


def _locate(model):
    """Return (path of the .keras file, run config dict or None)."""
    import json

    from xprospect_tf.errors import InputError

    if os.path.isdir(model):
        path = os.path.join(model, "model.keras")
        cfg_path = os.path.join(model, "config.json")
    else:
        path, cfg_path = model, os.path.join(os.path.dirname(model), "config.json")
    if not os.path.exists(path):
        raise InputError(f"{model}: no trained model here (expected {path})")
    config = None
    if os.path.exists(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            config = json.load(f)
    return path, config

