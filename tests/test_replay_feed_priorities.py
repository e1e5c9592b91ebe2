"""The feeds and prioritized replay: `next(beta)` draws with the learner's beta, and
`set_priorities` brings a batch's |TD errors| back to the ring, at once (Sampler) or at a
fixed later point without a host sync (Prefetcher), through checkpoints too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from replay_reference import FamilySpec, scripted_step

from atari_dqn.errors import ReplayError
from atari_dqn.replay import sumtree
from atari_dqn.replay.batch import Batch, empty_batch
from atari_dqn.replay.feed import Prefetcher, Sampler
from atari_dqn.replay.ring import FrameRing

SPEC = FamilySpec(2, 4, 3, 40, 0.99, True, [])
FIELDS = ("frames", "action", "reward", "discount", "weight", "index")  # Batch's, in order
BETAS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def td_of(index: np.ndarray, k: int) -> np.ndarray:
    """A fixed |TD error| for each drawn transition at update k, exact in float32."""
    return (index % 7) * 0.5 + k


def copied(batch: Batch) -> tuple[np.ndarray, ...]:
    """Copies of a batch's fields (numpy arrays or CPU tensors) as numpy arrays."""
    return tuple(np.asarray(f.numpy() if isinstance(f, torch.Tensor) else f).copy() for f in batch)


def like(ring: FrameRing) -> FrameRing:
    """An empty ring of `ring`'s spec and settings (another seed: a loaded state sets it)."""
    return FrameRing(**ring.spec(), **ring.settings(), seed=99)


def assert_same(got: Batch, want: tuple[np.ndarray, ...]) -> None:
    for name, g, w in zip(FIELDS, copied(got), want, strict=True):
        np.testing.assert_array_equal(g, w, err_msg=name)


def prefetcher_promise(ring: FrameRing, first_step: int, rounds: int) -> list[tuple]:
    """What a Prefetcher must hand out in the loop order next(k, beta_k) -> set_priorities(k)
    -> step k, by plain ring calls: next(k) hands out the batch drawn at next(k-1), writes
    batch k-1's priorities, then draws the next one with beta_k (the first call draws its
    own batch and the next one, with beta_0)."""

    def draw(beta: float) -> tuple[Batch, np.ndarray]:
        batch = empty_batch(8, ring.window)
        return batch, ring.sample_into(batch, beta)

    handed, ahead = draw(BETAS[0]), draw(BETAS[0])
    out = []
    for k in range(rounds):
        if k:
            (last, last_drawn), handed = handed, ahead
            ring.update_priorities(last.index, td_of(last.index, first_step + k - 1), last_drawn)
            ahead = draw(BETAS[k])
        out.append(copied(handed[0]))
        scripted_step(ring, first_step + k)
    return out


def run_feed(feed, ring: FrameRing, first_step: int, rounds: int) -> list[tuple]:
    """The loop's order: next(k, beta_k), set_priorities(k), step k; the batches handed out."""
    out = []
    for k in range(rounds):
        batch = feed.next(BETAS[k])
        out.append(copied(batch))
        feed.set_priorities(torch.from_numpy(td_of(batch.index.numpy(), first_step + k)))
        scripted_step(ring, first_step + k)
    return out


def test_the_prefetcher_writes_batch_k_priorities_before_it_draws_batch_k_plus_2():
    ring, _ = SPEC.filled(60, seed=4)
    twin, _ = SPEC.filled(60, seed=4)
    promised = prefetcher_promise(twin, 0, len(BETAS))
    with Prefetcher(ring, 8, "cpu") as feed:
        handed = run_feed(feed, ring, 0, len(BETAS))
    for got, want in zip(handed, promised, strict=True):
        for g, w, name in zip(got, want, FIELDS, strict=True):
            np.testing.assert_array_equal(g, w, err_msg=name)
    assert len({tuple(h[4]) for h in handed}) > 1  # the weights depend on the betas and TDs


def test_the_sampler_writes_priorities_at_once_so_the_next_draw_sees_them():
    ring, _ = SPEC.filled(60, seed=4)
    sampler = Sampler(ring, 8, "cpu")
    index = sampler.next(0.4).index.numpy().copy()
    sampler.set_priorities(torch.full((8,), 1e6))
    top = sumtree.priorities(np.array([1e6]), ring.priority_exponent, ring.priority_epsilon)[0]
    assert np.all(ring.priorities().reshape(-1)[index] == top)
    assert set(sampler.next(0.4).index.tolist()) <= set(index.tolist())


