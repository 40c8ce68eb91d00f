"""The embedded default data: a synthetic chest CT phantom.

A plausible adult thorax, defined in physical millimetres so that it looks the
same at every grid size: body wall (skin, subcutaneous fat, muscle), lungs with
apices and branching vessel trees, trachea and bronchi, heart and great vessels,
spine, ribs, sternum, clavicles, scapulae, diaphragm domes, liver, stomach and
spleen. Tissues carry realistic Hounsfield units; thin structures (ribs, lung
vessels, nodules) are partial-volume blended so that coarse grids stay smooth.

Everything is vectorized numpy on coordinate grids; tubes and ellipsoids are
drawn only inside their bounding sub-boxes. A 128^3 phantom takes well under a
second on one core.

Coordinates: the anatomy is built in a patient frame ``(z, x, y)`` in mm with
the cube centre at 0 (``z`` superior->inferior, ``x`` right->left, ``y``
anterior->posterior), then rotated by a few degrees about ``z`` per seed. Arrays
are in the canonical ``vol[z, x, y]`` order of ``ARCHITECTURE.md``.
"""

import logging
import math

import numpy as np

from xprospect_tf.checks import DEFAULT_FOV_MM, check_data_size, check_fov_mm
from xprospect_tf.errors import ConfigError

logger = logging.getLogger(__name__)

LABELS = {
    "air": 0,
    "fat": 1,
    "muscle": 2,
    "lung": 3,
    "airway": 4,
    "vessel": 5,
    "heart": 6,
    "aorta": 7,
    "bone_cortical": 8,
    "bone_marrow": 9,
    "rib": 10,
    "liver": 11,
    "soft_tissue": 12,
    "cartilage": 13,
    "bowel_gas": 14,
    "nodule": 15,
}

LABEL_HU = {
    "air": -1000.0,
    "fat": -100.0,
    "muscle": 45.0,
    "lung": -850.0,
    "airway": -1000.0,
    "vessel": 40.0,
    "heart": 45.0,
    "aorta": 45.0,
    "bone_cortical": 850.0,
    "bone_marrow": 250.0,
    "rib": 600.0,
    "liver": 60.0,
    "soft_tissue": 30.0,
    "cartilage": 110.0,
    "bowel_gas": -950.0,
    "nodule": 30.0,
}

_L = LABELS
DEFAULT_NODULE_RADIUS_MM = (5.0, 12.0)
"""Range (mm) the nodule radius of a seed is drawn from (uniformly)."""
DEFAULT_NODULE_CONTRAST_HU = LABEL_HU["nodule"] - LABEL_HU["lung"]
"""The nodule's HU above the lung parenchyma's nominal -850 HU: 880, a solid nodule at 30 HU."""
_HU_LUT = np.array([LABEL_HU[name] for name in sorted(LABELS, key=LABELS.get)], np.float32)
_NOISE_HU = 15.0
_TEXTURE_HU = 25.0
_RIB_COUNT = 12
# angle (rad, 0 posterior .. pi anterior) where each rib's bone and cartilage end
_RIB_ENDS = np.float32([2.2, 2.65, 2.75, 2.75, 2.72, 2.68, 2.62, 2.45, 2.25, 2.0, 1.6, 1.2])
_CARTILAGE_ENDS = np.float32([2.95, 2.95, 2.95, 2.95, 2.92, 2.88, 2.84, 2.7, 2.5, 2.3, 1.6, 1.2])


# ---------------------------------------------------------------------------
# Per-seed anatomy (size-independent)


def _anatomy(seed):
    """The scalar anatomy parameters (mm, degrees) drawn from ``seed``."""
    rng = np.random.default_rng([seed, 0])
    u = rng.uniform
    return {
        "half_width": u(160.0, 180.0),
        "half_depth": u(110.0, 128.0),
        "fat": u(8.0, 16.0),
        "rotation_deg": u(-4.0, 4.0),
        "dome_right": u(72.0, 92.0),
        "dome_left_extra": u(8.0, 20.0),
        "apex": u(-165.0, -155.0),
        "heart_scale": u(0.9, 1.1),
        "heart_shift": u(-10.0, 10.0),
        "rib_spacing": u(22.0, 26.0),
        "rib_drop": u(40.0, 55.0),
    }


def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _body_axes(p, z):
    """Half-width and half-depth (mm) of the body ellipse at height ``z``."""
    grow = _smoothstep((z + 200.0) / 240.0)
    return p["half_width"] * (0.82 + 0.18 * grow), p["half_depth"] * (0.84 + 0.16 * grow)


