"""bench_speed.py, the script itself at a tiny size: every part is timed in both modes, on the real
train_online.py updates, and a bad flag is a one-line error."""
import json

import pytest

from benchmarks import bench_speed

TINY = ["--preset", "tiny", "--env", "twenty_questions_subset", "--batch_size", "4",
        "--critic_batch_size", "4", "--max_new_tokens", "8", "--repeats", "1"]


def test_times_sample_critic_and_actor_steps_with_and_without_buckets(tmp_path, capsys):
    out = tmp_path / "speed.json"
    bench_speed.main([*TINY, "--out", str(out)])
    result = json.loads(out.read_text())
    parts, modes = ("sample", "critic step", "actor step"), ("unbucketed", "bucketed")
    assert set(result["seconds"]) == {f"{p}/{m}" for p in parts for m in modes}
    assert all(s > 0 for s in result["seconds"].values())
    assert result["bucket_tokens"] == 2048  # the CPU default of models.default_bucket_tokens
    table = capsys.readouterr().out
    assert all(f"| {p} |" in table for p in parts)


def test_zero_repeats_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as e:
        bench_speed.main([*TINY[:-2], "--repeats", "0"])
    assert e.value.code == 2 and "--repeats" in capsys.readouterr().err
