"""The two image domains of the style-transfer CycleGAN (XprospeCT, Paulson et al., 2024, section 3.1).

- Domain A: mean-CT projections of a prepared dataset (:func:`domain_a_images`).
- Domain B: real radiographs of one view (:func:`domain_b_images`), from

  * ``"phantom-drr:N"`` (the embedded default, no download): DRRs of ``N``
    synthetic phantoms whose seeds (``100000, 100001, ...``) are not among
    domain A's phantom seeds, so the two sets are unpaired;
  * a CheXpert CSV (``train.csv`` / ``valid.csv``): its paired orthogonal
    studies (:func:`xprospect_tf.data.chexpert.chexpert_pairs`, one frontal and
    one lateral image per study), as the paper used 2,390 paired CheXpert
    X-rays: the frontal model gets the pairs' frontal images, the lateral model
    their lateral images, and with the same ``count`` and ``seed`` both views
    draw the same studies;
  * a folder of PNG/JPEG/DICOM X-rays (searched recursively): a folder carries
    no view labels, so every image in it is used for whichever view asks; keep
    one folder per view (e.g. ``xrays/frontal``, ``xrays/lateral``).

Every image is returned as float32 in [0, 1], square ``(S, S)``: a
non-square radiograph is zero-padded to a square (centred) and resized with
anti-aliasing.
"""

import logging
import os

import numpy as np

from xprospect_tf.data.transforms import square_image
from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.files import sorted_files

log = logging.getLogger(__name__)

VIEWS = ("frontal", "lateral")
VIEW_FIELDS = {"frontal": "ap", "lateral": "lateral"}  # prepared-dataset field of each view
STYLED_FIELDS = {"frontal": "styled_ap", "lateral": "styled_lateral"}
PHANTOM_DRR = "phantom-drr:"
DOMAIN_B_FIRST_SEED = 100000  # domain A's phantom seeds come from SeedSequence; these are fixed
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")


def check_view(view):
    """Return ``view`` if it is ``"frontal"`` or ``"lateral"``; else raise ConfigError.

    Example:
        >>> check_view("lateral")
        'lateral'
    """
    if view not in VIEWS:
        raise ConfigError(f"view={view!r}: choose 'frontal' or 'lateral' (--view)")
    return view


def domain_b_images(spec, view, size, count=None, seed=0, fov_mm=400.0):
    """Domain-B images (radiographs) of one view as float32 ``(N, S, S)`` in [0, 1].

    Section 3.1 of XprospeCT: the CycleGAN's target domain (the paper uses
    CheXpert radiographs).

    Args:
        spec: ``"phantom-drr:N"``, a CheXpert CSV path, or a folder of
            PNG/JPEG/DICOM X-rays (see the module docstring).
        view: ``"frontal"`` or ``"lateral"``.
        size: image side ``S`` (the prepared dataset's size).
        count: keep at most this many images (of a CheXpert CSV: pairs),
            drawn without replacement with ``seed`` and kept in their listed
            order (``None``: all). Files are read after drawing, so a large
            CheXpert CSV costs only ``count`` reads per view.
        seed: seed of the draw.
        fov_mm: field of view of the phantoms (use the prepared dataset's).

    Returns:
        float32 array ``(N, size, size)`` in [0, 1].

    Raises:
        InputError: a missing path, a CSV or folder without images of the view,
            or an unreadable image (named).
        ConfigError: a malformed ``phantom-drr`` spec, bad view, size or count.

    Example:
        >>> domain_b_images("phantom-drr:2", "frontal", 16).shape
        (2, 16, 16)
    """
    check_view(view)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ConfigError(f"domain B image size: got {size!r}; use an integer >= 8")
    if count is not None and (isinstance(count, bool) or int(count) < 1):
        raise ConfigError(f"domain B count: got {count!r}; use a positive integer or leave it unset")
    spec = os.fspath(spec)
    if spec.startswith(PHANTOM_DRR):
        seeds = _pick(phantom_drr_seeds(spec), count, seed)
        return np.stack([_phantom_drr(s, view, int(size), fov_mm) for s in seeds])
    paths = _pick(xray_paths(spec, view), count, seed)
    log.info("domain B (%s): reading %d %s image(s)", spec, len(paths), view)
    return np.stack([square_image(_read(p), int(size)) for p in paths])


