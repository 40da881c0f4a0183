"""Denoisers and judges built from tinydiff.nn: the MLP for points, the U-Net for images, the MNIST classifier."""

from tinydiff.models.mlp import MLPDenoiser
from tinydiff.models.unet import UNet, UNetConfig
