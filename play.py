"""Touch the task: ask the oracle yourself, watch a trained agent play (and what its critic thinks of
each utterance), or be the oracle for the agent. A terminal program; no extra package.

    python play.py --env guess_city                          # you ask, the oracle answers
    python play.py --env twenty_questions_subset --secret dog
    python play.py --agent runs/<run>                        # the agent plays; Enter for each turn
    python play.py --agent runs/<run> --checkpoint runs/<run>/bc.pt
    python play.py --agent runs/<run> --human_oracle         # the agent asks, you answer

With a critic in the run's checkpoint (ArCHer, CHAI, offline ArCHer), each turn of the agent shows
the critic's min(Q1, Q2) of the utterance it chose, the state's min(V1, V2), and --alternatives
other utterances the actor could have sampled with their Q: what the critic prefers, and by how
much. A right guess, or the 20th turn, ends the game; Ctrl-D or Ctrl-C quits.
"""
import random
from dataclasses import dataclass, field

import torch

import envs
from critic import ChaiPolicy
from evaluate import load_actor
from flags import build_critic, fail, make_env


@dataclass
class Args:
    env: str = field(default="twenty_questions_subset", metadata={"help": "the game when you ask (without --agent)"})
    agent: str = field(default="", metadata={"help": "a training run's folder (--out_dir): its agent plays"})
    checkpoint: str = field(default="", metadata={"help": "with --agent: a checkpoint or bc.pt (default <run>/checkpoint.pt)"})
    human_oracle: bool = field(default=False, metadata={"help": "with --agent: you answer the agent's questions"})
    secret: str = field(default="", metadata={"help": "the secret (a name the game knows); default: drawn by --seed"})
    seed: int = field(default=-1, metadata={"help": "draws the secret and the agent's samples; -1: a random one"})
    alternatives: int = field(default=3, metadata={"help": "with a critic: other sampled utterances shown with their Q"})
    device: str = field(default="cpu", metadata={"help": "where the agent runs"})


def read(prompt):
    """One line from the person; None at Ctrl-D (end of input)."""
    try:
        return input(prompt)
    except EOFError:
        print()
        return None


def new_text(before, after):
    """What a step added to the observation (the question games append one line per turn)."""
    return after[len(before):] if after.startswith(before) else after


def start(env, args):
    """Reset on --secret, else on the secret --seed draws; an unknown secret is a one-line error."""
    try:
        return env.reset(secret=args.secret or None, seed=args.seed)
    except (KeyError, ValueError):
        examples = ", ".join(str(s) for s in getattr(env, "secrets", [])[:5])
        fail(f"--secret {args.secret!r} is not a secret of {env.name} (e.g. {examples})")


def person_asks(args):
    """You ask, the env's oracle answers: every line you type is one turn, as the agent's would be."""
    env = make_env(args)
    obs = start(env, args)
    print(f"{env.name}: the secret is drawn; ask questions, one per line, and guess it. "
          f"-1 per turn, 0 on the right guess, {getattr(env, 'max_turns', 20)} turns at most.\n{obs}")
    total, done = 0.0, False
    while not done:
        line = read(f"turn {getattr(env, 'turn', 0) + 1}> ")
        if line is None:
            print(f"quit; the secret was {env.secret!r}; return so far {total:.0f}")
            return
        nxt, reward, done, info = env.step(line)
        total += reward
        print(f"{new_text(obs, nxt).rstrip()}    [reward {reward:.0f}, return {total:.0f}]")
        obs = nxt
    print(f"{'right' if info['success'] else 'out of turns'}: the secret was {env.secret!r}; return {total:.0f}")


def agent_plays(args):
    """The run's agent plays a game; with a critic, each turn shows Q and V and the alternatives."""
    run_args, env, data, actor, critic_state, path = load_actor(args.agent, args.checkpoint, args.device, 1)
    critic, policy = None, actor
    if critic_state is not None:
        critic, _ = build_critic(run_args, data, actor)
        critic.load_state_dict(critic_state)
        critic.eval()
        if getattr(run_args, "algo", "") == "chai":  # CHAI plays the critic's pick of k samples
            policy = ChaiPolicy(actor, critic, run_args.chai_k)
    if args.human_oracle:
        answer_as_a_person(env)
    obs = start(env, args)
    print(f"{path} plays {run_args.env}" + (f" (secret: {env.secret})" if not args.human_oracle else "")
          + ("; the critic's view after each turn" if critic else "; no critic in this checkpoint")
          + ("\n" if args.human_oracle else "; Enter for the next turn\n") + obs)
    total, done, info = 0.0, False, {}
    while not done:
        if not args.human_oracle and read("") is None:
            return
        with torch.no_grad():
            utterance = policy.sample([obs])[0]
            if critic is not None:
                show_critic(critic, actor, obs, utterance, args.alternatives)
        try:
            nxt, reward, done, info = env.step(utterance)
        except EOFError:  # the person closed the input while answering
            print()
            return
        total += reward
        print(f"{new_text(obs, nxt).rstrip()}    [reward {reward:.0f}, return {total:.0f}]")
        obs = nxt
    print(f"{'right' if info['success'] else 'out of turns'}; return {total:.0f}")


def show_critic(critic, actor, obs, chosen, n_alternatives):
    """min Q of the chosen utterance, min V of the state, and a few other samples with their Q."""
    others = [u for u in dict.fromkeys(actor.sample([obs] * n_alternatives)) if u != chosen] if n_alternatives else []
    q1, q2 = critic.q([obs] * (1 + len(others)), [chosen, *others])
    v1, v2 = critic.v([obs])
    q, v = torch.minimum(q1, q2).float().tolist(), float(torch.minimum(v1, v2))
    print(f"  critic: V(s) = {v:.2f}; chosen Q = {q[0]:.2f}: {chosen.strip()!r}")
    for u, value in sorted(zip(others, q[1:]), key=lambda p: -p[1]):
        print(f"          other  Q = {value:.2f}: {u.strip()!r}")


def answer_as_a_person(env):
    """Put a person in the oracle's chair: the env still counts turns and rewards, but its answer
    to a question is what the person types, and a guess is right when they type 'correct'."""
    if not envs.is_dialogue(env):
        fail(f"--human_oracle needs a question game; {env.name} is not one")
    verdict = {}

    def person(secret, question):
        line = read(f"agent asks: {question}\nyour answer (Yes. / No. / a sentence; 'correct' if it guessed right)> ")
        if line is None:
            raise EOFError
        verdict["right"] = line.strip().lower().rstrip(".!") == "correct"
        return "Yes." if verdict["right"] else (line.strip() or "I don't know.")

    env.answer = person                                      # the oracle is this one method ...
    env.is_success = lambda secret, question: verdict.get("right", False)  # ... and its verdict


def main(argv=None):
    from transformers import HfArgumentParser
    args = HfArgumentParser(Args).parse_args_into_dataclasses(argv)[0]
    if args.seed < 0:
        args.seed = random.randrange(10**6)
    torch.manual_seed(args.seed)
    if (args.human_oracle or args.checkpoint) and not args.agent:
        fail("--human_oracle and --checkpoint need --agent <run folder>")
    if not args.agent and args.env not in envs.REGISTRY:
        fail(f"unknown env {args.env!r}; valid names: {', '.join(sorted(envs.REGISTRY))}")
    try:
        agent_plays(args) if args.agent else person_asks(args)
    except KeyboardInterrupt:
        print("\nstopped")


if __name__ == "__main__":
    main()
