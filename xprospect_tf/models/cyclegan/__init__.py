"""Style transfer: the CycleGAN of XprospeCT (Paulson et al., 2024, section 3.1).

``make_cyclegan`` builds one CycleGAN per view (mean-CT projection -> X-ray
style); ``compile_cyclegan`` applies the paper's training set-up.
"""

from xprospect_tf.models.cyclegan.cycle_gan import (
    CycleGAN,
    compile_cyclegan,
    make_cyclegan,
    paper_optimizer,
)
from xprospect_tf.models.cyclegan.discriminator import build_patchgan_discriminator
from xprospect_tf.models.cyclegan.generator import ReflectionPadding2D, build_resnet_generator

__all__ = [
    "CycleGAN",
    "ReflectionPadding2D",
    "build_patchgan_discriminator",
    "build_resnet_generator",
    "compile_cyclegan",
    "make_cyclegan",
    "paper_optimizer",
]
