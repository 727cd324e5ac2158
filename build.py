"""A run's pieces, built from its flags: the env, the offline dataset, the actor and the critic.

One place for every script (train_online.py, train_offline.py, ppo.py, evaluate.py and the
benchmarks), so a run is rebuilt exactly as it was trained. A missing model, game file or a
malformed dataset ends in one line on stderr (flags.fail), not in a traceback.

Tested through the scripts: python -m pytest -q tests/test_models.py tests/test_evaluate.py
"""
import copy
import os

import envs
from actor import Actor
from critic import DoubleCritic, make_target
from flags import fail
from models import ModelLoadError, default_bucket_tokens, load_tokenizer_and_lm, prepare_for_training


def make_env(args):
    try:
        return envs.make(args.env)
    except (ValueError, OSError, ConnectionError) as e:  # e.g. a game file that is not there
        fail(str(e))


def load_data(args, env):
    """The env's offline dataset; the scripted default is generated (deterministically) if missing.
    Question games use LMRL-Gym lines; the text games and WebShop their own format (envs.py)."""
    n_games = getattr(args, "dataset_games", 0)
    if not os.path.exists(args.dataset) and args.dataset == envs.default_dataset_path(args.env, n_games):
        n = n_games or envs.default_n_games(env)
        print(f"writing the default dataset {args.dataset} (scripted 'mediocre' player, {n} games)")
        try:
            envs.write_dataset(env, args.dataset, n, progress=True)
        except (ValueError, OSError, ConnectionError) as e:
            fail(f"could not write {args.dataset}: {e}")
    try:
        return envs.read_dataset(args.dataset, env)
    except (envs.DatasetError, ValueError, KeyError) as e:
        fail(str(e))


def corpus(episodes):
    """Text the tiny tokenizer is trained on: each game's last observation, which in a question
    game holds the whole dialogue, and in the other games every screen and action as well."""
    texts = []
    for ep in episodes:
        final = ep["transitions"][-1]["next_obs"]
        texts.append(final)
        texts += [t["obs"] + t["action"] for t in ep["transitions"] if not final.startswith(t["obs"] + t["action"])]
    return texts


def build_actor(args, episodes):
    try:
        tok, lm = load_tokenizer_and_lm(args.policy_lm, kind="causal", bf16=args.bf16, corpus=corpus(episodes))
        lm = prepare_for_training(lm, args.gradient_checkpointing, args.lora)
    except ModelLoadError as e:
        fail(str(e))
    actor = Actor(lm, tok, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                  token_baseline=getattr(args, "token_baseline", False),
                  bucket_tokens=default_bucket_tokens(args.device))
    return actor.to(args.device)


def build_critic(args, episodes, actor=None):
    """The double critic on `args.critic_lm`. critic_lm "actor" (departure 13, not in the
    paper): the encoder starts as a copy of the actor's transformer body, as it is when this
    is called, with the actor's tokenizer (train_online.py: after BC; train_offline.py: before
    any BC, so only the architecture and tokenizer are shared). The paper's critic reads text through a
    pretrained RoBERTa; a critic trained from scratch has no such prior, and the BC actor is the
    one model here that has already learnt to read these dialogues."""
    if args.critic_lm == "actor":  # departure 13
        assert actor is not None, "critic_lm 'actor' copies the actor: pass it"
        tok, enc = actor.tokenizer, copy.deepcopy(actor.model.base_model)  # GPT-2: its .transformer
        enc.requires_grad_(True)
    else:
        causal = getattr(args, "critic_causal", False)  # departure 16: the body of a causal LM
        try:
            tok, enc = load_tokenizer_and_lm(args.critic_lm, kind="causal" if causal else "encoder",
                                             corpus=corpus(episodes))
        except ModelLoadError as e:
            fail(str(e))
        enc = enc.base_model if causal else enc  # GPT-2: its .transformer
    critic = DoubleCritic(enc, tok, joint=getattr(args, "critic_joint", False),
                          causal=getattr(args, "critic_causal", False),
                          bucket_tokens=default_bucket_tokens(args.device)).to(args.device)
    return critic, make_target(critic)
