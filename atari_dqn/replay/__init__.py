"""The replay memory: a frame ring that stores each frame once (`ring`), its Numba kernels
(`kernels`), its file format (`ringfile`), and the feed that carries its batches to the
learner's device (`feed`)."""
