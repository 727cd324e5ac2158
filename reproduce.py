"""Run several methods over several seeds with the same trajectory budget and draw the paper's kind
of figure: mean evaluation return against trajectories collected, a band over seeds, log-scale x.

    python reproduce.py --env twenty_questions_subset --preset tiny --seeds 3
    python reproduce.py --env guess_city --preset tiny --seeds 3 --jobs 2
    python reproduce.py --env twenty_questions_subset --algos archer --seeds 1 -- --kl_coef 0.05
    python reproduce.py --offline --env twenty_questions_subset --seeds 3   # the offline table

Online (train_online.py, ppo.py, grpo.py): x = trajectories collected. Offline (train_offline.py with
--offline; algos archer = IQL + AWR, filtered_bc, bc, sarsa_awr, iql_reinforce): x = actor steps,
every row on the same dataset with the same number of actor steps.

Each seed's BC start is trained once (runs/.../bc-s<seed>.pt) and shared by every method, so the
curves start from the same policy. Runs that already finished are read, not rerun; runs that were
cut off resume from their checkpoint; `--summarize_only` draws what is there, leaving out (and
naming) any seed that stopped short of its method's longest run. Flags after `--` go to every
train_online.py run.
Writes <out>/<method>-s<seed>/ (each run's metrics.csv, curve.png, samples.txt), <out>/figure.png
and <out>/results.md (the table the README shows).
"""
import argparse
import csv
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.abspath(__file__))


