"""The learner benchmark's peer, the bare torch loop: the same update as the learner it
copies, so that timing one beside the other compares the same work."""

from __future__ import annotations

import torch

from atari_dqn.bench.learner import BareLoop, fixed_batches, learner_of
from atari_dqn.config import Config, LearnerConfig
from atari_dqn.configfile import PRESETS, load_config

EAGER_CPU = dict(device="cpu", torch_threads=1, compile=False, channels_last="false")


def test_on_the_cpu_the_bare_loop_takes_the_nature_learners_steps_on_the_same_batches():
    threads = torch.get_num_threads()
    try:
        torch.manual_seed(0)
        learner = learner_of(Config(learner=LearnerConfig(**EAGER_CPU)))
        bare = BareLoop(learner)
        assert bare.online is not learner.online and bare.target is not bare.online
        for batch in fixed_batches(32, 3, torch.device("cpu")):
            ours, theirs = learner.update(batch)["loss"], bare.update(batch)["loss"]
            torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=0)
        for a, b in zip(learner.online.parameters(), bare.online.parameters(), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    finally:
        torch.set_num_threads(threads)


def test_at_the_drq_eps_preset_the_bare_loop_bootstraps_from_itself_with_adam_as_set():
    threads = torch.get_num_threads()
    try:
        cfg = load_config(PRESETS / "atari100k" / "drq_eps.yaml", ["learner.compile=false"])
        bare = BareLoop(learner_of(cfg))
    finally:
        torch.set_num_threads(threads)
    assert bare.target is bare.online  # DrQ(ε)'s target is synced at every update
    assert type(bare.opt) is torch.optim.Adam
    assert bare.opt.defaults["lr"] == cfg.learner.learning_rate
    assert bare.opt.defaults["eps"] == 1.5e-4
