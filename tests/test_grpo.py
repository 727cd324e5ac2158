"""grpo.py: group advantages against hand computations (with the std, without it, a group of equal
returns, a group of one), the sign of the clipped loss and of the k3 KL, what every token of a
game gets (whole game and --per_turn), that a group plays one secret, and the script end to end:
in a subprocess, exact resume, bad input."""
import csv
import math
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import envs  # noqa: E402
import grpo  # noqa: E402
from grpo import game_advantages, group_advantages, returns_to_go  # noqa: E402
from onpolicy import k3_kl, ppo_clip_loss  # noqa: E402
from conftest import SMALL  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- group advantages by hand: groups a = [-3, -5, -7], b = [-4, -4], c = [-2, -6] ---
SCORES, GROUPS = [-3, -5, -7, -4, -4, -2, -6], ["a", "a", "a", "b", "b", "c", "c"]


def test_group_advantages_divide_by_the_groups_bessel_std():
    # a: mean -5, std sqrt((4 + 0 + 4) / 2) = 2;  c: mean -4, std sqrt((4 + 4) / 1) = 2 sqrt 2
    adv = group_advantages(SCORES, GROUPS)
    r = 1 / math.sqrt(2)
    assert adv.tolist() == pytest.approx([1.0, 0.0, -1.0, 0.0, 0.0, r, -r], abs=1e-6)


def test_group_advantages_without_the_std_are_the_centred_returns():
    adv = group_advantages(SCORES, GROUPS, scale_std=False)
    assert adv.tolist() == pytest.approx([2.0, 0.0, -2.0, 0.0, 0.0, 2.0, -2.0])


def test_a_group_of_equal_returns_or_of_one_game_gives_exactly_zero():
    adv = group_advantages([0.1, 0.1, 0.1, -9.0], [0, 0, 0, 1])  # equal; a lone game
    assert adv.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert not torch.isnan(adv).any()


def test_returns_to_go_by_hand():
    assert returns_to_go([-1.0, -1.0, 0.0], 0.5) == pytest.approx([-1.5, -1.0, 0.0])


