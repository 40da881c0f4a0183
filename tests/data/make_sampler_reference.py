"""The sampler reference: samples drawn by tinydiff's samplers before they were rebuilt on tinydiff.processes.

``tests/data/sampler_reference.npz`` was written by this script at commit 73e09b6 (the last commit with the
seven-branch sampler loop); ``tests/test_processes.py`` re-runs the same cases on today's code and asks for the
same bits. Regenerate only when a change of the numbers is intended:  python tests/data/make_sampler_reference.py
"""

from pathlib import Path

import numpy as np

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.samplers import invert, sample
from tinydiff.schedules import NoiseSchedule

MIX = GaussianMixture(weights=[0.3, 0.7], means=[[-2.0, 0.0], [2.0, 1.0]], covs=[np.eye(2) * 0.1, np.eye(2) * 0.3])
SETTINGS = [("ddpm", {}), ("ddpm", dict(steps=10, variance="fixed_large")), ("ddim", dict(steps=10)),
            ("ddim", dict(steps=10, eta=0.5)), ("dpm++2m", dict(steps=8)), ("euler", dict(steps=8)),
            ("heun", dict(steps=6)), ("ddim", dict(steps=7, timestep_spacing="leading", clip=1.5)),
            ("ddim", dict(steps=7, y=np.array([0, 1, 2, 0, 1, 0, 1, 2]), guidance_scale=2.0, null_label=2)),
            ("dpm++2m", dict(steps=5, clip="dynamic", timestep_spacing="linspace"))]


def schedules():
    return [("lin", NoiseSchedule.linear(100)), ("cos", NoiseSchedule.cosine(200)),
            ("zt", NoiseSchedule.linear(100).rescale_zero_terminal_snr())]


def run() -> dict:
    """name -> array, for every (schedule, prediction type, sampler setting) case and an inversion per schedule."""
    out = {}
    for sname, s in schedules():
        for p in ("epsilon", "sample", "v_prediction"):
            if sname == "zt" and p == "epsilon":
                continue
            m = GaussianMixtureDenoiser(MIX, s, p)
            for method, kw in SETTINGS:
                if sname == "zt" and method in ("euler", "heun"):
                    kw = dict(kw, sigma_max=50.0)
                x, tr = sample(m, (8, 2), s, method=method, rng=5, prediction_type=p, return_trajectory=True, **kw)
                key = f"{sname}_{p}_{method}_{len(out) // 2}"
                out[key], out[key + "_t"] = x, tr.t
            if sname != "zt":
                out[f"{sname}_{p}_inv"] = invert(m, MIX.sample(8, rng=1), s, steps=20, prediction_type=p,
                                                 fixed_point_iters=2)
    return out


if __name__ == "__main__":
    np.savez_compressed(Path(__file__).with_name("sampler_reference.npz"), **run())