def _wall_axes(p, z):
    """Half-axes of the inner chest-wall ellipse (where the ribs run)."""
    a, b = _body_axes(p, z)
    return a - p["fat"] - 9.0, b - p["fat"] - 8.0


def _spine_y(z):
    """Centre (y, mm) of the vertebral bodies: a mild thoracic kyphosis."""
    return 40.0 + 8.0 * np.cos((z + 20.0) / 260.0 * math.pi)


def _diaphragm_z(p, x, y):
    """Height (z, mm) of the diaphragm under the point ``(x, y)``: two domes."""
    top = np.where(x < 0, p["dome_right"], p["dome_right"] + p["dome_left_extra"])
    return top + 100.0 * ((np.abs(x) - 55.0) / 100.0) ** 2 + 45.0 * (y / 100.0) ** 2


def _cavity_mask(p, z, x, y):
    """Inside the chest wall and below the thoracic inlet."""
    a, b = _wall_axes(p, z)
    inlet = p["apex"] - 12.0 + x * x / 160.0
    return ((x / a) ** 2 + (y / b) ** 2 < 1.0) & (z > inlet)


def _lung_mask(p, z, x, y):
    """Both lungs (before the heart, vessels and airways are drawn over them).

    Pure elementwise function of broadcastable coordinate arrays, so it serves
    both the full grid and single points (for placing a nodule).
    """
    ax = np.abs(x)
    upper = _smoothstep((-55.0 - z) / 30.0) * np.clip(1.0 - ((y + 5.0) / 75.0) ** 2, 0.0, 1.0)
    posterior = np.clip((y - 5.0) / 20.0, 0.0, 1.0)
    mediastinum = np.maximum(8.0 + 22.0 * upper, 27.0 * posterior)
    apex = p["apex"] + ((ax - 60.0) ** 2 + (y - 25.0) ** 2) / 80.0
    return _cavity_mask(p, z, x, y) & (ax > mediastinum) & (z > apex) & (z < _diaphragm_z(p, x, y))


