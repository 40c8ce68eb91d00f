"""The data layer: readers, transforms, projections, the phantom, prepared datasets.

Names are imported lazily so that numpy-only users (and ``xprospect --help``)
do not pay for importing TensorFlow.
"""

from xprospect_tf.lazy import lazy_exports

_EXPORTS = {
    "Volume": "volume",
    "canonical_affine": "volume",
    "reorient_to_canonical": "volume",
    "read_volume": "readers",
    "read_xray": "readers",
    "chexpert_pairs": "chexpert",
    "chexpert_images": "chexpert",
    "hu_window": "transforms",
    "hu_unwindow": "transforms",
    "body_center": "transforms",
    "resample_isotropic": "transforms",
    "crop_or_pad_cube": "transforms",
    "resize_volume": "transforms",
    "prepare_volume": "transforms",
    "mean_projections": "projection",
    "drr": "projection",
    "attenuation": "projection",
    "back_projection": "projection",
    "chest_phantom": "phantom",
    "phantom_volume": "phantom",
    "phantom_findings": "phantom",
    "LABELS": "phantom",
    "LABEL_HU": "phantom",
    "write_prepared": "prepared",
    "load_prepared": "prepared",
    "read_manifest": "prepared",
    "Manifest": "prepared",
    "write_case": "prepared",
    "load_case": "prepared",
    "add_case_fields": "prepared",
    "phantom_sources": "prepared",
    "PhantomSource": "prepared",
    "case_arrays": "prepared",
    "assign_splits": "prepared",
    "split_prepared": "prepared",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
