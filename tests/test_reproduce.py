"""reproduce.py's headline number: the sample-efficiency ratio read off two mean curves."""
import numpy as np

from reproduce import efficiency_ratio


def test_ratio_is_ppo_trajectories_over_archer_trajectories_to_ppo_best():
    # PPO's best mean is -13.0, first reached at 2000 games; ArCHer first reaches >= -13.0 at 200.
    ppo = (np.array([0, 1000, 2000, 3000]), np.array([-15.0, -14.0, -13.0, -13.5]))
    archer = (np.array([0, 100, 200, 300]), np.array([-15.0, -14.0, -12.9, -12.0]))
    assert efficiency_ratio({"ppo": ppo, "archer": archer}).endswith(": 10.0x")


def test_ratio_says_when_archer_never_reaches_ppo_best():
    ppo = (np.array([0, 1000]), np.array([-15.0, -10.0]))
    archer = (np.array([0, 100]), np.array([-15.0, -14.0]))
    assert "never reached" in efficiency_ratio({"ppo": ppo, "archer": archer})
    assert "needs both" in efficiency_ratio({"archer": archer})
