"""Multi-turn GRPO: the critic-free, group-baseline way most LM agents are trained with RL today
(DeepSeekMath's GRPO, TRL; multi-turn as in RAGEN's StarPO and verl-agent's GiGPO), as a
baseline beside ArCHer's utterance-level critic at equal trajectories.

    python grpo.py --preset tiny --env twenty_questions_subset               # CPU, no download
    python grpo.py --preset tiny --env guess_city --bc_checkpoint runs/<run>/bc.pt
    python grpo.py --preset tiny --per_turn                                  # GiGPO-style, per turn
    python grpo.py --preset tiny --resume --out_dir runs/<run>                # continue exactly

Each iteration draws rollout_size / group_size secrets and the current actor plays group_size
games of each (a group: the same secret, the same first observation). No value is learnt; a
game is judged only against the others of its group:

    score     R_i = the game's return - truncation_penalty x (its utterances cut at max_new_tokens)
    advantage A_i = (R_i - mean(R_group)) / std(R_group)      (--no_std: without the division;
                                                              a group of equal returns: 0)
    loss      -min(rho_t A_i, clip(rho_t, 1 - eps, 1 + eps) A_i) + kl_coef * KL_k3(pi || pi_BC)
              on every token t the agent said in game i, averaged over tokens, ppo_epochs passes

--per_turn gives each utterance its own advantage instead: its discounted return-to-go
(gamma per turn), normalised among the group's games at the same turn, so turn 3 is compared
with turn 3. A turn that only one game of its group reached gets 0 (nothing to compare with).
Playing, scoring, the clipped epochs and the loop are onpolicy.py's, shared with ppo.py; the KL
is a loss term here (as in GRPO), a reward term in ppo.py (as in InstructGPT). Departure 11 in
docs/departures.md; it lists the grpo/* columns.

Run the tests:  python -m pytest -q tests/test_grpo.py
"""
from dataclasses import dataclass, field

import torch

import flags
import onpolicy


@dataclass
class Args(flags.CommonArgs):
    algo: str = field(default="grpo", metadata={"help": "only 'grpo' (names the run folder like train_online.py's)"})
    rollout_size: int = field(default=128, metadata={"help": "games per iteration: rollout_size / group_size groups"})
    group_size: int = field(default=8, metadata={"help": "games per group (the same secret); at least 2"})
    ppo_epochs: int = field(default=2, metadata={"help": "passes over each iteration's games"})
    minibatch_size: int = field(default=64, metadata={"help": "utterances per gradient step"})
    actor_lr: float = field(default=1e-5, metadata={"help": "learning rate of the actor"})
    clip: float = field(default=0.2, metadata={"help": "ratio clip epsilon"})
    kl_coef: float = field(default=0.05, metadata={"help": "weight of the per-token k3 KL(pi || pi_BC) in the loss"})
    no_std: bool = field(default=False, metadata={"help": "advantage = return - group mean, not divided by the group's std"})
    per_turn: bool = field(default=False, metadata={"help": "per-utterance returns-to-go, normalised per (group, turn) (GiGPO-style)"})
    truncation_penalty: float = field(default=1.0, metadata={"help": "subtracted per utterance cut at max_new_tokens (as in ppo.py)"})

    vf_coef = 0.0  # no value head: onpolicy.clipped_update reads this
    # On-policy and cheap per game, like PPO: the same bigger rollouts and 10x larger budget.
    preset_overrides = {"tiny": dict(rollout_size=64, minibatch_size=64, eval_every=10, total_trajectories=30000),
                        "paper": dict(rollout_size=128, minibatch_size=64, eval_every=10, total_trajectories=200000)}

    def __post_init__(self):  # a bad flag: one line on stderr, exit 2 (flags.fail)
        if self.algo != "grpo":
            flags.fail(f"unknown --algo {self.algo!r}; grpo.py only runs grpo")
        if self.group_size < 2:
            flags.fail(f"--group_size {self.group_size}: a group needs at least 2 games to compare")
        if self.rollout_size % self.group_size:
            flags.fail(f"--rollout_size {self.rollout_size} is not a multiple of --group_size {self.group_size}")


# --- the one piece of math, pure and unit-tested (tests/test_grpo.py) ---
def group_advantages(scores, groups, scale_std=True):
    """scores: (N,) numbers; groups: N hashable group keys. -> (N,) tensor: each score minus its
    group's mean, divided by the group's standard deviation (Bessel-corrected, as TRL's GRPO) when
    scale_std. A group whose scores are all equal, or that has one member, gives 0."""
    scores = torch.as_tensor(scores, dtype=torch.float64)
    adv = torch.zeros_like(scores)
    members = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    for idx in members.values():
        s = scores[idx]
        if len(idx) < 2 or bool((s == s[0]).all()):
            continue  # nothing to compare with: no signal, not a division by zero
        centred = s - s.mean()
        adv[idx] = centred / s.std() if scale_std else centred
    return adv.float()


def returns_to_go(rewards, gamma):
    """[r_0, ..., r_T-1] -> [G_0, ..., G_T-1], G_t = r_t + gamma G_t+1."""
    out, running = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def play_groups(actor, env, n_games, seed, group_size):
    """onpolicy.collect over n_games / group_size groups: group g's games all play the secret that
    reset seed `seed + g` draws; game i's sampling still differs (its own place in the batch).
    -> (episodes, turns), each turn tagged with its "group"."""
    draw = env.clone()
    secrets = []
    for g in range(n_games // group_size):
        draw.reset(seed=seed + g)
        secrets += [draw.secret] * group_size
    episodes, turns = onpolicy.collect(actor, env, len(secrets), seed, secrets=secrets)
    for t in turns:
        t["group"] = t["episode"] // group_size
    return episodes, turns


def game_advantages(turns, scored, args):
    """Every token of every utterance gets its game's (or, with --per_turn, its turn's) group
    advantage. -> (per-utterance 1-D advantages, None: no value targets, stats)."""
    penalised = [t["reward"] - args.truncation_penalty * float(t["truncated"]) for t in turns]
    games = {}
    for j, t in enumerate(turns):
        games.setdefault(t["episode"], []).append(j)
    if args.per_turn:
        per_utt = [0.0] * len(turns)
        for js in games.values():
            for j, g in zip(js, returns_to_go([penalised[j] for j in js], args.gamma)):
                per_utt[j] = g
        adv = group_advantages(per_utt, [(t["group"], t["turn"]) for t in turns], scale_std=not args.no_std)
    else:
        order = sorted(games)
        score = {e: sum(penalised[j] for j in games[e]) for e in order}
        group_of = {e: turns[games[e][0]]["group"] for e in order}
        by_game = dict(zip(order, group_advantages([score[e] for e in order], [group_of[e] for e in order],
                                                   scale_std=not args.no_std).tolist()))
        adv = torch.tensor([by_game[t["episode"]] for t in turns])
    adv_list = [torch.full((len(scored["logp"][j]),), float(adv[j])) for j in range(len(turns))]
    stats = {"grpo/advantage_abs": adv.abs().mean().item(),
             "grpo/zero_advantage": (adv == 0).float().mean().item()}  # utterances with no signal
    return adv_list, None, stats


def main(argv=None):
    args = flags.parse(Args, argv)  # checked by Args.__post_init__ and flags.parse
    onpolicy.run(args, lambda actor, env, n, seed: play_groups(actor, env, n, seed, args.group_size),
                 game_advantages, kl_coef=args.kl_coef)


if __name__ == "__main__":
    main()
