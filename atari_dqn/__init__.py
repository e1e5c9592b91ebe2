"""atari-dqn: a fast, paper-faithful DQN (Mnih et al., Nature 2015) for Atari games."""

__version__ = "0.1.0"
