"""tinydiff.nn: a small neural-network library with hand-written backward passes (no autograd, no diffusion here)."""

from tinydiff.nn.module import Module, Sequential
from tinydiff.nn.linear import Linear
from tinydiff.nn.activations import GELU, Identity, ReLU, SiLU
from tinydiff.nn.dropout import Dropout
from tinydiff.nn.norm import LayerNorm
from tinydiff.nn.embeddings import Embedding, SinusoidalEmbedding
from tinydiff.nn.losses import mse_loss
from tinydiff.nn.optim import EMA, SGD, Adam, AdamW, clip_grad_norm, warmup_cosine_lr
from tinydiff.nn.gradcheck import GradCheckReport, assert_gradients_ok, check_module
from tinydiff.nn.conv import AvgPool2d, Conv2d, Upsample
from tinydiff.nn.norm import GroupNorm
from tinydiff.nn.attention import SelfAttention2d
from tinydiff.nn.blocks import ResBlock
