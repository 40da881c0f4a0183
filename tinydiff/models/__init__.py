from tinydiff.models.mlp import MLPDenoiser
