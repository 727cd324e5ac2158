"""benchmarks/bc_gap.py: the per-turn KL of a cloned actor against the player that wrote its data.
An actor that IS the player has gap 0 at every state; any other actor has a positive mean gap;
the command runs end to end on a tiny run and writes its table."""
import json
import math

import torch

import envs
import train_online
from benchmarks import bc_gap


class PlayerAsActor:
    """An "actor" whose log_prob is a scripted player's exact log-probability (or a flattened one)."""

    def __init__(self, player, flatten=0.0):
        self.player, self.flatten = player, flatten

    def log_prob(self, observations, utterances):
        out = []
        for o, u in zip(observations, utterances):
            probs = self.player.probs(o)
            out.append(math.log((1 - self.flatten) * probs[u] + self.flatten / len(probs)))
        return torch.tensor(out, dtype=torch.float64)


def test_the_player_itself_has_zero_gap_and_a_flattened_copy_a_positive_one():
    env = envs.make("twenty_questions_subset")
    player = envs.ScriptedPlayer(env, "mediocre")
    episodes = envs.scripted_episodes(env, "mediocre", 20, seed=5)
    exact = bc_gap.table(bc_gap.gap_rows(PlayerAsActor(player), player, episodes))
    flat = bc_gap.table(bc_gap.gap_rows(PlayerAsActor(player, flatten=0.5), player, episodes))
    n = sum(len(ep["transitions"]) for ep in episodes)
    assert exact["all"][0] == n == exact["question"][0] + exact["guess"][0]
    assert all(abs(row[3]) < 1e-9 for row in exact.values()) and exact["all"][2] > 1.0  # the floor: an entropy
    assert flat["all"][3] > 0.05 and flat["all"][2] == exact["all"][2]


def test_the_command_scores_a_tiny_run(run_main, tmp_path, capsys):
    run = tmp_path / "bc"
    assert run_main(train_online, "--preset", "tiny", "--env", "twenty_questions_subset", "--bc_steps", "2",
                    "--total_trajectories", "0", "--eval_games", "2", "--threads", "1",
                    "--out_dir", str(run)).returncode == 0
    out = tmp_path / "gap.json"
    bc_gap.main(["--run", str(run), "--games", "3", "--threads", "1", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert rows["all"]["gap"] > 0.5 and rows["turn 1"]["states"] == 3  # two BC steps: far from the player
    assert "| all |" in capsys.readouterr().out