def test_a_checkpoint_carries_the_prefetched_batch_and_its_unwritten_priorities():
    ring, _ = SPEC.filled(60, seed=5)
    with Prefetcher(ring, 8, "cpu") as feed:
        run_feed(feed, ring, 0, 3)
        pending = feed.pending()  # the batch drawn ahead, then batch 2's |TD| not yet written
        state = ring.state_dict()
        state["arrays"] = {k: v.copy() for k, v in state["arrays"].items()}
        uninterrupted = run_feed(feed, ring, 3, 4)
    assert len(pending) == 10
    restored = like(ring)
    restored.load_state_dict(state)
    with Prefetcher(restored, 8, "cpu", pending=pending) as feed:
        for got, want in zip(run_feed(feed, restored, 3, 4), uninterrupted, strict=True):
            for g, w, name in zip(got, want, FIELDS, strict=True):
                np.testing.assert_array_equal(g, w, err_msg=name)
    # A Sampler resumed from the same checkpoint hands out that batch and writes those
    # priorities at its first next(), where the Prefetcher would have.
    by_sampler, expected = like(ring), like(ring)
    by_sampler.load_state_dict(state)
    expected.load_state_dict(state)
    expected.update_priorities(*(t.numpy() for t in pending[7:]))
    first = Sampler(by_sampler, 8, "cpu", pending=pending).next(0.5)
    np.testing.assert_array_equal(first.frames.numpy(), pending[0].numpy())
    np.testing.assert_array_equal(by_sampler.priorities(), expected.priorities())


@pytest.mark.parametrize("feed_type", [Sampler, Prefetcher])
def test_a_uniform_rings_feed_ignores_priorities(feed_type):
    spec = FamilySpec(2, 4, 3, 40, 0.99, False, [])
    (ring, _), (twin, _) = spec.filled(60, seed=4), spec.filled(60, seed=4)
    feed, plain = feed_type(ring, 8, "cpu"), feed_type(twin, 8, "cpu")
    for k in range(4):
        batch = feed.next(0.4)
        assert_same(batch, copied(plain.next(0.4)))
        assert batch.weight.tolist() == [1.0] * 8
        feed.set_priorities(torch.ones(8))
        scripted_step(ring, k)
        scripted_step(twin, k)
    assert feed.pending() is None or feed.pending()[0].shape == (8, 8, 2, 2)
    feed.close()
    plain.close()


def test_priorities_are_refused_before_a_batch_or_in_the_wrong_shape():
    ring, _ = SPEC.filled(60, seed=4)
    for feed_type in (Sampler, Prefetcher):
        feed = feed_type(ring, 8, "cpu")
        if feed_type is Prefetcher:
            with pytest.raises(ReplayError, match="before next"):
                feed.set_priorities(torch.ones(8))
        feed.next()
        with pytest.raises(ReplayError, match=r"shape \(8,\)"):
            feed.set_priorities(torch.ones(4))
        feed.close()


def test_prioritized_batches_reach_an_accelerator_with_their_weights_and_indices():
    # The non-CPU path of the feeds, on torch's "meta" device (no GPU here).
    ring, _ = SPEC.filled(60, seed=4)
    with Prefetcher(ring, 8, "meta") as prefetcher:
        prefetched = prefetcher.next(0.4)
        prefetcher.next(0.5)
    sampled = Sampler(ring, 8, "meta").next(0.4)
    for tensors in (prefetched, sampled):
        obs, next_obs = tensors.stacks(4)
        assert obs.device.type == next_obs.device.type == "meta"
        assert tensors.frames.shape == (8, 8, 2, 2)  # 3-step windows: both stacks
        assert tensors.weight.device.type == tensors.index.device.type == "meta"
        assert tensors.weight.dtype == torch.float32 and tensors.index.dtype == torch.int64


@pytest.mark.cuda
def test_the_prefetcher_brings_cuda_priorities_back_in_the_promised_order():
    ring, _ = SPEC.filled(60, seed=4)
    twin, _ = SPEC.filled(60, seed=4)
    promised = prefetcher_promise(twin, 0, len(BETAS))
    with Prefetcher(ring, 8, "cuda") as feed:
        for k, want in enumerate(promised):
            batch = feed.next(BETAS[k])
            for g, w, name in zip(batch, want, FIELDS, strict=True):
                np.testing.assert_array_equal(g.cpu().numpy(), w, err_msg=name)
            td = td_of(batch.index, k).to(torch.float32)  # on the GPU, never synced here
            feed.set_priorities(td)
            scripted_step(ring, k)
