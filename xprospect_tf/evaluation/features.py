"""Fixed random-weight 3D features: a perceptual distance, a Fréchet distance and a perceptual loss.

X-ray2CTPA (Cahan et al. 2024, "Quantitative Results", Tables 1, 2 and 4)
reports FVD, computed on I3D features, and LPIPS, and trains with an LPIPS
loss built on the 2D RadImageNet ResNet-50 (its methods, "loss functions").
Neither network's weights can be downloaded here (no network at run time), and no pretrained 3D
medical network ships with this project. This module therefore extracts
features with a small 3D convolutional network whose weights are random but
fixed (:func:`feature_network`): Zhang et al. 2018 ("The unreasonable
effectiveness of deep features as a perceptual metric", section 4) report that
even randomly initialized networks' features carry perceptual signal.

On these features:

- :func:`perceptual_distance`: an LPIPS-style distance between two volumes
  (one case at a time, like :mod:`xprospect_tf.evaluation.metrics`);
- :func:`volume_features` and :func:`frechet_distance`: the Fréchet distance
  between the feature distributions of two sets of volumes, "FD-rand";
- :func:`perceptual_loss`: the LPIPS-style distance as a differentiable
  training loss (``keras.ops`` only, any backend).

The numbers are comparable only between runs of this project (same seed, same
widths), never with the paper's LPIPS or FVD values: the network, its weights,
its dimensionality (3D here, 2D slices and video there) and its training (none
here) all differ. FD-rand is not FVD.

Two seeds: the metric uses the network of :data:`FEATURE_SEED`, the training
loss the network of :data:`LOSS_FEATURE_SEED`. A model optimized to match a
network's features learns to fool exactly those features, so a metric read
from the same network would be biased in that model's favour; a network with
other random weights measures the same kind of perceptual difference without
having been optimized against.

The weights are drawn with numpy's PCG64 generator (not ``keras.random``,
whose streams differ between the TensorFlow and JAX backends), so a seed gives
bit-identical weights in every process and on every backend.
"""

import logging
import math
import warnings

import keras
import numpy as np
from keras import ops
from scipy import linalg

from xprospect_tf.errors import ConfigError, InputError

log = logging.getLogger(__name__)

FEATURE_SEED = 0  # the evaluation metric's network
LOSS_FEATURE_SEED = 1  # the training loss's network: other weights than the metric's
FEATURE_WIDTHS = (8, 16, 32)  # channels of each stage's feature map
LEAKY_SLOPE = 0.2
EPS = 1e-10  # as LPIPS' normalize_tensor: f / (||f|| + eps)
IMAGINARY_TOLERANCE = 1e-3  # larger imaginary parts of sqrtm(Ca Cb) are logged, as pytorch-fid's check

_cached_networks = {}  # seed -> the default-width network (built once per process)


@keras.saving.register_keras_serializable(package="xprospect_tf")
class _NumpyHeNormal(keras.initializers.Initializer):
    """He-normal weights drawn with numpy: ``N(0, 2 / fan_in)`` from ``default_rng(seed)``.

    Unlike ``keras.initializers.HeNormal(seed=...)``, the values do not depend on
    the Keras backend. ``fan_in`` is the product of all but the last axis (the
    kernel's ``k^3 * in_channels``). Drawn in float64, then cast.
    """

    def __init__(self, seed):
        self.seed = tuple(int(s) for s in seed)

    def __call__(self, shape, dtype=None):
        fan_in = math.prod(shape[:-1])
        values = np.random.default_rng(self.seed).standard_normal(shape) * math.sqrt(2.0 / fan_in)
        return ops.convert_to_tensor(values.astype(dtype or "float32"))

    def get_config(self):
        return {"seed": list(self.seed)}


@keras.saving.register_keras_serializable(package="xprospect_tf")
class _ToSigned(keras.layers.Layer):
    """``2 x - 1``: [0, 1] to [-1, 1] (``keras.layers.Rescaling`` needs TensorFlow under JAX)."""

    def call(self, inputs):
        return 2.0 * inputs - 1.0

    def compute_output_shape(self, input_shape):
        return input_shape


