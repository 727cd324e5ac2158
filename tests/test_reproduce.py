"""reproduce.py's headline number (the sample-efficiency ratio read off two mean curves) and the
table it writes from the runs' metrics."""
import csv
import os

import numpy as np

import reproduce
from reproduce import efficiency_ratio


def test_ratio_is_ppo_trajectories_over_archer_trajectories_to_ppo_best():
    # PPO's best mean is -13.0, first reached at 2000 games; ArCHer first reaches >= -13.0 at 200.
    ppo = (np.array([0, 1000, 2000, 3000]), np.array([-15.0, -14.0, -13.0, -13.5]))
    archer = (np.array([0, 100, 200, 300]), np.array([-15.0, -14.0, -12.9, -12.0]))
    assert efficiency_ratio({"ppo": ppo, "archer": archer}).endswith(": 10.0x")


def test_ratio_says_when_archer_never_reaches_ppo_best():
    ppo = (np.array([0, 1000]), np.array([-15.0, -10.0]))
    archer = (np.array([0, 100]), np.array([-15.0, -14.0]))
    assert "never reached" in efficiency_ratio({"ppo": ppo, "archer": archer})
    assert "needs both" in efficiency_ratio({"archer": archer})


def test_an_inverted_ratio_is_measured_at_archer_best():
    # ArCHer's best mean, -12.0, first at 300 games; PPO first reaches >= -12.0 at 150: 0.5x.
    ppo = (np.array([0, 150, 300, 450]), np.array([-15.0, -11.5, -10.0, -9.0]))
    archer = (np.array([0, 100, 200, 300, 400]), np.array([-15.0, -13.0, -12.5, -12.0, -12.2]))
    line = efficiency_ratio({"ppo": ppo, "archer": archer})
    assert "never reached PPO's best (-9.00 at 450 trajectories)" in line
    assert line.endswith("at ArCHer's best (-12.00) it is PPO 150 trajectories / ArCHer 300: 0.5x")


def test_thresholds_are_read_seed_by_seed_from_each_seeds_own_start():
    x = np.array([0, 100, 200, 300])
    archer = np.array([[-8.0, -7.0, -5.9, -3.9],     # + 2 at 200, + 4 at 300
                       [-7.0, -4.9, -4.0, -4.5],     # + 2 at 100, + 4 never
                       [-6.0, -4.0, -3.0, -2.0]])    # + 2 at 100, + 4 at 300
    fbc = np.array([[-8.0, -7.5, -7.0, -5.9], [-7.0, -7.0, -7.0, -7.0], [-6.0, -5.0, -4.0, -3.0]])
    lines = reproduce.threshold_table({"archer": (x, archer), "filtered_bc": (x, fbc)})
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ") and "---" not in line}
    assert rows["archer"] == "| archer | 100 [100, 200], 3/3 | 300 [300, inf], 2/3 |"
    assert rows["filtered_bc"] == "| filtered_bc | 300 [200, inf], 2/3 | not reached, 0/3 |"
    assert lines[-1] == "\nAt start + 2, each method's median trajectories over ArCHer's: filtered_bc 3.0x."


def test_no_ratio_when_the_best_is_the_start():
    # At the floor a method's best can be its untrained start (x = 0): no ratio is read there.
    flat = (np.array([0, 1000, 2000]), np.array([-19.0, -19.5, -19.2]))
    rises = (np.array([0, 100]), np.array([-19.4, -19.1]))
    line = efficiency_ratio({"ppo": flat, "archer": rises})
    assert line.startswith("sample-efficiency ratio: none, PPO's best (-19.00) is its start")
    line = efficiency_ratio({"ppo": (np.array([0, 1000]), np.array([-19.2, -18.9])),
                             "archer": (np.array([0, 100]), np.array([-19.0, -19.3]))})
    assert "never reached PPO's best (-18.90 at 1000 trajectories)" in line
    assert line.endswith("nor is there a ratio at ArCHer's best (-19.00): it is its start")


