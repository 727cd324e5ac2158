"""train_online.py end to end: the script itself with a tiny budget (in a subprocess once, CleanRL's
smoke test; in this process for the rest, conftest.run_main) for every algorithm, plus exact resume
and the one-line errors on bad input."""
import csv
import os
import shutil
import subprocess
import sys

import pytest
import torch

import envs
import train_online
from conftest import SMALL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A few seconds of work: 4 games per iteration, 2 iterations, tiny models, 4 evaluation games.
TINY = ["--preset", "tiny", "--env", "twenty_questions_subset", "--bc_steps", "3", "--rollout_size", "4",
        "--critic_steps", "2", "--actor_steps", "1", "--batch_size", "4", "--critic_batch_size", "8",
        "--warmup_iters", "1", "--eval_every", "1", "--eval_games", "4", "--max_new_tokens", "8",
        "--threads", "1", "--diag_states", "8", *SMALL]


def run_subprocess(*flags, check=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "train_online.py", *flags], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


@pytest.fixture
def run(run_main):
    """train_online.main(flags) in this process -> .returncode, .stderr, like run_subprocess."""
    def go(*flags, check=True):
        p = run_main(train_online, *flags)
        if check:
            assert p.returncode == 0, p.stderr[-3000:]
        return p
    return go


def rows(out_dir):
    with open(os.path.join(out_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("algo", ["archer", "filtered_bc", "chai"])
def test_tiny_run_writes_metrics_curve_samples_and_checkpoint(tmp_path, run, algo, monkeypatch):
    monkeypatch.setenv("MINARCHER_CACHE", str(tmp_path / "cache"))  # BC and warm critic built here, not loaded
    out = str(tmp_path / algo)
    # archer's run also takes the critic warm start and the leave-one-out actor baseline
    warm = ["--critic_pretrain_steps", "2", "--actor_samples", "2"] if algo == "archer" else []

    # archer's is the script exactly as a user runs it, in a subprocess
    k = ["--chai_k", "2"] if algo == "chai" else []  # two candidates per turn exercise the ranking as five do
    p = (run_subprocess if algo == "archer" else run)(*TINY, "--algo", algo, "--total_trajectories", "8", "--out_dir", out, *warm, *k)
    assert ("critic warm start" in p.stderr) == bool(warm)
    assert os.path.isdir(tmp_path / "cache" / "critic") == bool(warm)  # cached for the next run
    r = rows(out)
    assert [int(float(x["trajectories"])) for x in r] == [0, 4, 8]  # the BC start, then each iteration
    for key in ["iteration", "eval_return", "eval_success", "eval_return_greedy", "wall_s"]:
        assert all(x[key] != "" for x in r)
    assert all(-5 <= float(x["eval_return"]) <= 0 for x in r)  # games of at most --max_turns 5
    if algo == "archer":  # the actor trained in iteration 2 (after the 1-iteration warm-up)
        assert r[2]["actor/loss"] != "" and r[2]["critic/q_loss"] != ""
        # leave-one-out advantages sum to zero per state; their spread is the informative column
        assert abs(float(r[2]["actor/advantage_mean"])) < 1e-4 and float(r[2]["actor/advantage_std"]) > 0
    # seconds per iteration of each part, and of the evaluation itself
    assert float(r[2]["perf/rollout_s"]) > 0 and float(r[2]["perf/eval_s"]) > 0
    assert (r[2].get("perf/critic_s", "") != "") == (algo != "filtered_bc")
    assert (r[2].get("perf/actor_s", "") != "") == (algo != "chai")
    if algo == "chai":  # the critic learns, the actor does not
        assert r[2]["critic/q_loss"] != "" and r[2].get("actor/loss", "") == ""
    for f in ["curve.png", "samples.txt", "checkpoint.pt", "args.json", "bc.pt"]:
        assert os.path.getsize(os.path.join(out, f)) > 0
    assert "Questions:" in open(os.path.join(out, "samples.txt")).read()


@pytest.mark.parametrize("extra", [[], ["--sil_coef", "1"]], ids=["archer", "self_imitation"])
def test_resume_continues_exactly(run, tmp_path, extra):
    straight, split, killed = (str(tmp_path / n) for n in ("straight", "split", "killed"))
    run(*TINY, *extra, "--total_trajectories", "12", "--out_dir", straight)
    run(*TINY, *extra, "--total_trajectories", "8", "--out_dir", split)
    assert sorted(f for f in os.listdir(split) if f.startswith("buffer")) == ["buffer-2.pt"]
    # A copy killed after the buffer of iteration 3 was written but before its checkpoint: the
    # folder then holds the new buffer beside the old checkpoint. Resume must use the old pair.
    shutil.copytree(split, killed)
    shutil.copy(os.path.join(straight, "buffer-3.pt"), os.path.join(killed, "buffer-3.pt"))
    for out in (split, killed):
        run(*TINY, *extra, "--total_trajectories", "12", "--out_dir", out, "--resume")
        a, b = rows(straight), rows(out)
        assert len(a) == len(b) == 4
        keys = ["trajectories", "eval_return", "eval_return_greedy", "train/return", "critic/q_loss", "actor/loss"]
        for key in keys + (["actor/sil_loss"] if extra else []):
            assert [x[key] for x in a] == [x[key] for x in b], (out, key)
        assert sorted(f for f in os.listdir(out) if f.startswith("buffer")) == ["buffer-3.pt"]  # only the named one
    assert any(x.get("actor/sil_loss") for x in rows(straight)) == bool(extra)  # the imitation term ran


def test_resume_from_the_bc_start_logs_it_once(run, tmp_path):
    # A run stopped before its first iteration ends resumes from the iteration-0 checkpoint; the
    # BC start's row is already in metrics.csv and must not be evaluated and written again.
    out = str(tmp_path / "run")
    run(*TINY, "--algo", "filtered_bc", "--total_trajectories", "0", "--out_dir", out)
    run(*TINY, "--algo", "filtered_bc", "--total_trajectories", "4", "--out_dir", out, "--resume")
    assert [int(float(x["trajectories"])) for x in rows(out)] == [0, 4]


def test_a_bc_only_run_skips_the_critic_warm_start_and_its_resume_does_it(run, tmp_path, monkeypatch):
    # --total_trajectories 0 wants the BC start alone: the IQL warm start (26 min on guess_city at
    # --preset cpu) waits until a run that plays games needs it, and then runs once.
    calls = []
    real = train_online.warm_start_critic
    monkeypatch.setattr(train_online, "warm_start_critic", lambda *a: calls.append(1) or real(*a))
    out, warm = str(tmp_path / "run"), ["--critic_pretrain_steps", "2"]
    run(*TINY, *warm, "--total_trajectories", "0", "--out_dir", out)
    assert calls == []
    run(*TINY, *warm, "--total_trajectories", "4", "--out_dir", out, "--resume")
    assert calls == [1]
    run(*TINY, *warm, "--total_trajectories", "8", "--out_dir", out, "--resume")
    assert calls == [1]  # the checkpoint says the critic is warm
    assert [int(float(x["trajectories"])) for x in rows(out)] == [0, 4, 8]


@pytest.mark.parametrize("lr_end", [0.0, 1e-4])
def test_the_critic_warm_start_rate_is_constant_or_decays_by_a_cosine_to_lr_end(run, tmp_path, monkeypatch, lr_end):
    # --critic_pretrain_lr sets the warm start's rate; RL's critic steps then run at --critic_lr
    monkeypatch.setenv("MINARCHER_CACHE", str(tmp_path / "cache"))  # build the warm start, never load it
    rates = []
    real = train_online.warm_start_update
    monkeypatch.setattr(train_online, "warm_start_update",
                        lambda critic, target, opt, *a: rates.append(opt.param_groups[0]["lr"]) or real(critic, target, opt, *a))
    critic_lrs = []
    real_update = train_online.critic_update
    monkeypatch.setattr(train_online, "critic_update",
                        lambda critic, target, policy, opt, *a: critic_lrs.append(opt.param_groups[0]["lr"]) or real_update(critic, target, policy, opt, *a))
    run(*TINY, "--critic_pretrain_steps", "5", "--critic_pretrain_lr_end", str(lr_end), "--critic_pretrain_lr", "1e-3",
        "--critic_lr", "2e-4", "--total_trajectories", "4", "--out_dir", str(tmp_path / "run"))
    assert critic_lrs and set(critic_lrs) == {2e-4}
    if lr_end:  # 1e-3 at the first step, 1e-4 at the last, the cosine's midpoint halfway
        assert rates == pytest.approx([1e-3, 1e-4 + 9e-4 * (2 + 2 ** 0.5) / 4, 5.5e-4, 1e-4 + 9e-4 * (2 - 2 ** 0.5) / 4, 1e-4])
    else:
        assert rates == [1e-3] * 5


def test_runs_whose_warm_starts_match_share_it_whatever_rls_critic_rate(run, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARCHER_CACHE", str(tmp_path / "cache"))
    calls = []
    real = train_online.warm_start_update
    monkeypatch.setattr(train_online, "warm_start_update", lambda *a: calls.append(1) or real(*a))
    common = [*TINY, "--critic_pretrain_steps", "2", "--total_trajectories", "4"]
    run(*common, "--critic_lr", "1e-3", "--out_dir", str(tmp_path / "a"))
    run(*common, "--critic_pretrain_lr", "1e-3", "--critic_lr", "2e-4", "--out_dir", str(tmp_path / "b"))
    assert len(calls) == 2  # built once, then found
    run(*common, "--critic_pretrain_lr", "5e-4", "--critic_lr", "2e-4", "--out_dir", str(tmp_path / "c"))
    assert len(calls) == 4  # another rate: another start


@pytest.mark.parametrize("flags, message", [
    (["--env", "chess"], "unknown env 'chess'"),
    (["--preset", "huge"], "unknown preset"),
    (["--algo", "dqn"], "unknown --algo"),
    (["--kl_per", "batch"], "unknown --kl_per"),
    (["--actor_samples", "0"], "--actor_samples must be at least 1"),
    (["--max_turns", "-1"], "--max_turns must be 0"),
    (["--policy_lm", "/no/such/model"], "cannot load"),
    (["--policy_lm", "tiny:n_layers=4"], "unknown tiny GPT-2 config field"),
    (["--dataset", "/no/such.json"], "not found"),
    (["--resume", "--out_dir", "/tmp/minarcher-no-such-run"], "no checkpoint"),
    (["--env", "detective", "--game_file", "/no/such/detective.z5"], "detective.z5"),
    (["--critic_lm", "actor", "--lora"], "--critic_lm actor"),
    (["--actor_loss", "ppo"], "unknown --actor_loss"),
    (["--algo", "filtered_bc", "--sil_coef", "1"], "--sil_coef 1.0 needs --algo archer"),
    (["--actor_loss", "awr", "--token_baseline"], "takes no --token_baseline"),
    (["--critic_pretrain_lr_end=-1e-4"], "--critic_pretrain_lr_end must be 0"),
    (["--critic_pretrain_lr=-1e-3"], "--critic_pretrain_lr must be 0"),
    (["--bc_fresh_steps", "2", "--bc_fresh_lr", "1e-3"], "--bc_fresh_steps needs --bc_mode dialogue"),
    (["--bc_fresh_soft"], "--bc_fresh_soft labels the games of --bc_fresh_steps"),
    (["--bc_fresh_steps", "2", "--bc_mode", "dialogue", "--bc_fresh_lr", "1e-3", "--dataset", os.path.join(ROOT, "README.md")],
     "is another"),
])
def test_bad_input_is_one_line_and_exit_2(run, flags, message):
    p = run(*TINY, *flags, check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert message in p.stderr.strip().splitlines()[-1]


def test_bad_input_in_the_script_itself_is_one_line_without_a_traceback():
    p = run_subprocess(*TINY, "--env", "chess", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == ["error: unknown env 'chess'; valid names: " + ", ".join(sorted(envs.REGISTRY))]


def test_critic_lm_actor_starts_the_critic_from_the_bc_actor(run, tmp_path):
    # No critic steps: the checkpoint's critic encoder must still be the BC actor's body, copied
    # after BC (not the random actor it started as), and the actor trains apart from it.
    out = str(tmp_path / "run")
    run(*TINY, "--critic_lm", "actor", "--critic_steps", "0", "--warmup_iters", "0",
        "--total_trajectories", "4", "--out_dir", out)
    bc = torch.load(os.path.join(out, "bc.pt"))
    state = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
    body = {k[len("model.transformer."):]: v for k, v in bc.items() if k.startswith("model.transformer.")}
    enc = {k[len("encoder."):]: v for k, v in state["critic"].items() if k.startswith("encoder.")}
    assert body and body.keys() == enc.keys()
    assert all(torch.equal(body[k], enc[k]) for k in body)
    actor = {k[len("model.transformer."):]: v for k, v in state["actor"].items() if k.startswith("model.transformer.")}
    assert not all(torch.equal(actor[k], enc[k]) for k in enc)  # one actor step moved the actor only


def test_webshop_runs_through_the_same_loop(run, tmp_path):
    # WebShop's observations are pages, not dialogues: the loop, the tiny tokenizer's corpus and
    # the sample log must not assume a question game.
    out = str(tmp_path / "webshop")
    run(*TINY, "--env", "webshop", "--total_trajectories", "4", "--out_dir", out)
    r = rows(out)
    assert len(r) == 2 and all(0.0 <= float(x["eval_return"]) <= 1.0 for x in r)
    assert "Instruction:" in open(os.path.join(out, "samples.txt")).read()


class _ConstantCritic(torch.nn.Module):
    """Q = 0 (trainable), V = 2 everywhere: enough to read the targets critic_update builds."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, obs, acts):
        q = self.w.expand(len(obs))
        return q, q, q, q

    def q(self, obs, acts):
        return self.forward(obs, acts)[:2]

    def v(self, obs):
        return torch.full((len(obs),), 2.0), torch.full((len(obs),), 2.0)


@pytest.mark.parametrize("mix", [0.0, 0.5])
def test_critic_update_q_targets_with_and_without_the_monte_carlo_mix(monkeypatch, mix):
    import copy
    import critic as critic_module
    import train_online
    seen = {}

    def spy(q1, q2, y1, y2):
        seen["y"] = (y1, y2)
        return ((q1 - y1) ** 2).mean()
    monkeypatch.setattr(critic_module, "q_loss", spy)
    critic = _ConstantCritic()
    target = copy.deepcopy(critic)
    policy = type("P", (), {"sample": lambda self, obs: ["a'"] * len(obs)})()
    batch = {"obs": ["s1", "s2"], "action": ["a1", "a2"], "next_obs": ["s1'", "s2'"],
             "reward": [-1.0, 0.0], "done": [False, True], "mc_return": [-3.0, 0.0]}
    args = train_online.Args(device="cpu", gamma=0.5, tau=0.1, mc_mix=mix)
    critic_module.critic_update(critic, target, policy, torch.optim.SGD(critic.parameters(), lr=0.1), batch, args)
    td = torch.tensor([-1 + 0.5 * 2.0, 0.0])  # r + gamma (1 - done) V_target(s'); the finished game has no future
    want = (1 - mix) * td + mix * torch.tensor([-3.0, 0.0])
    torch.testing.assert_close(seen["y"][0], want)
    torch.testing.assert_close(seen["y"][1], want)


class _FakeActor(torch.nn.Module):
    """Samples "a0", "a1", ...; every token's log-prob is one shared parameter."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.last_truncated, self.last_ids = [], []

    def sample(self, obs):
        self.last_truncated = [False] * len(obs)
        self.last_ids = [[i, 0] for i in range(len(obs))]
        return [f"a{i}" for i in range(len(obs))]

    def token_log_probs(self, obs, acts, return_hidden=False, truncated=None, ids=None):
        assert ids == self.last_ids  # the update scores the sampled tokens
        return self.w.expand(len(obs), 2), torch.ones(len(obs), 2), None


class _IndexCritic(torch.nn.Module):
    """Q(s, a_i) = i, V = 0: the advantage of the i-th sample is i."""

    def forward(self, obs, acts):
        q = torch.tensor([float(a[1:]) for a in acts])
        return q, q, torch.zeros_like(q), torch.zeros_like(q)


@pytest.mark.parametrize("loss", ["pg", "awr"])
def test_actor_update_weights_pg_centres_awr_keeps_every_weight_positive(monkeypatch, loss):
    import actor as actor_module
    import train_online
    seen = {}

    def spy(logp, mask, adv, baseline=None, **denominators):
        seen["adv"] = adv
        return -(adv * (logp * mask).sum(-1)).mean()
    monkeypatch.setattr(actor_module, "pg_loss", spy)
    args = train_online.Args(device="cpu", kl_coef=0.0, actor_loss=loss, awr_beta=0.5)
    actor = _FakeActor()
    actor_module.actor_update(actor, None, _IndexCritic(), torch.optim.SGD(actor.parameters(), lr=0.1),
                              ["s"] * 4, args)
    a = (torch.tensor([0.0, 1.0, 2.0, 3.0]) - 1.5) / 1.25 ** 0.5  # advantages 0..3, normalised
    want = torch.exp(0.5 * a) if loss == "awr" else a
    torch.testing.assert_close(seen["adv"], want, rtol=1e-4, atol=1e-4)
    # pg pushes the low samples down and the high ones up (net zero on a shared log-prob);
    # awr pushes every sample up, so the shared log-prob rises
    assert (actor.w.item() > 1e-3) == (loss == "awr")


class _ImitatingActor(_FakeActor):
    """log pi(utterance | obs) = w per token, so a BC step on any pair raises w."""

    def log_prob(self, obs, acts, reduce="sum", truncated=None):
        self.imitated = list(zip(obs, acts))
        return self.w.expand(len(obs)) * (1 if reduce == "mean" else 2)


@pytest.mark.parametrize("sil_coef", [0.0, 0.5])
def test_self_imitation_adds_filtered_bcs_loss_on_the_given_pairs(sil_coef):
    import train_online
    from actor import actor_update
    args = train_online.Args(device="cpu", kl_coef=0.0, sil_coef=sil_coef)
    actor, pairs = _ImitatingActor(), [("s1", "good1"), ("s2", "good2")]
    out = actor_update(actor, None, _IndexCritic(), torch.optim.SGD(actor.parameters(), lr=0.1),
                                    ["s"] * 4, args, imitate=pairs if sil_coef else None)
    # the centred PG term nets zero on the shared log-prob w; the BC term -sil_coef * mean(w)
    # has gradient -sil_coef, so one SGD step of 0.1 moves w to 0.1 * sil_coef
    assert actor.w.item() == pytest.approx(0.1 * sil_coef, abs=1e-6)
    assert getattr(actor, "imitated", None) == (pairs if sil_coef else None)
    assert ("actor/sil_loss" in out) == bool(sil_coef)


def test_self_imitation_draws_from_the_actors_own_games_only(tmp_path, monkeypatch):
    import buffer
    import train_online
    tops, imitated = [], []
    top_episodes, actor_update = buffer.ReplayBuffer.top_episodes, train_online.actor_update

    def spy_top(self, fraction=0.1, since=0):
        tops.append((since, top_episodes(self, fraction, since)))
        return tops[-1][1]

    def spy_update(*a, **k):
        imitated.append(a[6] if len(a) > 6 else k.get("imitate"))
        return actor_update(*a, **k)
    monkeypatch.setattr(buffer.ReplayBuffer, "top_episodes", spy_top)
    monkeypatch.setattr(train_online, "actor_update", spy_update)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(ROOT)
    train_online.main([*TINY, "--sil_coef", "1", "--total_trajectories", "8", "--out_dir", str(tmp_path / "run")])
    n_data = len(__import__("json").load(open(os.path.join(ROOT, "data", "twenty_questions_subset.json"))))
    assert tops and all(since == n_data for since, _ in tops)  # the prefilled dataset comes first
    played = {(t["obs"], t["action"]) for _, eps in tops for ep in eps for t in ep["transitions"]}
    assert all(ep["seed"] >= 10**7 for _, eps in tops for ep in eps)  # seeds of games the actor played
    assert imitated and all(p in played for batch in imitated for p in batch)
