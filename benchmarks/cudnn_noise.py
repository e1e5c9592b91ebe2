"""How far cuDNN's run-to-run noise moves `bench learner`'s maths check, on a CUDA machine.

Runs the check's 20 updates (its own learners, batches and drift measure) for eager fp32
twice, for the captured update and for channels-last, with cuDNN's default algorithms and
then with its deterministic ones, and prints each one's drift from the first eager run.
Run from the repository root: `python3 benchmarks/cudnn_noise.py`. The README's figures
came from it on an H200 on 2026-11-27, when `channels_last` was still a bool (`True` there).
"""

import torch

from atari_dqn.bench import learner as bl

dev = torch.device("cuda")
batches = bl._batches(32, 4, dev)


def run(**mode):
    learner = bl._learner(dev, 16, **mode)
    bl._losses(learner.update, batches, 20)
    return learner.online


start = bl._flat(bl._learner(dev, 16).online)
for det in (False, True):
    torch.backends.cudnn.deterministic = det
    ref = run()
    for name, mode in [
        ("fp32 again", {}),
        ("cuda_graph", {"cuda_graph": "true"}),
        ("channels_last", {"channels_last": "true"}),
    ]:
        net = run(**mode)
        diff = (bl._flat(net) - bl._flat(ref)).abs().max().item()
        drift = bl._drift(net, ref, start)
        print(f"deterministic={det} {name}: drift {drift:.3g} max|dw| {diff:.3g}", flush=True)
