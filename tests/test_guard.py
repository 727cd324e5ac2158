"""The non-finite guard (models.guarded_step): a step whose loss or gradient is NaN or inf is
skipped, leaving the weights, the optimiser's state and the critic's target as they were; the
updates count their skips, and a run whose whole iteration was skipped stops with one line that
names the last good weights."""
import random
from types import SimpleNamespace

import pytest
import torch

import bc
import critic as critic_module
import models
from critic import DoubleCritic, critic_step, make_target
from test_train_online import TINY


def snapshot(*modules):
    return [p.detach().clone() for m in modules for p in m.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_skips_the_step_and_leaves_weights_and_optimiser_alone(bad):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    loss = net(x).pow(2).mean()
    loss.backward()
    assert models.guarded_step(opt, net.parameters(), loss.detach())  # a finite one steps
    before, state = snapshot(net), {k: v["step"].clone() for k, v in opt.state.items()}
    opt.zero_grad()
    loss = net(x).pow(2).mean() * bad  # NaN or inf loss, NaN or inf gradients
    loss.backward()
    assert not models.guarded_step(opt, net.parameters(), loss.detach())
    assert same(before, snapshot(net))
    assert {k: v["step"] for k, v in opt.state.items()} == state  # Adam's step count did not move
    assert all(p.grad is None for p in net.parameters())  # the bad gradients are gone
    # a finite loss whose gradient is NaN (one bad input row) is caught by the norm
    y = x.clone()
    y[0, 0] = float("nan")
    (net(y) * 0).sum().backward()  # 0 * NaN: the loss is NaN too, and so is the gradient
    assert not models.guarded_step(opt, net.parameters(), torch.tensor(0.0))
    assert same(before, snapshot(net))


def test_a_skipped_critic_step_leaves_the_critic_and_its_target_alone():
    tok, enc = models.load_tokenizer_and_lm("tiny", kind="encoder")
    torch.manual_seed(0)
    critic = DoubleCritic(enc, tok, hidden=16)
    target = make_target(critic)
    for p in target.parameters():  # a target apart from the critic, so a Polyak move would show
        p.data.add_(0.5)
    opt = torch.optim.AdamW(critic.parameters(), lr=0.1)
    batch, args = {"obs": ["Questions:\n"], "action": ["Is it red?"]}, SimpleNamespace(tau=0.1)

    def losses(bad):
        def fn(rows, piece):
            q1, q2, v1, v2 = critic(piece["obs"], piece["action"])
            return (q1 + q2).sum() * bad, (v1 + v2).sum(), q1
        return fn
    before = snapshot(critic, target)
    stats = critic_step(critic, target, opt, batch, losses(float("nan")), args)
    assert stats["critic/skipped_steps"] == 1.0 and same(before, snapshot(critic, target))
    stats = critic_step(critic, target, opt, batch, losses(1.0), args)
    assert stats["critic/skipped_steps"] == 0.0 and not same(before, snapshot(critic, target))


def test_bc_counts_its_skipped_steps_and_a_start_that_learnt_nothing_is_an_error(capsys):
    from test_bc import episodes, tiny_actor
    actor = tiny_actor("tiny-word")
    before = snapshot(actor)
    pairs = bc.bc_pairs(episodes())
    loss, skipped = bc.behaviour_clone(actor, pairs, 3, 2, 1e-2, random.Random(0),
                                       weight_fn=lambda o, a: torch.full((len(o),), float("nan")))
    assert skipped == 3 and same(before, snapshot(actor))
    loss, skipped = bc.behaviour_clone(actor, pairs, 3, 2, 1e-2, random.Random(0))
    assert skipped == 0 and loss == loss and not same(before, snapshot(actor))


def test_a_run_whose_every_critic_step_is_skipped_stops_with_one_line(run_main, tmp_path, monkeypatch):
    monkeypatch.setattr(critic_module, "q_loss", lambda q1, q2, y1, y2: (q1 + q2).sum() * float("nan"))
    out = tmp_path / "run"
    p = run_main(__import__("train_online"), *TINY, "--total_trajectories", "8", "--out_dir", str(out))
    assert p.returncode == 2
    assert "every critic step of this iteration (2) had a non-finite loss" in p.stderr
    assert str(out / "checkpoint.pt") in p.stderr  # the iteration-0 checkpoint: the last good one
    assert "Traceback" not in p.stderr and sum("error:" in line for line in p.stderr.splitlines()) == 1


def test_a_healthy_run_logs_no_skips(run_main, tmp_path):
    # A healthy run logs zero skips per iteration for each part that trains.
    import csv
    import train_online
    out = tmp_path / "run"
    assert run_main(train_online, *TINY, "--total_trajectories", "12", "--warmup_iters", "0",
                    "--out_dir", str(out)).returncode == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["critic/skipped_steps"] for r in rows[1:]] == ["0"] * (len(rows) - 1)
    assert [r["actor/skipped_steps"] for r in rows[1:]] == ["0"] * (len(rows) - 1)
