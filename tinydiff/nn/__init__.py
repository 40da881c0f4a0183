"""tinydiff.nn: a small neural-network library with hand-written backward passes (no autograd, no diffusion here)."""

from tinydiff.nn.module import Module, Sequential
