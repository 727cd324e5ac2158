"""Token-level PPO for LM agents: the paper's on-policy baseline (Zhou et al. 2024, Sec. 6, "PPO").

    python ppo.py --preset tiny --env twenty_questions_subset                # CPU, no download
    python ppo.py --preset tiny --env guess_city --bc_checkpoint runs/<run>/bc.pt
    python ppo.py --env guess_city                                          # GPT-2 actor
    python ppo.py --preset tiny --resume --out_dir runs/<run>                # continue exactly

Unlike ArCHer there is no utterance-level critic and no replay buffer. Each iteration plays
`rollout_size` fresh games with the current actor, treats every TOKEN of every utterance as one
step of one long token-level episode, and throws the games away after `ppo_epochs` passes:

    reward    r_t = -kl_coef * (log pi_old(t) - log pi_BC(t))      on every token (InstructGPT/TRL)
                    + the turn's env reward                          on the utterance's last token
    value     V_t = value head on the actor's hidden state that predicts token t (shared trunk)
    GAE       A_t = delta_t + g_t * lam * A_{t+1},  delta_t = r_t + g_t * V_{t+1} - V_t,
              g_t = 1 inside an utterance, gamma after its last token, 0 after the game's last
    policy    -min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t),  rho_t = pi(t) / pi_old(t)
    value     (V_t - (A_t + V_old_t))^2

Discounting only at utterance boundaries makes the token-level return equal to the utterance-level
return ArCHer's critic estimates (gamma per turn), so both methods optimise the same objective;
lambda is per token as in common LM PPO. docs/departures.md (11) lists the ppo/* columns; departure 11 is this file.
Playing, scoring, the clipped epochs and the loop are onpolicy.py's, shared with grpo.py.
"""
from dataclasses import dataclass, field

import torch

import flags
import onpolicy


@dataclass
class Args(flags.CommonArgs):
    algo: str = field(default="ppo", metadata={"help": "only 'ppo' (names the run folder like train_online.py's)"})
    rollout_size: int = field(default=128, metadata={"help": "games collected per iteration (on-policy: used once)"})
    ppo_epochs: int = field(default=4, metadata={"help": "passes over each iteration's games"})
    minibatch_size: int = field(default=64, metadata={"help": "utterances per gradient step"})
    actor_lr: float = field(default=1e-5, metadata={"help": "learning rate of the actor and its value head"})
    clip: float = field(default=0.2, metadata={"help": "PPO ratio clip epsilon"})
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda, per token"})
    vf_coef: float = field(default=0.1, metadata={"help": "weight of the value loss (the value head shares the actor's trunk)"})
    kl_coef: float = field(default=0.1, metadata={"help": "per-token KL(pi || pi_BC) penalty in the reward"})
    truncation_penalty: float = field(default=1.0, metadata={"help": "subtracted from the reward of utterances cut at max_new_tokens (as in train_online.py)"})
    normalize_adv: bool = field(default=True, metadata={"help": "whiten token advantages over each iteration's tokens"})
    detach_value: bool = field(default=False, metadata={"help": "the value head reads detached hidden states: its loss trains the head only and never reaches the trunk the policy shares"})
    value_warmup_iters: int = field(default=0, metadata={"help": "first iterations in which only the value head learns (on detached hidden states: the policy is untouched), so the first policy steps see a fitted baseline, not a random head's"})

    # flags.build_actor reads this: PPO always puts a value head on the actor's hidden states.
    token_baseline = True
    # PPO is cheap per trajectory and needs many: bigger rollouts, a 10x larger budget (issue 5).
    preset_overrides = {"tiny": dict(rollout_size=64, minibatch_size=64, ppo_epochs=4, eval_every=10,
                                     total_trajectories=30000),
                        # the cpu preset's trunk is 2 layers of 128: the value loss through it
                        # wrecked the policy (docs/cpu_preset.md, "PPO: the value loss ..."), so the
                        # head reads detached features there
                        "cpu": dict(detach_value=True),
                        "paper": dict(rollout_size=128, minibatch_size=64, ppo_epochs=4, eval_every=10,
                                      total_trajectories=200000)}

    def __post_init__(self):  # a bad flag: one line on stderr, exit 2 (flags.fail)
        if self.algo != "ppo":
            flags.fail(f"unknown --algo {self.algo!r}; ppo.py only runs ppo")