def launch(cmd, log_path):
    """Run one training script; its output goes to a log file, a failure is reported, not raised."""
    with open(log_path, "w") as log:
        code = subprocess.call([sys.executable, *cmd], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return code, log_path


def read_rows(out_dir):
    path = os.path.join(out_dir, "metrics.csv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [{k: float(v) if v != "" else np.nan for k, v in r.items()} for r in csv.DictReader(f)]


def aligned(rows, xkey):
    """{x: row}, one row per x. A run resumed from a checkpoint may have logged a point twice
    (runs from before that was fixed): the first evaluation is kept, as it came first."""
    out = {}
    for r in rows:
        out.setdefault(r[xkey], r)
    return out


def finished(out_dir, budget, x):
    rows = read_rows(out_dir)
    return bool(rows) and rows[-1][x] >= budget


def submit(pool, args, script, flags, algo, seed, budget, x):
    """Start one method x seed run unless it already reached `budget` (in column x); a run that was
    cut off resumes from its checkpoint. -> a job, or None."""
    d = os.path.join(args.out, f"{algo}-s{seed}")
    if finished(d, budget, x):
        return None
    resume = ["--resume"] if os.path.exists(os.path.join(d, "checkpoint.pt")) else []
    os.makedirs(args.out, exist_ok=True)
    cmd = [script, *flags, "--algo", algo, "--seed", str(seed), "--out_dir", d, *resume]
    return pool.submit(launch, cmd, d + ".log")


def run_all(args, extra):
    common_flags = ["--env", args.env, "--preset", args.preset, "--threads", str(args.threads), *extra]
    if args.offline:
        run_offline(args, common_flags)
        return
    jobs = []
    with ThreadPoolExecutor(args.jobs) as pool:
        # 1. one BC start per seed, shared by every method (train_offline.py --algo bc would also do;
        #    a zero-trajectory filtered_bc run is the cheapest way to get exactly train_online's BC)
        bc = {}
        for seed in range(args.seeds):
            d = os.path.join(args.out, f"bc-s{seed}")
            bc[seed] = os.path.join(d, "bc.pt")
            if not os.path.exists(bc[seed]):
                cmd = ["train_online.py", *common_flags, "--algo", "filtered_bc", "--seed", str(seed),
                       "--total_trajectories", "0", "--out_dir", d]
                jobs.append(pool.submit(launch, cmd, d + ".log"))
        report(jobs)
        jobs = []
        # 2. every method from that start, the same budget
        for algo in args.algos:
            # PPO and GRPO are on-policy and cheap per game: they get ppo_factor times the budget,
            # so the sample-efficiency ratio is measured, not extrapolated. Flags after -- are
            # train_online.py's, so they do not get them.
            script, budget, flags = ((f"{algo}.py", args.budget * args.ppo_factor, common_flags[:6]) if algo in ("ppo", "grpo")
                                     else ("train_online.py", args.budget, common_flags))
            for seed in range(args.seeds):
                run_flags = [*flags, "--bc_checkpoint", bc[seed], "--total_trajectories", str(budget)]
                jobs.append(submit(pool, args, script, run_flags, algo, seed, budget, "trajectories"))
        report(jobs)


def run_offline(args, common_flags):
    """Every offline row from scratch on the env's dataset; --budget = actor steps per run (the
    critic rows also take their critic steps). No shared BC start: BC is itself a row."""
    flags = [*common_flags, "--iterations", str(args.budget // args.actor_steps), "--actor_steps", str(args.actor_steps)]
    with ThreadPoolExecutor(args.jobs) as pool:
        report([submit(pool, args, "train_offline.py", flags, algo, seed, args.budget, "actor_steps")
                for algo in args.algos for seed in range(args.seeds)])


def report(jobs):
    for job in filter(None, jobs):
        code, log = job.result()
        if code != 0:
            print(f"run failed (exit {code}); see {log}", file=sys.stderr)


def summarize(args):
    """Per method: curves over seeds on a common x grid, the figure, and the results table."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    xkey = "actor_steps" if args.offline else "trajectories"
    lines = [f"| method | seeds | start | final (sampled) mean ± std | final (sampled) median [min, max] "
             f"| final (greedy) median | best (sampled) mean | {xkey.replace('_', ' ')} | wall time per run |",
             "|---|---|---|---|---|---|---|---|---|"]
    curves = {}  # algo -> (x, mean eval return over seeds)
    per_seed = {}  # algo -> (x, (seeds, points) eval returns)
    cut = []     # notes on the seeds left out
    for algo in args.algos:
        runs = {s: aligned(read_rows(os.path.join(args.out, f"{algo}-s{s}")), xkey) for s in range(args.seeds)}
        runs = {s: r for s, r in runs.items() if r}
        if not runs:
            continue
        # A seed that stopped short of the method's longest run (cut off, still running) is left
        # out and named under the table, so it does not cut every seed's curve down to its length.
        end = max(max(r) for r in runs.values())
        for s in [s for s, r in runs.items() if max(r) < end]:
            cut.append(f"{algo} seed {s} stopped at {max(runs.pop(s)):,.0f} {xkey.replace('_', ' ')} "
                       f"(the others reached {end:,.0f}): not in the figure or the table; rerunning "
                       f"the command resumes it")
        runs = list(runs.values())
        # The points every seed has (a seed evaluated on another grid narrows them).
        x = np.array(sorted(set.intersection(*(set(r) for r in runs))))
        if not len(x):
            continue
        y = np.array([[run[v]["eval_return"] for v in x] for run in runs])      # (seeds, points)
        g = np.array([[run[v]["eval_return_greedy"] for v in x] for run in runs])
        curves[algo] = (x, y.mean(0))
        per_seed[algo] = (x, y)
        ax.plot(np.maximum(x, 1), y.mean(0), label=algo)
        ax.fill_between(np.maximum(x, 1), y.min(0), y.max(0), alpha=0.2)
        wall = np.mean([run[x[-1]]["wall_s"] for run in runs]) / 60
        lines.append(f"| {algo} | {len(runs)} | {np.median(y[:, 0]):.2f} | {y[:, -1].mean():.2f} ± {y[:, -1].std():.2f} "
                     f"| {np.median(y[:, -1]):.2f} "
                     f"[{y[:, -1].min():.2f}, {y[:, -1].max():.2f}] | {np.median(g[:, -1]):.2f} "
                     f"| {y.max(1).mean():.2f} | {x[-1]:.0f} | {wall:.0f} min |")
    ax.set_xscale("linear" if args.offline else "log")
    ax.set_xlabel("actor steps on the fixed dataset" if args.offline else "trajectories collected")
    ax.set_ylabel("mean eval return")
    ax.set_title(f"{args.env}, {args.preset} preset{', offline' if args.offline else ''} "
                 f"(band: min-max over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "figure.png"), dpi=110)
    table = "\n".join(lines + [""] * bool(cut) + cut
                       + ([] if args.offline else ["", efficiency_ratio(curves), *threshold_table(per_seed)]))
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    print(table)


def threshold_table(per_seed, gains=(2, 4)):
    """Sample efficiency at fixed thresholds, seed by seed: the trajectories a run needed before its
    sampled eval return first reached its own BC start + 2 (and + 4), median [min, max] over the
    seeds (a seed that never got there counts as infinite), and each method's median over
    ArCHer's. Markdown lines for results.md."""
    lines = ["", "| method | " + " | ".join(f"trajectories to start + {g}: median [min, max], seeds there" for g in gains)
             + " |", "|---|" + "---|" * len(gains)]
    need = {}
    for algo, (x, y) in per_seed.items():
        cells = []
        for g in gains:
            hit = y >= y[:, :1] + g                                                  # (seeds, points)
            n = np.where(hit.any(1), x[hit.argmax(1)], np.inf)                       # (seeds,)
            need[algo, g] = np.median(n)
            there = n[np.isfinite(n)]
            cells.append(f"{np.median(n):,.0f} [{there.min():,.0f}, {n.max():,.0f}], {len(there)}/{len(n)}"
                         if np.isfinite(np.median(n)) else f"not reached, {len(there)}/{len(n)}")
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    for g in gains:
        base = need.get(("archer", g), np.inf)
        ratios = [f"{algo} {need[algo, g] / base:.1f}x" for algo in per_seed
                  if algo != "archer" and np.isfinite(need[algo, g]) and np.isfinite(base)]
        if ratios:
            lines.append(f"\nAt start + {g}, each method's median trajectories over ArCHer's: {', '.join(ratios)}.")
    return lines


def efficiency_ratio(curves):
    """The paper's headline: trajectories PPO needed to reach its best mean return, divided by the
    trajectories ArCHer needed to reach that same return (both read off the mean curves). When
    ArCHer never reaches PPO's best, the same ratio is read at ArCHer's best instead."""
    if "ppo" not in curves or "archer" not in curves:
        return "sample-efficiency ratio: needs both ppo and archer runs"
    (xp, yp), (xa, ya) = curves["ppo"], curves["archer"]
    best = yp.max()
    need_ppo = xp[int(np.argmax(yp >= best))]
    if need_ppo == 0:  # a ratio of 0 trajectories to anything says nothing
        return (f"sample-efficiency ratio: none, PPO's best ({best:.2f}) is its start: it never rose "
                f"above it in {xp[-1]:.0f} trajectories")
    if not (ya >= best).any():
        line = (f"sample-efficiency ratio: ArCHer never reached PPO's best ({best:.2f} at {need_ppo:.0f} "
                f"trajectories) within {xa[-1]:.0f} trajectories")
        # Then measure it the other way round, at ArCHer's best: < 1x means PPO got there first.
        best_a = ya.max()
        need_a = xa[int(np.argmax(ya >= best_a))]
        if need_a == 0:
            return line + f"; nor is there a ratio at ArCHer's best ({best_a:.2f}): it is its start"
        if (yp >= best_a).any():
            need_p = xp[int(np.argmax(yp >= best_a))]
            line += (f"; at ArCHer's best ({best_a:.2f}) it is PPO {need_p:.0f} trajectories / ArCHer "
                     f"{need_a:.0f}: {need_p / need_a:.1f}x")
        return line
    need_archer = max(xa[int(np.argmax(ya >= best))], 1)
    return (f"sample-efficiency ratio: PPO reached its best {best:.2f} at {need_ppo:.0f} trajectories, "
            f"ArCHer at {need_archer:.0f}: {need_ppo / need_archer:.1f}x")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="twenty_questions_subset")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--offline", action="store_true", help="train_offline.py rows instead of online runs")
    p.add_argument("--algos", nargs="+", default=None,
                   help="online: archer, filtered_bc, chai, ppo, grpo (default all); offline: archer, sarsa_awr, "
                        "iql_reinforce, filtered_bc, bc (default archer filtered_bc bc)")
    p.add_argument("--ppo_factor", type=int, default=10, help="PPO's and GRPO's budget = this x --budget")
    p.add_argument("--budget", type=int, default=3000, help="trajectories per run (offline: actor steps per run)")
    p.add_argument("--actor_steps", type=int, default=30, help="offline: actor steps per iteration (one evaluation every eval_every)")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side (one CPU thread each)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--out", default="", help="default runs/reproduce/<env>-<preset>")
    p.add_argument("--summarize_only", action="store_true", help="redraw the figure and table from existing runs")
    args = p.parse_args(argv)
    args.algos = args.algos or (["archer", "filtered_bc", "bc"] if args.offline else ["archer", "filtered_bc", "chai", "ppo", "grpo"])
    kind = "offline" if args.offline else "online"
    args.out = args.out or os.path.join("runs", "reproduce", f"{args.env}-{args.preset}-{kind}")
    os.makedirs(args.out, exist_ok=True)
    if not args.summarize_only:
        run_all(args, extra)
    summarize(args)


if __name__ == "__main__":
    main()
