"""Noise schedules of denoising diffusion, as pure numpy functions.

Variance-preserving diffusion (Ho et al., 2020, "DDPM"): a clean volume
``x0`` (scaled to [-1, 1]) is noised at step ``t`` in ``0 .. T-1`` to::

    x_t = signal(t) * x0 + noise(t) * eps,   eps ~ N(0, I)
    signal(t) = sqrt(alpha_bar(t)),  noise(t) = sqrt(1 - alpha_bar(t))

so ``signal^2 + noise^2 = 1`` at every step. Two schedules of ``alpha_bar``:

- ``linear``: DDPM's betas, linear from 1e-4 to 0.02 over 1000 steps (scaled
  by ``1000 / T`` for other ``T``, as in Nichol & Dhariwal's code), and
  ``alpha_bar(t) = prod_{s <= t} (1 - beta_s)``;
- ``cosine``: Nichol & Dhariwal (2021), ``alpha_bar(t) = f(t+1) / f(0)`` with
  ``f(u) = cos(((u / T) + s) / (1 + s) * pi / 2)^2``, ``s = 0.008``, betas
  clipped at 0.999. The X-ray2CTPA code (Cahan et al., 2024, built on Medical
  Diffusion) trains with the cosine schedule and ``T = 1000``.

Every function here is numpy in, numpy out; the model turns the arrays into
constants once (:class:`xprospect_tf.models.diffusion.DiffusionModel`).
"""

import math

import numpy as np

from xprospect_tf.errors import ConfigError

COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s
MAX_BETA = 0.999  # Nichol & Dhariwal clip the cosine schedule's betas here
LINEAR_BETAS = (1e-4, 0.02)  # DDPM's betas at T = 1000


def linear_alpha_bars(timesteps):
    """``alpha_bar`` of DDPM's linear beta schedule over ``timesteps`` steps.

    Example:
        >>> a = linear_alpha_bars(1000)
        >>> round(float(1 - a[0]), 6), bool(np.all(np.diff(a) < 0))
        (0.0001, True)
    """
    scale = 1000.0 / timesteps
    betas = np.linspace(scale * LINEAR_BETAS[0], scale * LINEAR_BETAS[1], timesteps, dtype=np.float64)
    return np.cumprod(1.0 - np.minimum(betas, MAX_BETA))


def cosine_alpha_bars(timesteps, s=COSINE_OFFSET):
    """``alpha_bar`` of Nichol & Dhariwal's cosine schedule over ``timesteps`` steps.

    Example:
        >>> a = cosine_alpha_bars(1000)
        >>> bool(a[0] > 0.9999), bool(a[-1] < 1e-4)
        (True, True)
    """
    u = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    f = np.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], MAX_BETA)
    return np.cumprod(1.0 - betas)


SCHEDULES = {"linear": linear_alpha_bars, "cosine": cosine_alpha_bars}
"""Schedule name (``diffusion.schedule``) -> ``timesteps -> alpha_bar`` array."""


def shift_snr(alpha_bar, shift):
    """Scale the signal-to-noise ratio ``alpha_bar / (1 - alpha_bar)`` of every step by ``shift``.

    Hoogeboom et al. (2023, "simple diffusion") shift the schedule of large
    images toward noise: averaging ``k`` voxels raises a block's SNR ``k``-fold,
    so at a given SNR a big volume still shows its coarse anatomy and the model
    never has to take it from the condition. ``shift < 1`` spends more of the
    training steps where the coarse anatomy is hidden (ours for the diffusion
    rows; X-ray2CTPA does not shift).

    Example:
        >>> a = shift_snr(np.array([0.5, 0.8]), 0.25)
        >>> (a / (1 - a)).round(6).tolist()
        [0.25, 1.0]
    """
    snr = np.asarray(alpha_bar, dtype=np.float64) / (1.0 - np.asarray(alpha_bar, dtype=np.float64))
    return shift * snr / (1.0 + shift * snr)