def feature_network(seed=FEATURE_SEED, widths=FEATURE_WIDTHS, size=None):
    """A frozen 3D convolutional network with fixed random weights, returning one feature map per stage.

    Design (ours; the paper's networks cannot be downloaded, see the module
    docstring): the input volume in [0, 1] is mapped to [-1, 1] (as LPIPS
    scales its inputs), then each stage ``i`` is ``Conv3D(widths[i], 3x3x3,
    stride 1, 'same', no bias) -> LeakyReLU(0.2)``, and its output is stage
    ``i``'s feature map; ``AveragePooling3D(2)`` halves the resolution before the
    next stage. Kernel ``i`` is He-normal, ``N(0, 2 / (27 * in_channels))``,
    drawn with ``numpy.random.default_rng((seed, i))``: the same seed gives
    bit-identical weights in every process and on every Keras backend. The
    weights are never trained (``trainable=False``) and the layers compute in
    float32 whatever the global dtype policy.

    Random weights are enough for a perceptual signal: Zhang et al. 2018
    ("The unreasonable effectiveness of deep features as a perceptual metric")
    find that even randomly initialized networks' features track perceptual
    judgements far better than pixel distances. Values computed on this network
    are comparable only with values from the same ``seed`` and ``widths``.

    Args:
        seed: non-negative integer; :data:`FEATURE_SEED` for metrics,
            :data:`LOSS_FEATURE_SEED` for the training loss.
        widths: channels of each stage, one stage per entry. Volumes need at
            least ``2^(len(widths) - 1)`` voxels per side.
        size: the cube side the network is built for (``None``: any; a fixed
            side lets the tensor-size guard count its activations).

    Returns:
        a functional ``keras.Model`` from ``(batch, depth, height, width, 1)`` to a
        list of ``len(widths)`` tensors; stage ``i`` has shape
        ``(batch, depth // 2^i, height // 2^i, width // 2^i, widths[i])``.

    Example:
        >>> net = feature_network(seed=0, widths=(2, 4))
        >>> [tuple(f.shape) for f in net(np.zeros((1, 8, 8, 8, 1), "float32"))]
        [(1, 8, 8, 8, 2), (1, 4, 4, 4, 4)]
        >>> net.trainable_weights
        []
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"feature_network: seed must be a non-negative integer; got {seed!r}")
    widths = tuple(widths)
    if not widths or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in widths):
        raise ConfigError(f"feature_network: widths must be one or more positive integers; got {widths!r}")

    volume = keras.Input(shape=(size, size, size, 1), name="volume")
    x = _ToSigned(dtype="float32", name="to_signed")(volume)
    features = []
    for i, width in enumerate(widths):
        if i > 0:
            x = keras.layers.AveragePooling3D(2, dtype="float32", name=f"stage{i}_pool")(x)
        x = keras.layers.Conv3D(
            int(width), 3, padding="same", use_bias=False,
            kernel_initializer=_NumpyHeNormal((seed, i)), dtype="float32", name=f"stage{i}_conv",
        )(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype="float32", name=f"stage{i}_act")(x)
        features.append(x)
    model = keras.Model(volume, features, name=f"feature_network_seed{seed}")
    model.trainable = False
    return model


def _default_network(network):
    if network is not None:
        return network
    if FEATURE_SEED not in _cached_networks:
        _cached_networks[FEATURE_SEED] = feature_network(FEATURE_SEED)
    return _cached_networks[FEATURE_SEED]


def _check_size(spatial_shape, network, what):
    smallest = 2 ** (len(network.outputs) - 1)
    if min(spatial_shape) < smallest:
        raise InputError(
            f"{what}: the feature network has {len(network.outputs)} stages and needs volumes of at least "
            f"{smallest} voxels per side; got spatial shape {tuple(spatial_shape)}"
        )


def _volume(array, what):
    """One volume as float32 ``(D, H, W, 1)``."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 4 and array.shape[-1] == 1:
        return array
    if array.ndim == 3:
        return array[..., None]
    raise InputError(f"{what}: expected a volume of shape (D, H, W) or (D, H, W, 1); got shape {array.shape}")


def _feature_maps(network, batch):
    """The network's feature maps of a float32 batch ``(B, D, H, W, 1)``, as float64 numpy arrays."""
    return [ops.convert_to_numpy(f).astype(np.float64) for f in network(batch, training=False)]


def _unit_normalize(features, backend):
    """Each voxel's feature vector divided by its L2 norm over channels (+ :data:`EPS`).

    The squared norm is floored at ``EPS^2`` before the square root, so the
    gradient stays finite at an all-zero feature vector (the derivative of
    ``sqrt`` at 0 is infinite: NaN under JAX); for norms above ``EPS`` this is
    LPIPS' ``f / (||f|| + eps)`` exactly. As in LPIPS, the gradient grows as
    ``1 / ||f||`` for small norms, up to ``1 / (2 EPS)`` at an exactly zero
    vector (with this network: a 3x3x3 block of exactly 0.5 in the input).
    ``backend`` is ``numpy`` or ``keras.ops``.
    """
    squared_norm = backend.sum(backend.square(features), axis=-1, keepdims=True)
    return features / (backend.sqrt(backend.maximum(squared_norm, EPS**2)) + EPS)


