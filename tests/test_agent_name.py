"""What a run is, in words: each preset's agent and protocol as the run and report say them."""

from __future__ import annotations

import pytest

from atari_dqn.agent_name import agent_name, protocol_name
from atari_dqn.configfile import PRESETS, load_config


@pytest.mark.parametrize(
    ("preset", "agent"),
    [
        ("nature.yaml", "Nature DQN"),
        ("double.yaml", "Double DQN"),
        ("dueling.yaml", "Double DQN + dueling"),
        ("prioritized.yaml", "Double DQN + prioritized"),
        ("nstep.yaml", "DQN + 3-step"),
        ("combined.yaml", "Double DQN + dueling + prioritized + 3-step"),
        (
            "rainbow.yaml",
            "Rainbow (Double DQN + dueling + prioritized + 3-step + C51 + noisy nets)",
        ),
    ],
)
def test_each_preset_names_the_agent_it_trains(preset, agent):
    assert agent_name(load_config(PRESETS / preset)) == agent


def test_c51_and_noisy_nets_are_named_alone_and_with_others():
    nature = PRESETS / "nature.yaml"
    assert agent_name(load_config(nature, ["learner.distributional=true"])) == "DQN + C51"
    assert agent_name(load_config(nature, ["learner.noisy=true", "learner.double_dqn=true"])) == (
        "Double DQN + noisy nets"
    )


def test_the_protocol_says_how_the_score_is_measured_and_any_sticky_actions():
    assert protocol_name(load_config(PRESETS / "nature.yaml")) == (
        "scored by 30 evaluation games (epsilon 0.05, up to 30 no-ops, 18,000 frames at most)"
    )
    assert protocol_name(load_config(PRESETS / "machado2018.yaml")) == (
        "scored on its last 100 training games, sticky actions 0.25"
    )
