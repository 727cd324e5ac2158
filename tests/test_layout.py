"""The repo as a reader finds it: the design card's files at the top level and few others, no
import cycle, tasks reached only through envs.py, no script importing another, and every command
the README shows pointing at something that runs (each target's --help, in a subprocess)."""
import ast
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_SCRIPTS = {"train_online", "train_offline", "ppo", "reproduce"}  # run, never imported


def project_modules():
    """{dotted module name: path} of every Python file of the project (tests and .dev aside)."""
    mods = {}
    for folder in ("", "tasks", "benchmarks"):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith(".py"):
                stem = name[:-3]
                dotted = (folder + "." + stem if folder else stem).replace(".__init__", "")
                mods[dotted] = os.path.join(ROOT, folder, name)
    return mods


def imports(path, modules):
    """The project modules `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in modules}
    return found


def test_the_top_level_holds_the_design_cards_files_and_at_most_16_python_files():
    top = [f for f in os.listdir(ROOT) if f.endswith(".py")]
    assert len(top) <= 16, sorted(top)
    for name in ["critic.py", "actor.py", "buffer.py", "envs.py", "train_online.py", "train_offline.py",
                 "requirements.txt", "tests"]:
        assert os.path.exists(os.path.join(ROOT, name)), name


def test_no_import_cycle_no_script_imports_a_script_and_tasks_only_through_envs():
    mods = project_modules()
    graph = {m: imports(p, mods) - {m} for m, p in mods.items()}
    state = {}  # 1: on the current path, 2: done

    def visit(m, path):
        state[m] = 1
        for n in graph[m]:
            assert state.get(n) != 1, "import cycle: " + " -> ".join(path + [n])
            if n not in state:
                visit(n, path + [n])
        state[m] = 2
    for m in graph:
        if m not in state:
            visit(m, [m])
    for m, deps in graph.items():
        assert not deps & ENTRY_SCRIPTS, f"{m} imports an entry script: {deps & ENTRY_SCRIPTS}"
        if m.startswith("tasks"):  # the tasks import nothing above them
            assert all(d.startswith("tasks") for d in deps), (m, deps)
        elif not m.startswith("benchmarks") and m != "envs":  # the training code goes through envs
            assert not any(d.startswith("tasks") for d in deps), (m, deps)


def readme_commands():
    """Every `python ...` command the README shows: in code blocks, indented, or inline."""
    text = open(os.path.join(ROOT, "README.md")).read()
    cmds = re.findall(r"^(?:\s{4})?(python [^\n`]+)$", text, re.M) + re.findall(r"`(python [^`]+)`", text)
    cmds += [c for block in re.findall(r"```bash\n(.*?)```", text, re.S)
             for line in block.splitlines() for c in line.split("&&") if c.strip().startswith("python")]
    return sorted({" ".join(c.split()) for c in cmds})


def test_the_readme_is_a_front_page_whose_commands_all_name_something_that_runs():
    assert len(open(os.path.join(ROOT, "README.md")).read().splitlines()) <= 250
    cmds = readme_commands()
    assert any("train_online.py --preset tiny" in c for c in cmds) and any("pytest" in c for c in cmds)
    targets = set()
    for cmd in cmds:
        words = cmd.split()
        target = words[1:3] if words[1] == "-m" else words[1:2]
        if target[-1] == "pytest":
            continue
        path = target[-1].replace(".", "/") + ".py" if target[0] == "-m" else target[0]
        assert os.path.exists(os.path.join(ROOT, path)) or os.path.exists(os.path.join(ROOT, path[:-3], "__main__.py")), cmd
        targets.add(tuple(target))
    # Each target runs as `python <target> --help` would (runpy, as __main__), all in one process so
    # torch and transformers are imported once (one subprocess per command took 22 s of the suite).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", HELP_DRIVER, json.dumps(sorted(targets))], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    answers = json.loads(p.stdout.splitlines()[-1])
    assert sorted(answers) == sorted(" ".join(t) for t in targets)
    for target, (code, text) in answers.items():
        assert code == 0 and "usage" in text.lower(), (target, code, text[-2000:])


HELP_DRIVER = """
import contextlib, io, json, runpy, sys
sys.path.insert(0, ".")
answers = {}
for target in json.loads(sys.argv[1]):
    sys.argv, out, code = [target[-1], "--help"], io.StringIO(), None
    with contextlib.redirect_stdout(out):
        try:
            if target[0] == "-m":
                runpy.run_module(target[1], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(target[0], run_name="__main__")
        except SystemExit as e:
            code = e.code
    answers[" ".join(target)] = [code, out.getvalue()]
print(json.dumps(answers))
"""


@pytest.mark.parametrize("path", ["README.md"] + [os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs")))
                                                  if f.endswith(".md")])
def test_numbers_are_dated_by_commit(path):
    assert not re.search(r"\bsessions?\b", open(os.path.join(ROOT, path)).read(), re.I)