def phantom_drr_seeds(spec):
    """Phantom seeds of a ``"phantom-drr:N"`` spec: ``100000 ... 100000 + N - 1``.

    Example:
        >>> phantom_drr_seeds("phantom-drr:2")
        [100000, 100001]
    """
    try:
        n = int(spec[len(PHANTOM_DRR):])
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"domain B {spec!r}: write 'phantom-drr:N' with N >= 1 phantoms (--domain-b)")
    return [DOMAIN_B_FIRST_SEED + i for i in range(n)]


def xray_paths(spec, view):
    """The image files of a CheXpert CSV (the view's image of each frontal/lateral pair) or of a folder (all images).

    For a CSV, the frontal and the lateral list have one entry per study, in
    the same order: entry ``i`` of both is the same study, so drawing the same
    indices from both keeps the pairs.

    Args:
        spec: a ``.csv`` file or a folder.
        view: ``"frontal"`` or ``"lateral"`` (used for CSVs only).

    Returns:
        list of paths (CSV study order, or sorted folder order).

    Raises:
        InputError: missing path, or no images (no pairs) found.

    Example:
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     csv = os.path.join(d, "CheXpert-v1.0-small", "valid.csv")
        ...     os.makedirs(os.path.dirname(csv))
        ...     with open(csv, "w") as f:
        ...         _ = f.write("Path,Frontal/Lateral,AP/PA\\n"
        ...                     "CheXpert-v1.0-small/valid/patient1/study1/view1_frontal.jpg,Frontal,AP\\n"
        ...                     "CheXpert-v1.0-small/valid/patient1/study1/view2_lateral.jpg,Lateral,\\n"
        ...                     "CheXpert-v1.0-small/valid/patient2/study1/view1_frontal.jpg,Frontal,PA\\n")
        ...     [p.split("/valid/")[1] for view in VIEWS for p in xray_paths(csv, view)]  # patient2: no pair
        ['patient1/study1/view1_frontal.jpg', 'patient1/study1/view2_lateral.jpg']
    """
    if not os.path.exists(spec):
        raise InputError(f"{spec}: no such file or folder; give --domain-b as 'phantom-drr:N', "
                         "a CheXpert CSV, or a folder of PNG/JPEG/DICOM X-rays")
    if os.path.isfile(spec):
        if not spec.lower().endswith(".csv"):
            raise InputError(f"{spec}: domain B must be a CheXpert CSV, a folder of X-rays or "
                             "'phantom-drr:N'; put single images in a folder")
        from xprospect_tf.data.chexpert import chexpert_pairs

        paths = [pair[VIEWS.index(check_view(view))] for pair in chexpert_pairs(spec)]
        where = "no study with both a frontal and a lateral image (column Frontal/Lateral)"
    else:
        paths = _folder_images(spec)
        where = f"no X-ray images ({', '.join(IMAGE_SUFFIXES)} or DICOM files) found"
    if not paths:
        raise InputError(f"{spec}: {where}; point --domain-b to radiographs of the {view} view")
    return paths


def domain_a_images(prepared_dir, view, split="train", field=None):
    """Domain-A images: one view's mean-CT projections (or another 2D field) of a prepared dataset.

    Args:
        prepared_dir: prepared dataset folder.
        view: ``"frontal"`` (field ``ap``) or ``"lateral"`` (field ``lateral``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        field: read this 2D field instead (e.g. ``"drr_ap"``, ``"styled_ap"``).

    Returns:
        ``(ids, images)``: sorted case ids and float32 ``(N, S, S)``.

    Raises:
        InputError: not a finished prepared dataset, no case in ``split``, or
            a case lacks ``field``.
    """
    from xprospect_tf.data.prepared import Manifest, load_case

    field = field or VIEW_FIELDS[check_view(view)]
    cases = sorted(Manifest.read(prepared_dir).entries(split, fields=(field,)), key=lambda c: c["id"])
    ids = [c["id"] for c in cases]
    return ids, np.stack([load_case(prepared_dir, i)[field] for i in ids]).astype(np.float32)


