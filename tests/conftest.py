"""Shared by every test file. The README's test command runs two pytest-xdist workers on two
cores, so each worker's torch gets one thread. `run_main` runs an entry script's main() in this
process: a subprocess pays several seconds of imports per call, so each script keeps one smoke
test in a subprocess (the script exactly as a user runs it) and the rest call main() here."""
import os
from types import SimpleNamespace

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tests' tiny runs: the tiny preset's GPT-2 and BERT cut to one layer of width 32, and games cut
# to 5 turns. Most of the suite's time is untrained agents playing games to the last turn; the code
# paths are the same as at full size.
SMALL = ["--policy_lm", "tiny:n_layer=1,n_embd=32",
         "--critic_lm", "tiny:num_hidden_layers=1,hidden_size=32,intermediate_size=64", "--max_turns", "5"]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing a test runs may download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture
def run_main(monkeypatch, capsys):
    """run_main(module, *flags) -> .returncode and .stderr, like subprocess.run's result:
    module.main(flags) from the repository root; the environment variables the flags set
    (--game_file, --webshop_server) are restored."""
    monkeypatch.chdir(ROOT)

    def run(module, *flags):
        saved = dict(os.environ)
        try:
            module.main(list(flags))
            code = 0
        except SystemExit as e:
            code = e.code
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)
    return run