# --- the loss's sign: a positive advantage pulls its tokens' log-probs up, a negative one down ---
def test_clipped_loss_pushes_log_probs_along_the_advantage():
    logp = torch.zeros(2, 3, requires_grad=True)
    adv = torch.tensor([[1.0, 1.0, 1.0], [-2.0, -2.0, -2.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    ppo_clip_loss(logp, torch.zeros(2, 3), adv, mask, clip=0.2).backward()
    # rho = 1 inside the clip: d loss / d logp = -A / n_tokens on real tokens, 0 on padding
    assert logp.grad.flatten().tolist() == pytest.approx([-0.2, -0.2, 0.0, 0.4, 0.4, 0.4])


def test_k3_kl_is_zero_at_the_reference_and_positive_away_from_it():
    mask = torch.ones(1, 2, dtype=torch.bool)
    ref = torch.tensor([[-1.0, -2.0]])
    assert k3_kl(ref.clone(), ref, mask).item() == 0.0
    # d = ref - logp = [0.5, -0.5]: (e^0.5 - 1.5 + e^-0.5 - 0.5) / 2
    expected = (math.exp(0.5) - 1.5 + math.exp(-0.5) - 0.5) / 2
    assert k3_kl(ref - 0.5 * torch.tensor([[1.0, -1.0]]), ref, mask).item() == pytest.approx(expected)


# --- what the tokens get: two groups of two games, one utterance cut at max_new_tokens ---
def _turns():
    # game 0 (group 0): 2 turns, right on the second; game 1 (group 0): 3 turns, the first cut
    # game 2, 3 (group 1): both 1 turn, equal returns
    spec = [(0, 0, [-1.0, 0.0], [False, False]), (1, 0, [-1.0, -1.0, 0.0], [True, False, False]),
            (2, 1, [0.0], [False]), (3, 1, [0.0], [False])]
    turns = []
    for e, g, rewards, cuts in spec:
        for k, (r, c) in enumerate(zip(rewards, cuts)):
            turns.append({"episode": e, "group": g, "turn": k, "reward": r, "truncated": c, "ids": [1] * (k + 2)})
    scored = {"logp": [torch.zeros(len(t["ids"])) for t in turns]}
    return turns, scored


def test_every_token_of_a_game_gets_its_games_group_advantage():
    turns, scored = _turns()
    args = SimpleNamespace(truncation_penalty=1.0, per_turn=False, no_std=True, gamma=0.5)
    adv, returns, stats = game_advantages(turns, scored, args)
    assert returns is None  # no value head, no value targets
    # scores: game 0: -1, game 1: -2 - 1 (the cut) = -3; group 0's mean -2 -> +1, -1; group 1: 0, 0
    want = {0: 1.0, 1: -1.0, 2: 0.0, 3: 0.0}
    for t, a in zip(turns, adv):
        assert a.shape == (len(t["ids"]),) and a.tolist() == [want[t["episode"]]] * len(t["ids"])
    assert stats["grpo/zero_advantage"] == pytest.approx(2 / 7)


def test_per_turn_compares_returns_to_go_at_the_same_turn_of_the_same_group():
    turns, scored = _turns()
    args = SimpleNamespace(truncation_penalty=1.0, per_turn=True, no_std=True, gamma=0.5)
    adv, _, _ = game_advantages(turns, scored, args)
    # returns-to-go (gamma 0.5), the cut turn at -2: game 0 [-1, 0]; game 1 [-2.5, -1, 0]
    # turn 0 of group 0: -1 vs -2.5 -> +0.75, -0.75; turn 1: 0 vs -1 -> +0.5, -0.5;
    # turn 2: game 1 alone -> 0; group 1: equal -> 0
    got = [a[0].item() for a in adv]
    assert got == pytest.approx([0.75, 0.5, -0.75, -0.5, 0.0, 0.0, 0.0])


def test_a_group_plays_one_secret_and_the_groups_draw_theirs():
    class Actor:  # asks the same question every turn; ids and truncation as an Actor keeps them
        def sample(self, observations):
            self.last_ids, self.last_truncated = [[5]] * len(observations), [False] * len(observations)
            return ["Is it an animal?"] * len(observations)

    env = envs.make("twenty_questions_subset")
    episodes, turns = grpo.play_groups(Actor(), env, 12, seed=3, group_size=3)
    secrets = [ep["secret"] for ep in episodes]
    assert all(len(set(secrets[g * 3:g * 3 + 3])) == 1 for g in range(4))
    assert len(set(secrets)) > 1  # 4 groups of a 10-object game: not all one secret
    assert [t["group"] for t in turns] == [t["episode"] // 3 for t in turns]


# --- the script itself, tiny budget ---
TINY = ["--preset", "tiny", "--env", "twenty_questions_subset", "--bc_steps", "3", "--batch_size", "4",
        "--rollout_size", "4", "--group_size", "2", "--minibatch_size", "20", "--ppo_epochs", "1",
        "--eval_every", "1", "--eval_games", "2", "--max_new_tokens", "6", "--threads", "1", *SMALL]


def rows(out_dir):
    with open(os.path.join(out_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """grpo.py as a user runs it: BC start, one iteration of 2 groups of 2 games, checkpoint."""
    out = str(tmp_path_factory.mktemp("grpo") / "run")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "grpo.py", *TINY, "--total_trajectories", "4", "--out_dir", out],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_tiny_run_writes_metrics_curve_samples_and_checkpoint(first_run):
    r = rows(first_run)
    assert [int(float(x["trajectories"])) for x in r] == [0, 4]  # the BC start, then the iteration
    for key in ["eval_return", "eval_return_greedy", "wall_s", "grpo/policy_loss", "grpo/kl_loss",
                "grpo/kl", "grpo/approx_kl", "grpo/clipfrac", "grpo/advantage_abs", "train/return"]:
        assert r[1][key] != "" and math.isfinite(float(r[1][key])), key
    assert "grpo/value_loss" not in r[1] and "ppo/policy_loss" not in r[1]
    assert float(r[1]["grpo/kl"]) == 0.0  # iteration 1 samples from the BC policy itself
    for f in ["curve.png", "samples.txt", "checkpoint.pt", "args.json", "bc.pt"]:
        assert os.path.getsize(os.path.join(first_run, f)) > 0


def test_resume_continues_exactly(first_run, tmp_path):
    split = str(tmp_path / "split")
    shutil.copytree(first_run, split)
    grpo.main([*TINY, "--total_trajectories", "8", "--out_dir", split, "--resume"])
    straight = str(tmp_path / "straight")
    grpo.main([*TINY, "--total_trajectories", "8", "--out_dir", straight])
    a, b = rows(straight), rows(split)
    assert len(a) == len(b) == 3
    for key in ["trajectories", "eval_return", "eval_return_greedy", "train/return", "grpo/policy_loss"]:
        assert [x[key] for x in a] == [x[key] for x in b], key


@pytest.mark.parametrize("flags, message", [(["--algo", "ppo"], "unknown --algo"),
                                            (["--group_size", "1"], "at least 2"),
                                            (["--group_size", "3"], "not a multiple"),
                                            (["--bc_checkpoint", "/no/such.pt"], "not found")])
def test_bad_input_is_one_line_and_exit_2(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        grpo.main([*TINY, *flags, "--out_dir", str(tmp_path / "bad")])
    assert e.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
