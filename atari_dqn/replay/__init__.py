"""The replay memory: a frame ring that stores each frame once (`ring`, its arrays in
`storage`, its arguments checked by `arguments`), its Numba kernels (`kernels` for writing
and validity, `gather` for sampling and priorities, `rng`, and the prioritized replay's
`sumtree`), its file format (`ringfile`), and the feed that carries its batches to the
learner's device (`feed`)."""
