"""ppo.py (and onpolicy.py, which it shares with grpo.py): GAE and the clipped surrogate against hand computations, the token layout of a game
(reward on each utterance's last token, gamma only between utterances, KL and truncation in the
reward), and the script end to end: in a subprocess, exact resume, a BC start without a value
head, bad input."""
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
import onpolicy  # noqa: E402
import ppo  # noqa: E402
from onpolicy import ppo_clip_loss  # noqa: E402
from ppo import gae, token_advantages  # noqa: E402
from conftest import SMALL  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- GAE, by hand: gamma 0.9, lambda 0.8, rewards [1, 0, 2], values [0.5, 1.0, 0.2] + bootstrap 9 ---
def test_gae_done_at_the_end_ignores_the_bootstrap():
    adv, ret = gae([1.0, 0.0, 2.0], [0.5, 1.0, 0.2, 9.0], [0, 0, 1], 0.9, 0.8)
    # delta2 = 2 - 0.2 = 1.8 (done: no 0.9 * 9);      A2 = 1.8
    # delta1 = 0 + 0.9 * 0.2 - 1.0 = -0.82;            A1 = -0.82 + 0.72 * 1.8 = 0.476
    # delta0 = 1 + 0.9 * 1.0 - 0.5 = 1.4;              A0 = 1.4 + 0.72 * 0.476 = 1.74272
    assert adv.tolist() == pytest.approx([1.74272, 0.476, 1.8])
    assert ret.tolist() == pytest.approx([2.24272, 1.476, 2.0])  # A + V


def test_gae_bootstraps_the_last_step_when_not_done():
    adv, _ = gae([1.0, 0.0, 2.0], [0.5, 1.0, 0.2, 9.0], [0, 0, 0], 0.9, 0.8)
    # delta2 = 2 + 0.9 * 9 - 0.2 = 9.9;  A1 = -0.82 + 0.72 * 9.9 = 6.308;  A0 = 1.4 + 0.72 * 6.308
    assert adv.tolist() == pytest.approx([5.94176, 6.308, 9.9])


def test_gae_done_in_the_middle_cuts_bootstrap_and_recursion():
    # Two episodes back to back: step 1 ends the first; step 2 (second episode) must not leak in.
    adv, ret = gae([1.0, 0.0, 2.0], [0.5, 1.0, 0.2, 9.0], [0, 1, 0], 0.9, 0.8)
    # A2 = 9.9 as above; A1 = 0 - 1.0 = -1.0 (done); A0 = 1.4 + 0.72 * (-1.0) = 0.68
    assert adv.tolist() == pytest.approx([0.68, -1.0, 9.9])
    assert ret.tolist() == pytest.approx([1.18, 0.0, 10.1])


def test_gae_rows_are_independent_and_gamma_can_vary_per_step():
    rows, _ = gae(torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.0, 2.0]]),
                  torch.tensor([[0.5, 1.0, 0.2, 9.0]] * 2), torch.tensor([[0, 0, 1], [0, 0, 0]]), 0.9, 0.8)
    assert rows[0].tolist() == pytest.approx([1.74272, 0.476, 1.8])
    assert rows[1].tolist() == pytest.approx([5.94176, 6.308, 9.9])
    # Token layout: utterance 1 = tokens 0-1, utterance 2 = token 2. gamma 0.5 only after token 1;
    # with lambda 1 and V = 0 the advantage is the return with ONE discount per utterance.
    adv, _ = gae([0.0, -1.0, -1.0], [0.0] * 4, [0, 0, 1], torch.tensor([1.0, 0.5, 1.0]), 1.0)
    assert adv.tolist() == pytest.approx([-1.5, -1.5, -1.0])


