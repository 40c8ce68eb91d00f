"""The canonical volume and its mapping to patient (world) coordinates.

Every volume in xprospect-tf is a float32 array ``vol[z, x, y]``:

- axis 0 ``z``: superior -> inferior (voxel axis points to patient Inferior, "I"),
- axis 1 ``x``: patient right -> patient left ("L"),
- axis 2 ``y``: anterior -> posterior ("P").

In nibabel's axis-code language the canonical orientation is ``("I", "L", "P")``.
World coordinates are NIfTI RAS+ millimetres; see :func:`canonical_affine`.
"""

import dataclasses
import os

import numpy as np

from xprospect_tf.errors import InputError

CANONICAL_AXCODES = ("I", "L", "P")


@dataclasses.dataclass(frozen=True)
class Volume:
    """A CT volume in Hounsfield units, in canonical ``(z, x, y)`` order.

    Args:
        hu: float32 array ``(D, H, W)`` in HU, canonical order.
        spacing: voxel size in mm along ``(z, x, y)``.
        origin: RAS+ world position (mm) of voxel ``(0, 0, 0)``'s centre.
        source: where the volume came from (file or folder), for messages.
    """

    hu: np.ndarray
    spacing: tuple
    origin: tuple = (0.0, 0.0, 0.0)
    source: str = ""

    def __post_init__(self):
        hu = np.asarray(self.hu)
        if hu.ndim != 3:
            raise InputError(
                f"{self.source or 'volume'}: expected a 3D volume, got an array of shape {hu.shape}"
            )
        object.__setattr__(self, "hu", hu.astype(np.float32, copy=False))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))

    @property
    def shape(self):
        return self.hu.shape

    @property
    def affine(self):
        """The 4x4 RAS+ affine of this canonical array (for writing NIfTI)."""
        return canonical_affine(self.spacing, self.origin)


def canonical_affine(spacing, origin=(0.0, 0.0, 0.0)):
    """RAS+ affine of a canonical ``(z, x, y)`` array with ``spacing`` mm.

    Voxel index ``(i, j, k)`` maps to world ``origin + (-sx*j, -sy*k, -sz*i)``:
    ``j`` runs towards patient left (-R), ``k`` towards posterior (-A) and ``i``
    towards inferior (-S).
    """
    sz, sx, sy = (float(s) for s in spacing)
    affine = np.zeros((4, 4))
    affine[0, 1] = -sx
    affine[1, 2] = -sy
    affine[2, 0] = -sz
    affine[:3, 3] = origin
    affine[3, 3] = 1.0
    return affine


def reorient_to_canonical(data, affine, source=""):
    """Reorder/flip a 3D array with RAS+ ``affine`` into canonical order.

    Uses the axis each voxel direction is closest to (nibabel's
    ``io_orientation``); an oblique acquisition is therefore snapped to the
    nearest patient axis, not resampled. Returns ``(array, spacing, origin)``:
    the canonical array (a view where possible), its voxel sizes along
    ``(z, x, y)`` in mm, and the RAS+ position of its first voxel.
    """
    import nibabel.orientations as nio

    data = np.asarray(data)
    affine = np.asarray(affine, dtype=float)
    if data.ndim != 3:
        raise InputError(f"{source or 'volume'}: expected a 3D volume, got shape {data.shape}")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(
            f"{source or 'volume'}: the orientation matrix (affine) is singular or not finite; "
            "the file's geometry header is broken, so its orientation cannot be trusted"
        )
    ornt = nio.io_orientation(affine)
    target = nio.axcodes2ornt(CANONICAL_AXCODES)
    transform = nio.ornt_transform(ornt, target)
    out = nio.apply_orientation(data, transform)
    new_affine = affine @ nio.inv_ornt_aff(transform, data.shape)
    spacing = tuple(float(v) for v in np.sqrt((new_affine[:3, :3] ** 2).sum(axis=0)))
    origin = tuple(float(v) for v in new_affine[:3, 3])
    return out, spacing, origin


def centred_origin(shape, spacing):
    """The origin that puts the centre of a canonical array of ``shape`` at world (0, 0, 0).

    Example:
        >>> centred_origin((3, 3, 3), (2.0, 2.0, 2.0))
        (2.0, 2.0, 2.0)
    """
    centre = (np.asarray(shape, dtype=float) - 1) / 2
    return tuple(float(v) for v in -canonical_affine(spacing)[:3, :3] @ centre)


def write_nifti(volume, path, dtype=np.float32, ras_storage=False):
    """Write ``volume`` (HU) as a NIfTI file, atomically.

    Args:
        volume: a :class:`Volume`.
        path: ``.nii`` or ``.nii.gz`` file.
        dtype: the stored data type (``np.int16`` rounds to whole HU, as scanners store).
        ras_storage: store the voxels in RAS order (as most scanners export)
            instead of the canonical ``(z, x, y)`` order; readers that follow
            the affine (nibabel, :func:`~xprospect_tf.data.readers.read_volume`)
            see the same volume either way.

    Returns:
        ``path``.

    Example:
        >>> import os, tempfile
        >>> from xprospect_tf.data.readers import read_volume
        >>> hu = np.full((4, 5, 6), -1000.0, dtype=np.float32); hu[1:3, 1:4, 1:5] = 40.0
        >>> with tempfile.TemporaryDirectory() as d:
        ...     back = read_volume(write_nifti(Volume(hu, (1.0, 2.0, 3.0)), os.path.join(d, "ct.nii.gz")))
        >>> bool(np.array_equal(back.hu, hu)), back.spacing
        (True, (1.0, 2.0, 3.0))
    """
    import nibabel as nib

    from xprospect_tf.files import atomic_path

    data = volume.hu
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.round(data), info.min, info.max)
    img = nib.Nifti1Image(data.astype(dtype), volume.affine)
    if ras_storage:
        img = nib.as_closest_canonical(img)
    img.set_data_dtype(dtype)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return os.fspath(path)