def _heart(p):
    """Centre (z, x, y), semi-axes and rotation (rows: local axes) of the heart."""
    s = p["heart_scale"]
    centre = np.array([p["dome_right"] - 30.0, 30.0 + p["heart_shift"], -35.0])
    apex_dir = _unit([0.45, 0.75, -0.5])
    return centre, np.array([62.0, 46.0, 42.0]) * s, _frame(apex_dir)


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _frame(axis):
    """Rotation whose first row is ``axis`` (a right-handed orthonormal frame)."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e2 = _unit(np.cross(axis, helper))
    return np.stack([axis, e2, np.cross(axis, e2)])


def _tubes(p):
    """Mediastinal tubes: (points (z, x, y), radius, label, inner radius, inner label)."""
    c, _, _ = _heart(p)
    zc, xc = c[0], c[1]
    dr = p["dome_right"]
    carina = [-62.0, 2.0, 2.0]
    return [
        # trachea and main/lobar bronchi: soft-tissue wall, air lumen
        ([[-205.0, 0.0, -30.0], [-130.0, 0.0, -12.0], carina], 11.0, "soft_tissue", 9.0, "airway"),
        ([carina, [-42.0, -42.0, 6.0], [-25.0, -62.0, 10.0]], 8.0, "soft_tissue", 6.0, "airway"),
        ([carina, [-48.0, 40.0, 8.0], [-32.0, 62.0, 14.0]], 8.0, "soft_tissue", 6.0, "airway"),
        ([[-45.0, -38.0, 5.0], [-80.0, -62.0, 12.0]], 5.5, "soft_tissue", 4.0, "airway"),
        ([[-40.0, 45.0, 9.0], [-70.0, 68.0, -2.0]], 5.5, "soft_tissue", 4.0, "airway"),
        ([[-25.0, -62.0, 10.0], [5.0, -75.0, 35.0]], 5.5, "soft_tissue", 4.0, "airway"),
        ([[-32.0, 62.0, 14.0], [5.0, 75.0, 38.0]], 5.5, "soft_tissue", 4.0, "airway"),
        # oesophagus
        ([[-205.0, 4.0, -8.0], [-62.0, 8.0, 20.0], [dr + 20.0, 22.0, 5.0]], 8.0, "soft_tissue"),
        # aorta: root, ascending, arch, descending, abdominal
        (
            [
                [zc - 30.0, xc - 18.0, -28.0],
                [-75.0, 0.0, -28.0],
                [-92.0, 8.0, -5.0],
                [-85.0, 24.0, 18.0],
                [-55.0, 30.0, 24.0],
                [dr + 40.0, 22.0, 20.0],
                [205.0, 8.0, 12.0],
            ],
            13.0,
            "aorta",
            0,
            "",
        ),
        # pulmonary trunk and arteries, superior and inferior vena cava, arch branches
        ([[zc - 25.0, xc + 2.0, -48.0], [-42.0, 20.0, -28.0], [-45.0, 48.0, 5.0]], 11.0, "vessel"),
        ([[-42.0, 20.0, -28.0], [-40.0, -10.0, -5.0], [-38.0, -52.0, 2.0]], 9.0, "vessel", 0, ""),
        ([[-160.0, -30.0, -20.0], [zc - 35.0, -28.0, -22.0]], 10.0, "vessel", 0, ""),
        ([[zc + 30.0, -25.0, 10.0], [205.0, -25.0, 15.0]], 11.0, "vessel", 0, ""),
        ([[-92.0, 2.0, -22.0], [-150.0, -18.0, -20.0], [-205.0, -30.0, -15.0]], 6.0, "vessel"),
        ([[-93.0, 12.0, -12.0], [-150.0, 22.0, -10.0], [-205.0, 30.0, -10.0]], 6.0, "vessel"),
    ]


def _bone_tubes(p):
    """Clavicles: (points, radius, label, inner radius, inner label) per side."""
    out = []
    for side in (-1.0, 1.0):
        a, b = _body_axes(p, -175.0)
        pts = [[-170.0, side * 20.0, -b + 30.0], [-178.0, side * 70.0, -b + 28.0],
               [-184.0, side * 0.75 * a, -b + 60.0], [-186.0, side * 0.88 * a, -10.0]]
        out.append((pts, 8.0, "bone_cortical", 5.5, "bone_marrow"))
    return out


def _vessel_tree(p, seed):
    """Pulmonary vessel segments ``(start, end, radius)`` branching from the hila."""
    rng = np.random.default_rng([seed, 2])
    segments = []
    for side in (-1.0, 1.0):
        for hilum_z, hilum_y in ((-45.0, 2.0), (-20.0, 20.0)):  # arteries, veins
            hilum = np.array([hilum_z, side * 55.0, hilum_y])
            for target in ([-150.0, 60.0, 20.0], [-40.0, 120.0, -70.0], [20.0, 110.0, -40.0],
                           [80.0, 90.0, 60.0], [40.0, 60.0, 90.0]):
                goal = np.array([target[0], side * target[1], target[2]])
                _grow(segments, hilum, _unit(goal - hilum), 42.0, 4.5, 4, rng)
    return segments


def _grow(segments, start, direction, length, radius, depth, rng):
    end = start + direction * length
    segments.append((start, end, radius))
    if depth > 1:
        for _ in range(2):
            child = _unit(direction + rng.normal(0.0, 0.5, 3))
            _grow(segments, end, child, length * 0.75, radius * 0.7, depth - 1, rng)


# ---------------------------------------------------------------------------
# Findings


def phantom_findings(seed, nodule_radius_mm=DEFAULT_NODULE_RADIUS_MM):
    """The labelled finding of phantom ``seed`` (drawn with ``findings=True``).

    About half the seeds carry one solid lung nodule. The result does not
    depend on the grid size or field of view, so downstream classification can
    read the label without regenerating the volume. Whether a seed has a nodule
    does not depend on ``nodule_radius_mm`` either (only its size and place do),
    so a harder or easier variant of a dataset keeps its labels.

    Args:
        seed: the phantom seed (non-negative int).
        nodule_radius_mm: ``(low, high)`` range of the nodule radius in mm
            (default 5-12 mm), as given to :func:`chest_phantom`.

    Returns:
        ``{"nodule": bool, "nodule_center_mm": (z, x, y) or None,
        "nodule_radius_mm": float or None}``; the centre is in canonical grid
        millimetres relative to the cube centre (``z`` inferior, ``x`` left,
        ``y`` posterior). Voxel index = ``(c + fov_mm / 2) / spacing - 0.5``.

    Example:
        >>> phantom_findings(3)["nodule"] in (True, False)
        True
        >>> phantom_findings(3, nodule_radius_mm=(20.0, 20.0))["nodule_radius_mm"]
        20.0
    """
    seed = _check_seed(seed)
    radius_range = check_nodule_radius(nodule_radius_mm)
    p = _anatomy(seed)
    centre, radius = _nodule_anatomy(p, seed, radius_range)
    if centre is None:
        return {"nodule": False, "nodule_center_mm": None, "nodule_radius_mm": None}
    c, s = _rotation(p)
    z, x, y = centre
    world = (z, c * x - s * y, s * x + c * y)
    return {"nodule": True, "nodule_center_mm": tuple(float(v) for v in world),
            "nodule_radius_mm": radius}


def check_nodule_radius(value, name="nodule radius"):
    """``value`` as a ``(low, high)`` float pair with ``1 <= low <= high <= 30`` mm, else ConfigError.

    Example:
        >>> check_nodule_radius([3, 6])
        (3.0, 6.0)
    """
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} = {value!r}: give a range [low, high] in mm, e.g. [5, 12]") from None
    if not (1.0 <= low <= high <= 30.0):
        raise ConfigError(f"{name} = {value!r}: use 1 <= low <= high <= 30 mm (a lung nodule), e.g. [5, 12]")
    return low, high


def check_nodule_contrast(value, name="nodule contrast"):
    """``value`` (HU above the lung's -850 HU) as a float in (0, 2000], else ConfigError.

    Example:
        >>> check_nodule_contrast(300)
        300.0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 2000.0:
        raise ConfigError(f"{name} = {value!r}: use a number of HU in (0, 2000] above the lung's "
                          f"{LABEL_HU['lung']:g} HU (the default {DEFAULT_NODULE_CONTRAST_HU:g}: a solid "
                          "nodule at 30 HU)")
    return float(value)


def _nodule_anatomy(p, seed, radius_range=DEFAULT_NODULE_RADIUS_MM):
    """``(centre, radius)`` of the seed's nodule in the anatomy frame, or ``(None, None)``."""
    rng = np.random.default_rng([seed, 3])
    present = bool(rng.random() < 0.5)
    radius = float(rng.uniform(*radius_range))
    if not present:
        return None, None
    return _nodule_centre(p, radius, rng), radius


def _nodule_centre(p, radius, rng):
    """A lung point (anatomy frame) whose surrounding ball stays in the lung."""
    hc, hs, hr = _heart(p)
    offsets = np.concatenate([np.eye(3), -np.eye(3)]) * (radius + 8.0)
    for _ in range(1000):
        c = rng.uniform([-140.0, -150.0, -90.0], [80.0, 150.0, 90.0])
        pts = c + np.concatenate([[[0.0, 0.0, 0.0]], offsets])
        inside = _lung_mask(p, pts[:, 0], pts[:, 1], pts[:, 2]).all()
        d = (pts - hc).T
        if inside and abs(c[1]) > 50.0 and _ellipsoid_q(*d, hs + 8.0, hr).min() > 1.0:
            return c
    raise RuntimeError("could not place a nodule in the lungs")  # pragma: no cover


def _ellipsoid_q(dz, dx, dy, semi, rot):
    """Normalized squared radius (< 1 inside) of offsets from an ellipsoid centre."""
    return sum(((r[0] * dz + r[1] * dx + r[2] * dy) / s) ** 2 for r, s in zip(rot, semi))


def _rotation(p):
    t = math.radians(p["rotation_deg"])
    return math.cos(t), math.sin(t)


# ---------------------------------------------------------------------------
# Grid and drawing helpers


class _Grid:
    """Voxel centres (mm) and the anatomy-frame coordinates of each column."""

    def __init__(self, size, fov_mm, p):
        self.n = size
        self.step = fov_mm / size
        self.half = fov_mm / 2.0
        self.c = ((np.arange(size) + 0.5) * self.step - self.half).astype(np.float32)
        self.z = self.c[:, None, None]
        self.cos, self.sin = _rotation(p)
        xw, yw = self.c[:, None], self.c[None, :]
        self.x = (self.cos * xw + self.sin * yw)[None].astype(np.float32)
        self.y = (-self.sin * xw + self.cos * yw)[None].astype(np.float32)

    def box(self, lo, hi):
        """Slices and anatomy coordinates of the sub-box around ``[lo, hi]`` (anatomy mm)."""
        corners_x = np.array([lo[1], lo[1], hi[1], hi[1]])
        corners_y = np.array([lo[2], hi[2], lo[2], hi[2]])
        wx = self.cos * corners_x - self.sin * corners_y
        wy = self.sin * corners_x + self.cos * corners_y
        sl = (self._slice(lo[0], hi[0]), self._slice(wx.min(), wx.max()),
              self._slice(wy.min(), wy.max()))
        return sl, self.z[sl[0]], self.x[:, sl[1], sl[2]], self.y[:, sl[1], sl[2]]

    def _slice(self, lo, hi):
        i0 = min(max(math.floor((lo + self.half) / self.step - 0.5), 0), self.n)
        i1 = min(max(math.ceil((hi + self.half) / self.step - 0.5) + 1, i0), self.n)
        return slice(i0, i1)


def _segment_distance(z, x, y, a, b):
    """Distance (mm) from the points ``(z, x, y)`` to the segment ``a``-``b``."""
    v = b - a
    dz, dx, dy = z - a[0], x - a[1], y - a[2]
    t = np.clip((dz * v[0] + dx * v[1] + dy * v[2]) / max(float(v @ v), 1e-9), 0.0, 1.0)
    return np.sqrt((dz - t * v[0]) ** 2 + (dx - t * v[1]) ** 2 + (dy - t * v[2]) ** 2)


def _segment_box(g, a, b, pad):
    return g.box(np.minimum(a, b) - pad, np.maximum(a, b) + pad)


def _draw_tube(labels, g, points, radius, label, inner_radius=0.0, inner_label=""):
    """Label a polyline tube (and its inner lumen/marrow) hard-edged."""
    pts = np.asarray(points, float)
    for a, b in zip(pts[:-1], pts[1:]):
        sl, z, x, y = _segment_box(g, a, b, radius + g.step)
        if z.size == 0 or x.size == 0:
            continue
        d = _segment_distance(z, x, y, a, b)
        view = labels[sl]
        view[d < radius] = _L[label]
        if inner_radius > 0:
            view[d < inner_radius] = _L[inner_label]


def _blend(hu, labels, sl, frac, label, where=None):
    """Partial-volume blend of tissue ``label`` with weight ``frac`` into ``hu``."""
    if where is not None:
        frac = frac * where
    hu[sl] += frac * (LABEL_HU[label] - hu[sl])
    labels[sl][frac >= 0.5] = _L[label]


def _tube_fraction(d, radius, step):
    """Approximate partial-volume fraction of a tube of ``radius`` at distance ``d``."""
    coverage = min(1.0, math.pi * radius * radius / (step * step))
    return np.clip((radius - d) / step + 0.5, 0.0, 1.0) * coverage


# ---------------------------------------------------------------------------
# Tissue layers


def _body_layers(p, g, labels):
    """Skin, subcutaneous fat, muscle wall, cavity contents (lungs, abdomen)."""
    z, x, y = g.z, g.x, g.y
    a, b = _body_axes(p, z)
    r_body = (x / a) ** 2 + (y / b) ** 2
    fat = p["fat"]
    r_fat = (x / (a - fat)) ** 2 + (y / (b - fat)) ** 2
    labels[r_body < 1.0] = _L["soft_tissue"]
    labels[r_body < ((a - 2.5) / a) ** 2] = _L["fat"]
    labels[r_fat < 1.0] = _L["muscle"]
    cavity = _cavity_mask(p, z, x, y)
    below = z > _diaphragm_z(p, x, y) + 6.0
    labels[cavity] = _L["fat"]
    labels[cavity & below] = _L["soft_tissue"]
    labels[_lung_mask(p, z, x, y)] = _L["lung"]
    liver_bottom = p["dome_right"] + 160.0 - 0.5 * np.clip(x + 90.0, 0, None)
    liver = cavity & below & (x < 25.0 - 0.5 * y) & (z < liver_bottom)
    labels[liver] = _L["liver"]
    return r_body < 1.0


def _draw_ellipsoid(labels, g, centre, semi, rot, label, where=None):
    sl, z, x, y = g.box(centre - semi.max(), centre + semi.max())
    inside = _ellipsoid_q(z - centre[0], x - centre[1], y - centre[2], semi, rot) < 1.0
    if where is not None:
        inside &= np.isin(labels[sl], [_L[w] for w in where])
    labels[sl][inside] = _L[label]


def _organs(p, g, labels):
    """Heart (with epicardial fat), stomach with its gas bubble, spleen."""
    centre, semi, rot = _heart(p)
    _draw_ellipsoid(labels, g, centre, semi + 4.0, rot, "fat", where=("lung", "fat"))
    _draw_ellipsoid(labels, g, centre, semi, rot, "heart")
    dl = p["dome_right"] + p["dome_left_extra"]
    eye = np.eye(3)
    abdomen = ("soft_tissue", "fat")
    stomach = np.array([dl + 55.0, 55.0, -20.0])
    _draw_ellipsoid(labels, g, stomach, np.array([50.0, 45.0, 40.0]), eye, "muscle", where=abdomen)
    _draw_ellipsoid(labels, g, stomach + [-33.0, 7.0, -5.0], np.array([10.0, 22.0, 18.0]), eye,
                    "bowel_gas", where=("muscle",))
    _draw_ellipsoid(labels, g, np.array([dl + 60.0, 95.0, 50.0]), np.array([55.0, 28.0, 40.0]), eye,
                    "soft_tissue", where=abdomen)


def _spine(p, g, labels):
    """Vertebral bodies (cortical shell, marrow, discs), canal and posterior elements."""
    h = p["rib_spacing"]
    z1 = p["apex"] - 10.0
    sl, z, x, y = g.box(np.array([-g.half, -60.0, -10.0]), np.array([g.half, 60.0, 125.0]))
    ys = _spine_y(z)
    rv = 16.0 + 8.0 * _smoothstep((z + 200.0) / 400.0)
    phase = np.mod((z - z1) / h + 0.5, 1.0)
    disc = np.abs(phase - 0.5) * h < 2.5
    plate = np.abs(phase - 0.5) * h < 4.5
    rb = np.sqrt(x * x + (y - ys) ** 2)
    view = labels[sl]
    canal_y = ys + rv + 10.0
    rc = np.sqrt(x * x + (y - canal_y) ** 2)
    process = (np.abs(x) < 4.0) & (y > canal_y) & (y < canal_y + 38.0)
    mid_body = np.abs(phase - 0.5) * h > 6.0
    transverse = (np.abs(x) < 32.0) & (np.abs(y - canal_y + 2.0) < 4.0) & mid_body
    view[(rc < 15.0) | (process & ~plate) | transverse] = _L["bone_cortical"]
    view[rc < 8.0] = _L["soft_tissue"]
    view[rb < rv] = _L["bone_cortical"]
    view[(rb < rv - 2.5) & ~plate] = _L["bone_marrow"]
    view[(rb < rv) & disc] = _L["cartilage"]


def _sternum(p, g, labels):
    """Manubrium and sternal body: a plate behind the anterior chest wall."""
    z0, z1 = p["apex"] - 8.0, p["dome_right"] - 5.0
    sl, z, x, y = g.box(np.array([z0, -35.0, -g.half]), np.array([z1, 35.0, 0.0]))
    _, b = _wall_axes(p, z)
    front = -b - 2.0
    width = np.where(z < z0 + 45.0, 28.0, 15.0)
    inside_z = (z > z0) & (z < z1)
    outer = inside_z & (np.abs(x) < width) & (y > front - 13.0) & (y < front)
    inner = inside_z & (np.abs(x) < width - 2.5) & (y > front - 10.5) & (y < front - 2.5)
    view = labels[sl]
    view[outer] = _L["bone_cortical"]
    view[inner] = _L["bone_marrow"]


def _ribs_and_scapulae(p, g, labels, hu):
    """Twelve rib pairs (partial-volume tubes) with costal cartilage, and scapulae.

    Only voxels in a thin shell around the chest-wall ellipse are evaluated.
    """
    h, drop = p["rib_spacing"], p["rib_drop"]
    z1 = p["apex"] - 8.0
    zlo, zhi = z1 - 35.0, z1 + (_RIB_COUNT - 1) * h + drop + 20.0
    sl, z, x, y = g.box(np.array([zlo, -g.half, -g.half]), np.array([zhi, g.half, g.half]))
    a, b = _wall_axes(p, z)
    hyp = np.sqrt(x * x + y * y)
    out = hyp - hyp / np.sqrt(x * x / (a * a) + y * y / (b * b))  # mm outside the wall
    idx = np.nonzero((out > -4.0 - g.step) & (out < 22.0 + g.step))
    z, out = z[idx[0], 0, 0], out[idx]
    x, y = x[0, idx[1], idx[2]], y[0, idx[1], idx[2]]
    theta = np.arctan2(np.abs(x), y)  # 0 posterior, pi anterior
    rise = drop * ((1.0 - np.cos(theta)) * 0.5) ** 1.3
    k = np.clip(np.rint((z - z1 - rise) / h), 0, _RIB_COUNT - 1).astype(np.intp)
    dz = z - (z1 + h * k.astype(np.float32) + rise)
    dn = np.sqrt((dz / 6.0) ** 2 + ((out - 5.0) / 4.0) ** 2)
    end, cart = _RIB_ENDS[k], _CARTILAGE_ENDS[k]
    frac = _tube_fraction(dn * 4.0, 4.0, g.step)
    view_l, view_h = labels[sl], hu[sl]
    soft = np.isin(view_l[idx], [_L["muscle"], _L["fat"], _L["soft_tissue"]])
    rib, cartilage = (theta > 0.28) & (theta < end), (theta >= end) & (theta < cart)
    for label, keep in (("rib", rib), ("cartilage", cartilage)):
        f = frac * (soft & keep)
        view_h[idx] += f * (LABEL_HU[label] - view_h[idx])
        view_l[tuple(i[f >= 0.5] for i in idx)] = _L[label]
    scap_w = 0.5 * np.clip((-40.0 - z) / 145.0, 0.0, 1.0)
    scapula = soft & (np.abs(theta - 0.9) < scap_w) & (np.abs(out - 17.0) < 2.5 + 0.5 * g.step)
    pick = tuple(i[scapula] for i in idx)
    view_l[pick] = _L["bone_cortical"]
    view_h[pick] = LABEL_HU["bone_cortical"]


def _rib_necks(p, g, labels):
    """Short bony necks joining each rib to its vertebra."""
    h = p["rib_spacing"]
    z1 = p["apex"] - 8.0
    for k in range(_RIB_COUNT):
        zk = z1 + k * h
        a, b = _wall_axes(p, zk)
        for side in (-1.0, 1.0):
            start = [zk, side * 14.0, float(_spine_y(zk)) + 12.0]
            end = [zk, side * math.sin(0.3) * a * 1.03, math.cos(0.3) * b * 1.03]  # rib start angle
            _draw_tube(labels, g, [start, end], 4.5, "rib")


def _lung_texture(g, seed):
    """Smooth random field (std ~1) on a fixed 12 mm lattice, trilinearly sampled.

    The lattice lives in mm, so the texture is the same at every grid size.
    """
    from scipy.ndimage import gaussian_filter

    step, extent = 12.0, 300.0
    m = int(2 * extent / step) + 1
    noise = np.random.default_rng([seed, 1]).standard_normal((m, m, m), dtype=np.float32)
    noise = gaussian_filter(noise, 0.7)
    noise /= noise.std()
    w = _linear_weights(g.c, extent, step, m)
    used = np.flatnonzero(w.any(axis=0))
    w, noise = w[:, used], noise[np.ix_(used, used, used)]
    field = np.tensordot(w, noise, axes=(1, 0))  # (n, u, u)
    field = np.matmul(w, field)  # (n, n, u)
    return field @ w.T  # (n, n, n)


def _linear_weights(coords, extent, step, m):
    """Trilinear interpolation weights ``(len(coords), m)`` onto a lattice."""
    t = np.clip((coords + extent) / step, 0, m - 1.001)
    i = np.floor(t).astype(int)
    f = (t - i).astype(np.float32)
    w = np.zeros((coords.size, m), np.float32)
    w[np.arange(coords.size), i] = 1.0 - f
    w[np.arange(coords.size), i + 1] = f
    return w


def _vessels(p, g, seed, labels, hu):
    """Partial-volume pulmonary vessel trees, drawn only over lung."""
    for a, b, r in _vessel_tree(p, seed):
        if r < 0.3 * g.step:  # below a third of a voxel: invisible, skip
            continue
        sl, z, x, y = _segment_box(g, a, b, r + g.step)
        if z.size == 0 or x.size == 0:
            continue
        d = _segment_distance(z, x, y, a, b)
        lung = (labels[sl] == _L["lung"]) | (labels[sl] == _L["vessel"])
        _blend(hu, labels, sl, _tube_fraction(d, r, g.step), "vessel", where=lung)


def _nodule(p, g, seed, labels, hu, radius_range, contrast_hu):
    """Partial-volume solid nodule (if the seed has one, see :func:`phantom_findings`)
    at ``contrast_hu`` above the lung's nominal HU."""
    centre, r = _nodule_anatomy(p, seed, radius_range)
    if centre is None:
        return
    sl, z, x, y = g.box(centre - r - g.step, centre + r + g.step)
    d = np.sqrt((z - centre[0]) ** 2 + (x - centre[1]) ** 2 + (y - centre[2]) ** 2)
    frac = np.clip((r - d) / g.step + 0.5, 0.0, 1.0)
    target = LABEL_HU["lung"] + contrast_hu  # the default contrast gives LABEL_HU["nodule"] exactly
    hu[sl] += frac * (target - hu[sl])
    labels[sl][frac >= 0.5] = _L["nodule"]


# ---------------------------------------------------------------------------
# Public API


def chest_phantom(size=128, seed=0, fov_mm=DEFAULT_FOV_MM, findings=False,
                  nodule_radius_mm=DEFAULT_NODULE_RADIUS_MM, nodule_contrast_hu=DEFAULT_NODULE_CONTRAST_HU):
    """A synthetic chest CT: HU volume and label map in canonical ``(z, x, y)`` order.

    The embedded default data source (no download). Anatomy is defined in mm,
    so every ``size`` shows the same chest at a different resolution; voxel
    spacing is ``fov_mm / size`` (isotropic) and the cube is centred on the body.

    Args:
        size: cube side in voxels (>= 8).
        seed: non-negative int; anatomy, texture and noise are deterministic per seed.
        fov_mm: cube side in mm (> 0).
        findings: draw the seed's finding (see :func:`phantom_findings`).
        nodule_radius_mm: ``(low, high)`` range (mm) the nodule radius is drawn
            from; smaller nodules are harder to see (only with ``findings``).
        nodule_contrast_hu: the nodule's HU above the lung's nominal -850 HU
            (default 880: a solid nodule at 30 HU); lower is harder to see.
            Without ``findings`` neither setting changes the volume.

    Returns:
        ``(hu, labels)``: float32 ``(size, size, size)`` HU volume (air -1000
        outside the body) and its uint8 label map (values of :data:`LABELS`).

    Example:
        >>> hu, labels = chest_phantom(size=32, seed=1)
        >>> hu.shape, labels.dtype
        ((32, 32, 32), dtype('uint8'))
    """
    size, seed, fov_mm = _check_args(size, seed, fov_mm)
    radius_range = check_nodule_radius(nodule_radius_mm)
    contrast_hu = check_nodule_contrast(nodule_contrast_hu)
    p = _anatomy(seed)
    g = _Grid(size, fov_mm, p)
    labels = np.zeros((size, size, size), np.uint8)
    body = _body_layers(p, g, labels)
    for tube in _tubes(p) + _bone_tubes(p):
        _draw_tube(labels, g, *tube)
    _organs(p, g, labels)
    _spine(p, g, labels)
    _sternum(p, g, labels)
    _rib_necks(p, g, labels)
    hu = _HU_LUT[labels]
    lung = labels == _L["lung"]
    y_post = np.clip((g.y + 100.0) / 200.0, 0.0, 1.0)  # dependent (posterior) lung is denser
    hu += lung * (_TEXTURE_HU * _lung_texture(g, seed) + 40.0 * y_post - 20.0)
    _ribs_and_scapulae(p, g, labels, hu)
    _vessels(p, g, seed, labels, hu)
    if findings:
        _nodule(p, g, seed, labels, hu, radius_range, contrast_hu)
    logger.debug("chest phantom seed=%d size=%d fov=%.0f mm: %s", seed, size, fov_mm, p)
    noise = np.random.default_rng([seed, 4]).standard_normal(hu.shape, dtype=np.float32)
    hu += body * (_NOISE_HU * noise)
    return hu, labels


def phantom_volume(size=128, seed=0, fov_mm=DEFAULT_FOV_MM, findings=False,
                   nodule_radius_mm=DEFAULT_NODULE_RADIUS_MM, nodule_contrast_hu=DEFAULT_NODULE_CONTRAST_HU):
    """The phantom as a :class:`~xprospect_tf.data.volume.Volume` centred at world 0.

    Args:
        size, seed, fov_mm, findings, nodule_radius_mm, nodule_contrast_hu: as in
            :func:`chest_phantom`.

    Returns:
        ``Volume`` with spacing ``(fov_mm / size,) * 3``, an origin that puts the
        cube centre at RAS+ ``(0, 0, 0)``, and ``source="phantom:{seed}"``.

    Example:
        >>> phantom_volume(size=16, seed=2).spacing
        (25.0, 25.0, 25.0)
    """
    from xprospect_tf.data.volume import Volume

    hu, _ = chest_phantom(size, seed, fov_mm, findings, nodule_radius_mm, nodule_contrast_hu)
    step = float(fov_mm) / int(size)
    centre = step * (int(size) - 1) / 2.0
    return Volume(hu, (step,) * 3, (centre, centre, centre), source=f"phantom:{seed}")


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"phantom seed must be a non-negative integer, got {seed!r}; "
                          "set data.phantom_seed to 0 or more")
    return int(seed)


def _check_args(size, seed, fov_mm):
    return check_data_size(size, "phantom size"), _check_seed(seed), check_fov_mm(fov_mm, "phantom fov_mm")