# --- the clipped surrogate: clip 0.2, old log-probs 0, so rho = exp(logp_new) ---
def test_ppo_clip_loss_and_its_gradient_by_hand():
    rho = torch.tensor([[1.1, 1.5, 1.5, 7.0], [0.5, 0.5, 0.9, 7.0]])
    adv = torch.tensor([[2.0, 1.0, -1.0, 100.0], [-1.0, 1.0, -3.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)  # last column: padding
    logp = rho.log().requires_grad_(True)
    loss = ppo_clip_loss(logp, torch.zeros(2, 4), adv, mask, 0.2)
    # per token -min(rho A, clip(rho) A):
    #   1.1, A  2: inside the clip               -> -2.2
    #   1.5, A  1: above 1.2, pays to go up      -> -1.2 (clipped: no gradient)
    #   1.5, A -1: above 1.2, but A < 0          -> +1.5 (unclipped: still pushed down)
    #   0.5, A -1: below 0.8, pays to go down    -> +0.8 (clipped: no gradient)
    #   0.5, A  1: below 0.8, but A > 0          -> -0.5 (unclipped)
    #   0.9, A -3: inside                        -> +2.7
    assert loss.item() == pytest.approx((-2.2 - 1.2 + 1.5 + 0.8 - 0.5 + 2.7) / 6)
    loss.backward()
    # d/dlogp of -rho A / 6 is -rho A / 6 where unclipped; 0 where clipped or padded
    expected = torch.tensor([[-2.2, 0.0, 1.5, 0.0], [0.0, -0.5, 2.7, 0.0]]) / 6
    assert torch.allclose(logp.grad, expected, atol=1e-6)


def test_ppo_clip_loss_at_ratio_one_is_minus_the_mean_advantage():
    adv = torch.tensor([[1.0, -3.0, 0.5]])
    loss = ppo_clip_loss(torch.zeros(1, 3), torch.zeros(1, 3), adv, torch.ones(1, 3, dtype=torch.bool), 0.2)
    assert loss.item() == pytest.approx(-(1.0 - 3.0 + 0.5) / 3)


# --- a game's tokens: rewards on last tokens, one discount per turn, KL and truncation ---
def test_token_advantages_lays_out_a_game_by_hand():
    # Game 0: utterance a (2 tokens, -1, KL log-ratios 0.5 and 1.0), utterance b (1 token, 0, done).
    # Game 1: utterance c (1 token, -1, done, truncated: -1 more).
    turns = [{"reward": -1.0, "done": False, "truncated": False, "episode": 0},
             {"reward": 0.0, "done": True, "truncated": False, "episode": 0},
             {"reward": -1.0, "done": True, "truncated": True, "episode": 1}]
    t = torch.tensor
    scored = {"logp": [t([-1.0, -1.0]), t([-0.3]), t([-0.2])], "ref": [t([-1.5, -2.0]), t([-0.3]), t([-0.2])],
              "value": [t([1.0, 2.0]), t([3.0]), t([4.0])]}
    args = SimpleNamespace(kl_coef=0.1, truncation_penalty=1.0, gamma=0.5, gae_lambda=1.0, normalize_adv=False)
    adv, ret, stats = token_advantages(turns, scored, args)
    # rewards game 0: [-0.05, -1 - 0.1, 0]; lambda 1 -> returns are Monte Carlo with gamma per turn:
    # G2 = 0, G1 = -1.1 + 0.5 * G2 = -1.1, G0 = -0.05 + 1 * G1 = -1.15 (no discount inside a turn)
    assert ret[0].tolist() == pytest.approx([-1.15, -1.1]) and ret[1].tolist() == pytest.approx([0.0])
    assert adv[0].tolist() == pytest.approx([-2.15, -3.1]) and adv[1].tolist() == pytest.approx([-3.0])
    assert ret[2].tolist() == pytest.approx([-2.0]) and adv[2].tolist() == pytest.approx([-6.0])
    assert stats["ppo/advantage_mean"] == pytest.approx((-2.15 - 3.1 - 3.0 - 6.0) / 4)
    args.normalize_adv = True  # whitened over every real token of the iteration
    adv, _, _ = token_advantages(turns, scored, args)
    flat = torch.cat(adv)
    assert flat.mean().item() == pytest.approx(0.0, abs=1e-6) and flat.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)


class _OneTurn:
    """A one-turn game whose every game starts from the same observation."""
    name, secret = "one_turn", None

    def clone(self):
        return _OneTurn()

    def reset(self, secret=None, seed=0):
        return "Questions:\n"

    def step(self, action):
        return "Questions:\n" + action + "\n", -1.0, True, {"success": False}


def test_collect_keeps_each_games_sampled_ids_even_when_games_say_the_same_text():
    # Every game says "same" from different tokens (as a byte-level tokenizer allows): each turn
    # must get the ids sampled for its own game, in game order, with its own truncation flag.
    class Actor:
        def sample(self, observations):
            n = len(observations)
            self.last_ids = [[100 + i, 7] for i in range(n)]
            self.last_truncated = [i == 1 for i in range(n)]
            return ["same"] * n

    _, turns = onpolicy.collect(Actor(), _OneTurn(), 3, seed=0)
    assert [t["ids"] for t in turns] == [[100, 7], [101, 7], [102, 7]]
    assert [t["truncated"] for t in turns] == [False, True, False]
    assert [t["episode"] for t in turns] == [0, 1, 2]


# --- the script itself, tiny budget: once in a subprocess (as tests/test_train_online.py), the
# rest in-process (each subprocess pays ~10 s of imports on a busy 2-core machine) ---
TINY = ["--preset", "tiny", "--env", "twenty_questions_subset", "--bc_steps", "3", "--batch_size", "4",
        "--rollout_size", "2", "--minibatch_size", "20", "--ppo_epochs", "1", "--eval_every", "1",
        "--eval_games", "2", "--max_new_tokens", "6", "--threads", "1", *SMALL]


def rows(out_dir):
    with open(os.path.join(out_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """ppo.py as a user runs it: BC start, one iteration of 2 games, evaluations, checkpoint."""
    out = str(tmp_path_factory.mktemp("ppo") / "run")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "ppo.py", *TINY, "--total_trajectories", "2", "--out_dir", out],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_tiny_run_writes_metrics_curve_samples_and_checkpoint(first_run):
    r = rows(first_run)
    assert [int(float(x["trajectories"])) for x in r] == [0, 2]  # the BC start, then the iteration
    for key in ["eval_return", "eval_success", "eval_return_greedy", "wall_s", "ppo/policy_loss",
                "ppo/value_loss", "ppo/kl", "ppo/approx_kl", "ppo/clipfrac", "train/return"]:
        assert r[1][key] != "" and math.isfinite(float(r[1][key])), key
    assert -20 <= float(r[1]["eval_return"]) <= 0
    assert float(r[1]["ppo/kl"]) == 0.0  # iteration 1 samples from the BC policy itself
    for f in ["curve.png", "samples.txt", "checkpoint.pt", "args.json", "bc.pt"]:
        assert os.path.getsize(os.path.join(first_run, f)) > 0
    assert "Questions:" in open(os.path.join(first_run, "samples.txt")).read()


def test_resume_continues_exactly(first_run, tmp_path):
    split = str(tmp_path / "split")
    shutil.copytree(first_run, split)
    ppo.main([*TINY, "--total_trajectories", "4", "--out_dir", split, "--resume"])
    straight = str(tmp_path / "straight")
    ppo.main([*TINY, "--total_trajectories", "4", "--out_dir", straight])
    a, b = rows(straight), rows(split)
    assert len(a) == len(b) == 3
    for key in ["trajectories", "eval_return", "eval_return_greedy", "train/return", "ppo/policy_loss", "ppo/value_loss"]:
        assert [x[key] for x in a] == [x[key] for x in b], key


def test_bc_checkpoint_without_value_head_loads(first_run, tmp_path):
    # A train_online.py BC start has no value head; reproduce.py shares one BC start per seed.
    state = torch.load(os.path.join(first_run, "bc.pt"))
    path = str(tmp_path / "bc_no_head.pt")
    torch.save({k: v for k, v in state.items() if not k.startswith("value_head.")}, path)
    ppo.main([*TINY, "--total_trajectories", "0", "--bc_checkpoint", path, "--out_dir", str(tmp_path / "dst")])
    assert rows(str(tmp_path / "dst"))[0]["eval_return"] == rows(first_run)[0]["eval_return"]


def test_a_value_warmup_iteration_trains_the_value_head_and_leaves_the_policy_exactly(tmp_path):
    out = str(tmp_path / "warm")
    ppo.main([*TINY, "--total_trajectories", "2", "--value_warmup_iters", "1", "--out_dir", out])
    start = torch.load(os.path.join(out, "bc.pt"))
    after = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)["actor"]
    head = [k for k in after if k.startswith("value_head.")]
    assert head and all(not torch.equal(start[k], after[k]) for k in head)
    assert all(torch.equal(start[k], after[k]) for k in after if k not in head)


@pytest.mark.parametrize("flags, message", [(["--algo", "dqn"], "unknown --algo"),
                                            (["--bc_checkpoint", "/no/such.pt"], "not found"),
                                            (["--env", "detective", "--game_file", "/no/such/detective.z5"], "detective.z5")])
def test_bad_input_is_one_line_and_exit_2(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ppo.main([*TINY, *flags, "--out_dir", str(tmp_path / "bad")])
    assert e.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("detach", [False, True])
def test_detach_value_keeps_the_value_loss_out_of_the_shared_trunk(detach):
    # Zero advantages and no KL: the value loss is the only gradient. With --detach_value it moves
    # the value head alone; without, it also moves the trunk the policy reads.
    import copy
    import random
    from test_micro_batch import sampled_turns
    base, turns, logp = sampled_turns(token_baseline=True)
    ids = [t["ids"] for t in turns]
    scored = {"logp": [logp[j, :len(ids[j])] for j in range(len(turns))]}
    zero = [torch.zeros(len(i)) for i in ids]
    returns = [torch.full((len(i),), -5.0) for i in ids]
    actor = copy.deepcopy(base)
    args = SimpleNamespace(algo="ppo", ppo_epochs=1, minibatch_size=len(turns), clip=0.2, vf_coef=1.0,
                           detach_value=detach, out_dir="/nonexistent")
    stats = onpolicy.clipped_update(actor, torch.optim.SGD(actor.parameters(), lr=0.1), turns, scored, zero, args,
                                    random.Random(0), returns=returns)
    assert stats["ppo/value_loss"] > 1.0
    before, after = base.state_dict(), actor.state_dict()
    moved = {k for k in after if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("value_head.") for k in moved) == detach