def unpaired_steps(n_a, n_b, batch_size):
    """Steps of one CycleGAN epoch: ``ceil(max(N_A, N_B) / batch_size)``, so every image of the larger domain is seen once.

    Example:
        >>> unpaired_steps(4, 5, 2)
        3
    """
    return -(-max(int(n_a), int(n_b)) // int(batch_size))


def unpaired_dataset(images_a, images_b, batch_size, seed, epoch=0):
    """The CycleGAN's training stream: ``(batch_a, batch_b)`` of two unpaired domains, from ``epoch`` on.

    Each domain is an endless sequence of passes over its images, each pass a
    full shuffle drawn from ``(seed, pass, domain)`` alone (stateless: not from
    TensorFlow's global seed); the two sequences are zipped and batched, so a
    domain-A image meets a different domain-B image each time (keras-io's
    CycleGAN example joins its domains the same way). An epoch is
    :func:`unpaired_steps` batches; the stream started at ``epoch = k`` yields
    exactly the batches the stream started at 0 yields from epoch ``k`` on (the
    passes need not line up with epochs), which is what a resumed ``fit``
    needs. The stream is endless: give ``fit`` ``steps_per_epoch``.

    Args:
        images_a: domain-A images ``(N_A, S, S)``.
        images_b: domain-B images ``(N_B, S, S)``.
        batch_size: images per batch of each domain.
        seed: shuffling seed.
        epoch: the first epoch of the stream.

    Returns:
        a ``tf.data.Dataset`` of ``((B, S, S, 1), (B, S, S, 1))`` float batches.

    Example:
        >>> a, b = np.zeros((3, 8, 8), np.float32), np.ones((2, 8, 8), np.float32)
        >>> batch_a, batch_b = next(iter(unpaired_dataset(a, b, batch_size=2, seed=0)))
        >>> tuple(batch_a.shape), float(batch_b.numpy().mean())
        ((2, 8, 8, 1), 1.0)
    """
    import tensorflow as tf

    consumed = int(epoch) * unpaired_steps(len(images_a), len(images_b), batch_size) * int(batch_size)
    sets = [_domain_stream(x, seed, domain, consumed) for domain, x in enumerate((images_a, images_b))]
    return tf.data.Dataset.zip(tuple(sets)).batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)


def _domain_stream(images, seed, domain, start):
    """Images ``start, start + 1, ...`` of one domain's endless sequence of shuffled passes."""
    import tensorflow as tf

    n = len(images)
    first_pass, skip = divmod(int(start), n)
    stack = tf.constant(np.asarray(images, dtype=np.float32)[..., None])

    def one_pass(p):
        key = tf.stack([tf.cast(seed, tf.int64), 2 * p + domain])  # domains A and B never share a key
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=key)
        return tf.data.Dataset.from_tensor_slices(order)

    indices = tf.data.Dataset.range(first_pass, tf.int64.max).flat_map(one_pass).skip(skip)
    return indices.map(lambda i: tf.gather(stack, i))


def _phantom_drr(seed, view, size, fov_mm):
    from xprospect_tf.data.phantom import phantom_volume
    from xprospect_tf.data.projection import drr

    volume = phantom_volume(size=size, seed=seed, fov_mm=fov_mm)
    ap, lateral = drr(volume.hu, volume.spacing)
    return ap if view == "frontal" else lateral


def _pick(items, count, seed):
    if count is None or int(count) >= len(items):
        return list(items)
    chosen = np.random.default_rng(seed).choice(len(items), int(count), replace=False)
    return [items[i] for i in sorted(chosen)]


def _folder_images(folder):
    from xprospect_tf.data.dicom import is_dicom_file

    found = []
    for path in sorted_files(folder):
        name = os.path.basename(path)
        if name.lower().endswith(IMAGE_SUFFIXES) or (
                not name.startswith(".") and "." not in name and is_dicom_file(path)):
            found.append(path)
    return found


def _read(path):
    from xprospect_tf.data.readers import read_xray

    image = read_xray(path)
    if image.ndim != 2:
        raise InputError(f"{path}: expected a 2D radiograph, got shape {image.shape}")
    return image