def alpha_bars(schedule, timesteps, shift=1.0):
    """``alpha_bar(t)`` for ``t = 0 .. timesteps-1`` of the named schedule (float64).

    ``shift`` scales every step's signal-to-noise ratio (:func:`shift_snr`); 1 keeps the schedule.

    Raises:
        ConfigError: an unknown schedule, fewer than 2 steps or a shift <= 0.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"diffusion.schedule = {schedule!r}: use one of {', '.join(SCHEDULES)}")
    if int(timesteps) < 2:
        raise ConfigError(f"diffusion.timesteps = {timesteps!r}: use at least 2 steps")
    if not shift > 0:
        raise ConfigError(f"diffusion.snr_shift = {shift!r}: use a number > 0 (1: no shift)")
    a = SCHEDULES[schedule](int(timesteps))
    return a if shift == 1 else shift_snr(a, float(shift))


def signal_noise(alpha_bar):
    """``(signal, noise)`` = ``(sqrt(alpha_bar), sqrt(1 - alpha_bar))``."""
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
    return np.sqrt(alpha_bar), np.sqrt(1.0 - alpha_bar)


def q_sample(x0, alpha_bar_t, eps):
    """Sample ``q(x_t | x0)``: ``sqrt(a) x0 + sqrt(1 - a) eps`` (numpy reference).

    Example:
        >>> q_sample(np.ones(2), 0.64, np.zeros(2)).tolist()
        [0.8, 0.8]
    """
    signal, noise = signal_noise(alpha_bar_t)
    return signal * np.asarray(x0) + noise * np.asarray(eps)


def sampling_timesteps(timesteps, steps):
    """The ``steps`` training steps a sampler visits, from ``T - 1`` down, evenly spaced.

    With ``steps == timesteps`` every step is visited (DDPM's ancestral sampler).

    Example:
        >>> sampling_timesteps(1000, 4).tolist()
        [999, 666, 333, 0]
        >>> sampling_timesteps(3, 3).tolist()
        [2, 1, 0]
    """
    steps = int(steps)
    if not 1 <= steps <= timesteps:
        raise ConfigError(f"sampling steps = {steps}: use 1 .. {timesteps} (the training steps)")
    return np.unique(np.round(np.linspace(0, timesteps - 1, steps)).astype(np.int64))[::-1]


def step_coefficients(alpha_bars_, timesteps_, eta):
    """Per-step coefficients of the DDIM update (Song et al., 2021, eq. 12).

    From step ``t`` to the previous visited step ``p`` (``alpha_bar = 1`` after the last)::

        x_p = sqrt(a_p) * x0_hat + sqrt(1 - a_p - sigma^2) * eps_hat + sigma * z
        sigma = eta * sqrt((1 - a_p) / (1 - a_t)) * sqrt(1 - a_t / a_p)

    ``eta = 0`` is deterministic DDIM; ``eta = 1`` with every step visited is
    DDPM's ancestral sampler with the posterior variance ``beta~_t``.

    Args:
        alpha_bars_: the schedule's ``alpha_bar`` (length T).
        timesteps_: the visited steps, descending (:func:`sampling_timesteps`).
        eta: 0 (DDIM) .. 1 (DDPM).

    Returns:
        float64 arrays ``(a_t, a_prev, sigma)`` of the visited steps' length.

    Example:
        >>> a = cosine_alpha_bars(10)
        >>> a_t, a_p, sigma = step_coefficients(a, sampling_timesteps(10, 10), eta=1.0)
        >>> beta = 1 - a_t / a_p  # DDPM's beta_t, and its posterior variance beta~_t:
        >>> bool(np.allclose(sigma[:-1] ** 2, (1 - a_p[:-1]) / (1 - a_t[:-1]) * beta[:-1]))
        True
    """
    alpha_bars_ = np.asarray(alpha_bars_, dtype=np.float64)
    timesteps_ = np.asarray(timesteps_, dtype=np.int64)
    a_t = alpha_bars_[timesteps_]
    a_prev = np.append(alpha_bars_[timesteps_[1:]], 1.0)
    sigma = eta * np.sqrt((1 - a_prev) / (1 - a_t)) * np.sqrt(np.clip(1 - a_t / a_prev, 0, None))
    return a_t, a_prev, sigma