def write_run(path, xkey, points):
    os.makedirs(path)
    with open(os.path.join(path, "metrics.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, ["iteration", xkey, "eval_return", "eval_return_greedy", "wall_s"])
        w.writeheader()
        for i, (x, y) in enumerate(points):
            w.writerow({"iteration": i, xkey: x, "eval_return": y, "eval_return_greedy": y - 1, "wall_s": 60.0 * i})


def test_offline_table_reports_mean_and_std_over_seeds_at_equal_steps(tmp_path):
    # Three bc seeds end at -12, -14, -16 (mean -14, population std 1.63); archer at -10 twice.
    for seed, final in enumerate([-12.0, -14.0, -16.0]):
        write_run(tmp_path / f"bc-s{seed}", "actor_steps", [(0, -20.0), (300, -15.0), (600, final)])
    for seed in range(2):
        write_run(tmp_path / f"archer-s{seed}", "actor_steps", [(0, -20.0), (300, -12.0), (600, -10.0)])
    reproduce.main(["--offline", "--summarize_only", "--seeds", "3", "--algos", "archer", "bc",
                    "--out", str(tmp_path)])
    table = (tmp_path / "results.md").read_text()
    bc_row = next(line for line in table.splitlines() if line.startswith("| bc |"))
    assert "| 3 | -20.00 | -14.00 ± 1.63 | -14.00 [-16.00, -12.00] | -15.00 |" in bc_row
    assert "| archer | 2 |" in table and "-10.00 ± 0.00" in table
    assert "actor steps" in table and "sample-efficiency" not in table
    assert (tmp_path / "figure.png").stat().st_size > 0


def test_seeds_are_averaged_at_equal_trajectories_whatever_their_rows(tmp_path):
    # Seed 0 logged its start twice (a resume from before that was fixed); seed 1 was evaluated
    # on a coarser grid, so only 0, 128 and 256 are shared.
    write_run(tmp_path / "ppo-s0", "trajectories", [(0, -15.0), (0, -15.5), (64, -13.0), (128, -11.0), (192, -9.0), (256, -9.0)])
    write_run(tmp_path / "ppo-s1", "trajectories", [(0, -17.0), (128, -13.0), (256, -13.0)])
    reproduce.main(["--summarize_only", "--seeds", "2", "--algos", "ppo", "--out", str(tmp_path)])
    row = next(line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| ppo |"))
    # start: median of -15 and -17 (the first -15 kept); final at 256: -9 and -13; best: mean of
    # each seed's best on the shared points (-9, -13).
    assert row.startswith("| ppo | 2 | -16.00 | -11.00 ± 2.00 | -11.00 [-13.00, -9.00] | -12.00 | -11.00 | 256 |")


def test_a_seed_cut_short_is_left_out_and_named_so_it_does_not_shorten_the_curve(tmp_path):
    # Seeds 0 and 2 reached 192; seed 1 was cut off at 64 (a run still going, or killed).
    write_run(tmp_path / "ppo-s0", "trajectories", [(0, -15.0), (64, -13.0), (128, -11.0), (192, -9.0)])
    write_run(tmp_path / "ppo-s1", "trajectories", [(0, -17.0), (64, -16.0)])
    write_run(tmp_path / "ppo-s2", "trajectories", [(0, -16.0), (64, -14.0), (128, -12.0), (192, -11.0)])
    reproduce.main(["--summarize_only", "--seeds", "3", "--algos", "ppo", "--out", str(tmp_path)])
    lines = (tmp_path / "results.md").read_text().splitlines()
    row = next(line for line in lines if line.startswith("| ppo |"))
    assert row.startswith("| ppo | 2 | -15.50 | -10.00 ± 1.00 | -10.00 [-11.00, -9.00] | -11.00 | -10.00 | 192 |")
    assert any(line.startswith("ppo seed 1 stopped at 64 trajectories (the others reached 192)") for line in lines)


def test_commands_share_the_bc_start_give_ppo_its_factor_and_skip_finished_runs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(reproduce, "launch", lambda cmd, log: (calls.append(cmd), (0, log))[1])
    write_run(tmp_path / "archer-s1", "trajectories", [(0, -15.0), (64, -12.0)])  # already done
    reproduce.main(["--seeds", "2", "--algos", "archer", "ppo", "--budget", "64", "--out", str(tmp_path),
                    "--", "--kl_coef", "0.05"])
    runs = {(c[c.index("--algo") + 1], c[c.index("--seed") + 1]): c for c in calls}
    assert [c[c.index("--total_trajectories") + 1] for c in calls[:2]] == ["0", "0"]   # the BC starts
    assert ("archer", "1") not in runs                                               # finished: read only
    archer, ppo = runs[("archer", "0")], runs[("ppo", "1")]
    assert archer[0] == "train_online.py" and "--kl_coef" in archer
    assert archer[archer.index("--bc_checkpoint") + 1] == str(tmp_path / "bc-s0" / "bc.pt")
    assert ppo[0] == "ppo.py" and "--kl_coef" not in ppo                             # flags after -- are not PPO's
    assert ppo[ppo.index("--total_trajectories") + 1] == "640"                       # 10x the budget
    assert ppo[ppo.index("--bc_checkpoint") + 1] == str(tmp_path / "bc-s1" / "bc.pt")