def perceptual_distance(pred, truth, network=None):
    """LPIPS-style distance between two volumes, on the features of :func:`feature_network`.

    For each stage, each voxel's feature vector is unit-normalized over
    channels (divided by its L2 norm + ``1e-10``); the squared difference of
    the two volumes' normalized features is summed over channels and averaged
    over the stage's voxels. The distance is the plain mean over stages (LPIPS
    learns per-channel weights; there is nothing to learn them from here, so
    every stage and channel weighs the same). 0 for identical volumes, at most 4.

    Not comparable with the paper's LPIPS (2D RadImageNet ResNet-50): see the
    module docstring.

    Args:
        pred: predicted volume, ``(D, H, W)`` or ``(D, H, W, 1)``, values in [0, 1].
        truth: ground-truth volume of the same shape.
        network: a :func:`feature_network`; ``None`` uses (and caches) the
            network of :data:`FEATURE_SEED` with the default widths.

    Returns:
        float.

    Example:
        >>> v = np.random.default_rng(0).random((8, 8, 8))
        >>> abs(perceptual_distance(v, v)) < 1e-12  # 0 up to rounding (7e-16 on an AVX2 CPU)
        True
        >>> perceptual_distance(v, 1 - v) > 0
        True
    """
    pred_array, truth_array = np.asarray(pred), np.asarray(truth)
    if pred_array.shape != truth_array.shape:
        raise InputError(
            f"prediction shape {pred_array.shape} differs from ground-truth shape {truth_array.shape}; "
            "compare volumes of the same size"
        )
    network = _default_network(network)
    pred_volume = _volume(pred_array, "perceptual_distance")
    truth_volume = _volume(truth_array, "perceptual_distance")
    _check_size(pred_volume.shape[:3], network, "perceptual_distance")
    maps = _feature_maps(network, np.stack([pred_volume, truth_volume]))
    per_stage = [
        np.mean(np.sum(np.square(_unit_normalize(f[0], np) - _unit_normalize(f[1], np)), axis=-1))
        for f in maps
    ]
    return float(np.mean(per_stage))