# --- the math, pure and unit-tested (tests/test_ppo.py); the clipped surrogate is onpolicy.py's ---
def gae(rewards, values, dones, gamma, lam):
    """Generalised advantage estimation along the last axis (time).

    rewards, dones (..., T); values (..., T + 1): values[..., T] bootstraps the state after the last
    step and only counts where that step is not done. gamma: a number or a (..., T) tensor of
    per-step discounts (PPO here: 1 inside an utterance, gamma at its end). dones cut both the
    bootstrap and the recursion, so padding after a done step never leaks into real steps.
    Returns (advantages (..., T), returns (..., T) = advantages + values[..., :T])."""
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    values = torch.as_tensor(values, dtype=torch.float32)
    alive = 1.0 - torch.as_tensor(dones, dtype=torch.float32)
    gamma = torch.as_tensor(gamma, dtype=torch.float32).expand_as(rewards)
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        delta = rewards[..., t] + gamma[..., t] * alive[..., t] * values[..., t + 1] - values[..., t]
        running = delta + gamma[..., t] * lam * alive[..., t] * running
        adv[..., t] = running
    return adv, adv + values[..., :-1]


# --- token-level PPO: rewards on tokens, GAE over the whole game's tokens ---
def token_advantages(turns, scored, args):
    """Lay each game's utterances end to end as one token sequence, (E, L) padded, run GAE, and
    cut the result back into per-utterance 1-D advantages and returns."""
    games = {}
    for j, t in enumerate(turns):
        games.setdefault(t["episode"], []).append(j)
    order = list(games.values())
    L = max(sum(len(scored["logp"][j]) for j in js) for js in order)
    E = len(order)
    rewards, values = torch.zeros(E, L), torch.zeros(E, L + 1)
    dones, discount = torch.ones(E, L), torch.ones(E, L)      # padding: done (cuts any leak)
    spans = {}
    for e, js in enumerate(order):
        pos = 0
        for j in js:
            t, n = turns[j], len(scored["logp"][j])
            kl = scored["logp"][j] - scored["ref"][j]              # (n,) sampled log-ratio to BC
            rewards[e, pos:pos + n] = -args.kl_coef * kl
            rewards[e, pos + n - 1] += t["reward"] - args.truncation_penalty * float(t["truncated"])
            values[e, pos:pos + n] = scored["value"][j]
            dones[e, pos:pos + n] = 0.0
            dones[e, pos + n - 1] = float(t["done"])
            discount[e, pos + n - 1] = args.gamma                 # a turn passes: discount once
            spans[j] = (e, pos, pos + n)
            pos += n
    adv, ret = gae(rewards, values, dones, discount, args.gae_lambda)   # (E, L) each
    adv_list = [adv[e, a:b] for e, a, b in (spans[j] for j in range(len(turns)))]
    ret_list = [ret[e, a:b] for e, a, b in (spans[j] for j in range(len(turns)))]
    flat = torch.cat(adv_list)                                           # every real token
    stats = {"ppo/advantage_mean": flat.mean().item(), "ppo/return_mean": torch.cat(ret_list).mean().item()}
    if args.normalize_adv:
        mean, std = flat.mean(), flat.std(unbiased=False) + 1e-6
        adv_list = [(a - mean) / std for a in adv_list]
    return adv_list, ret_list, stats


def main(argv=None):
    args = flags.parse(Args, argv)  # checked by Args.__post_init__ and flags.parse
    onpolicy.run(args, onpolicy.collect, token_advantages)  # the KL is in the reward, not the loss


if __name__ == "__main__":
    main()