def volume_features(volumes, network=None, batch_size=4):
    """One feature vector per volume: every stage's feature map averaged over space, concatenated.

    Args:
        volumes: ``N`` volumes of one shape: an array ``(N, D, H, W)`` or
            ``(N, D, H, W, 1)``, or a sequence of ``(D, H, W)`` or
            ``(D, H, W, 1)`` arrays; values in [0, 1].
        network: a :func:`feature_network`; ``None`` uses the network of
            :data:`FEATURE_SEED`.
        batch_size: volumes per network call (memory, not results).

    Returns:
        float64 array ``(N, F)``, ``F = sum(widths)`` (56 for the default
        network), stage 0's channels first.

    Example:
        >>> volume_features(np.zeros((3, 8, 8, 8))).shape
        (3, 56)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"volume_features: batch_size must be a positive integer; got {batch_size!r}")
    if isinstance(volumes, (list, tuple)):
        stack = [_volume(v, f"volume_features (volume {i})") for i, v in enumerate(volumes)]
        if len({v.shape for v in stack}) > 1:
            raise InputError(
                f"volume_features: the volumes differ in shape ({sorted({v.shape for v in stack})}); "
                "give volumes of one shape"
            )
        batch = np.stack(stack) if stack else np.zeros((0, 1, 1, 1, 1), np.float32)
    else:
        batch = np.asarray(volumes, dtype=np.float32)
        if batch.ndim == 4:
            batch = batch[..., None]
        if batch.ndim != 5 or batch.shape[-1] != 1:
            raise InputError(
                "volume_features: expected volumes of shape (N, D, H, W) or (N, D, H, W, 1); "
                f"got shape {batch.shape}"
            )
    if len(batch) == 0:
        raise InputError("volume_features: no volumes given")
    network = _default_network(network)
    _check_size(batch.shape[1:4], network, "volume_features")
    rows = []
    for start in range(0, len(batch), batch_size):
        maps = _feature_maps(network, batch[start:start + batch_size])
        rows.append(np.concatenate([f.mean(axis=(1, 2, 3)) for f in maps], axis=-1))
    return np.concatenate(rows)


def _feature_set(features, what):
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise InputError(
            f"frechet_distance: {what} must be a 2-D array (samples, features); got shape {features.shape}"
        )
    if len(features) < 2:
        raise InputError(
            f"frechet_distance: {what} has {len(features)} sample(s); a covariance needs at least 2"
        )
    return features


def frechet_distance(features_a, features_b):
    """Fréchet distance between Gaussians fitted to two sets of feature vectors.

    ``||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 sqrtm(C_a C_b))``, with sample means
    and unbiased sample covariances (``ddof=1``), the formula of FID and FVD.
    On :func:`volume_features` it is "FD-rand", the Fréchet distance of this
    project's random-network features: not FVD (I3D features), and not
    comparable with the paper's FVD values.

    ``scipy.linalg.sqrtm`` may return a complex matrix from round-off; the
    imaginary part is dropped (and logged when larger than 1e-3, as
    pytorch-fid checks it), and a slightly negative result from round-off is
    returned as 0.

    With ``N`` samples of ``F`` features the covariances have rank at most
    ``N - 1``: for ``N <= F`` (e.g. a few dozen test volumes and the 56
    features of the default network) they are singular. The distance is still
    defined, but it is a noisy, sample-size-dependent estimate, as FID is with
    few images: compare only values computed with the same numbers of samples.

    Args:
        features_a: array ``(N_a, F)``, ``N_a >= 2``.
        features_b: array ``(N_b, F)``, ``N_b >= 2``.

    Returns:
        float, non-negative; 0 for identical sets.

    Example:
        >>> a = np.random.default_rng(0).standard_normal((10, 3))
        >>> frechet_distance(a, a)
        0.0
        >>> round(frechet_distance(a, a + [1.0, 2.0, 0.0]), 6)  # a shift adds its squared length
        5.0
    """
    a = _feature_set(features_a, "features_a")
    b = _feature_set(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise InputError(
            f"frechet_distance: features_a has {a.shape[1]} features per sample and features_b "
            f"{b.shape[1]} (shapes {a.shape} and {b.shape}); extract both with the same network"
        )
    mean_diff = a.mean(axis=0) - b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root_trace = _sqrt_product_trace(cov_a, cov_b)
    distance = float(mean_diff @ mean_diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * root_trace)
    return max(distance, 0.0)


def _sqrt_product_trace(cov_a, cov_b):
    """``Tr(sqrtm(C_a C_b))`` of two covariance matrices.

    ``scipy.linalg.sqrtm`` of the product is tried first; where it fails (NaN or
    infinite entries, e.g. when one set has no spread at all: a model that
    predicts the same volume for every case) the trace is taken from the
    symmetric form ``Tr(sqrt(sqrt(C_a) C_b sqrt(C_a)))``, which has the same
    eigenvalues, by symmetric eigendecomposition.
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # a singular product: handled below
        root = linalg.sqrtm(cov_a @ cov_b)
    if np.all(np.isfinite(root)):
        if np.iscomplexobj(root):
            imaginary = float(np.max(np.abs(root.imag)))
            if imaginary > IMAGINARY_TOLERANCE:
                log.warning("frechet_distance: sqrtm(C_a C_b) has imaginary parts up to %.3g; dropped", imaginary)
            root = root.real
        return float(np.trace(root))
    w, v = np.linalg.eigh(cov_a)
    half = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(half @ cov_b @ half), 0.0, None))))


def perceptual_loss(network, pred, truth):
    """:func:`perceptual_distance` of a batch as a differentiable loss (``keras.ops`` only, any backend).

    The same quantity as :func:`perceptual_distance`, per sample, averaged
    over the batch. For training, pass the network of
    :data:`LOSS_FEATURE_SEED`, not the metric's (see the module docstring);
    its weights are frozen, so only ``pred`` receives gradients. The gradient
    is finite everywhere, but large where a feature vector of ``pred`` is
    nearly zero (see ``_unit_normalize``).

    Args:
        network: a :func:`feature_network`.
        pred: predicted volumes, ``(B, D, H, W, 1)`` or ``(B, D, H, W)``, in [0, 1].
        truth: ground-truth volumes of the same shape.

    Returns:
        scalar float32 tensor.

    Example:
        >>> net = feature_network(LOSS_FEATURE_SEED, widths=(2, 4))
        >>> v = np.random.default_rng(0).random((2, 8, 8, 8, 1)).astype("float32")
        >>> abs(float(perceptual_loss(net, v, v))) < 1e-12  # 0 up to rounding
        True
    """
    pred = ops.cast(pred, "float32")
    truth = ops.cast(truth, "float32")
    if len(pred.shape) == 4:
        pred, truth = ops.expand_dims(pred, -1), ops.expand_dims(truth, -1)
    batch = ops.shape(pred)[0]
    per_stage = []
    for f in network(ops.concatenate([pred, truth], axis=0), training=False):
        f = _unit_normalize(f, ops)
        squared = ops.sum(ops.square(f[:batch] - f[batch:]), axis=-1)
        per_stage.append(ops.mean(squared, axis=(1, 2, 3)))
    return ops.mean(ops.stack(per_stage, axis=0))
