"""Packaging and start-up: a wheel carries the data and notebooks and runs outside the checkout; ``--help`` loads
no heavy library; README's layout table matches the tree; docs/TRACE.md lists the columns the trace writes."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_help_imports_no_heavy_library():
    code = ("import sys; from workbench.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'ray', 'plotly') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
    for module in ("workbench.cli", "workbench"):  # `python -m workbench` is the command too (benchmarks/gpu.sh)
        help_text = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                                   timeout=60).stdout
        for command in ("run", "demo", "report", "replay", "sweep", "export", "train"):
            assert command in help_text, module


def test_every_subcommand_help_has_a_whole_plain_sentence():
    import argparse

    from workbench.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) >= {"run", "demo", "report", "replay", "sweep", "export", "train"}
    for name, parser in sub.choices.items():
        text = parser.description or ""
        assert text.rstrip().endswith((".", ")")) and "``" not in text, (name, text)


def test_the_gpu_script_parses_and_its_run_line_is_a_valid_command():
    """benchmarks/gpu.sh runs only where a GPU is lent: here, its shell syntax, and its `workbench run` and
    `replay` lines against the real parser (a renamed flag would otherwise surface only on the GPU machine)."""
    script = ROOT / "benchmarks" / "gpu.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    from workbench.cli import build_parser

    text = script.read_text().replace("\\\n", "")
    lines = re.findall(r"-m workbench (run|replay) (.*)", text)
    assert [command for command, _ in lines] == ["run", "replay"]  # found, so the check below checks something
    for line in lines:
        words = [w.strip('"') for w in line[1].split()]
        args = [line[0], *[w.replace("$run", "out").replace("$device", "cuda").replace("$per", "8")
                           .replace("$tokens", "48") for w in words]]
        build_parser().parse_args(args)  # a usage error exits: SystemExit fails the test


def test_a_wheel_runs_outside_the_checkout(tmp_path):
    """pip install of the built wheel into a fresh venv (dependencies borrowed from this environment through a
    .pth line), then `workbench run --limit 1` with the bundled default pair and prompts, from another directory."""
    wheels, venv = tmp_path / "wheels", tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    fresh_python = venv / "bin" / "python"
    site = subprocess.run([str(fresh_python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")  # torch & co., not the checkout
    subprocess.run([sys.executable, "-m", "pip", "--python", str(fresh_python), "install", "-q", "--no-deps",
                    *map(str, wheels.glob("*.whl"))], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(fresh_python), "-c", "import workbench; print(workbench.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, check=True).stdout
    assert str(venv) in where  # the installed copy, not the checkout
    done = subprocess.run([str(venv / "bin" / "workbench"), "run", "--limit", "1", "--max-new-tokens", "4",
                           "--no-warmup", "--no-progress", "--out", "run"], cwd=elsewhere, capture_output=True,
                          text=True, timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "run" / "requests-00000.parquet").is_file()


def test_readme_layout_table_matches_the_tree():
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.split("## Layout", 1)[1].splitlines() if line.startswith("| `")]
    listed = {path for row in rows for path in re.findall(r"`([^`]+)`", row.split("|")[1])}  # the "where" cells
    for path in listed:
        assert (ROOT / path).exists(), f"README layout names {path!r}, which does not exist"
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "workbench").rglob("*.py") if p.name != "__init__.py"}
    named = " ".join(listed)
    missing = sorted(m for m in modules if m not in named and m.rsplit("/", 1)[0] + "/" not in named)
    assert not missing, f"modules the README layout table does not mention: {missing}"


def test_setup_refuses_a_disk_without_room_in_one_line(tmp_path):
    """scripts/setup.sh on a disk with too little room for the environment (~2.2 GB): one line and exit 1 before pip
    starts, not pip's "No space left on device" halfway through (a stand-in `df` reports 300 MB free)."""
    for name in ("requirements.txt", "requirements-ray.txt", "pyproject.toml"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "setup.sh").write_bytes((ROOT / "scripts" / "setup.sh").read_bytes())
    (tmp_path / "bin").mkdir()
    fake_df = tmp_path / "bin" / "df"
    fake_df.write_text("#!/bin/sh\necho 'Filesystem 1048576-blocks Used Available Capacity Mounted'\n"
                       "echo '/dev/x 1000 700 300 70% /'\n")
    fake_df.chmod(0o755)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)}
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and not done.stderr, (done.stdout, done.stderr)
    assert lines[0].startswith("error: 300 MB free on the disk of") and "free some space" in lines[0]
    assert not (tmp_path / ".venv" / ".workbench-installed").exists()


def test_trace_md_documents_every_column_of_every_table_in_order_with_its_type():
    """docs/TRACE.md is the trace's contract: each table's column list there is the schema ``trace`` writes, in order,
    with the same types (a column added, renamed or retyped without its documentation fails here)."""
    from workbench.trace import SCHEMAS

    kinds = {"string": "str", "int64": "int", "double": "float", "bool": "bool", "list<item: int64>": "list[int]"}
    doc = (ROOT / "docs" / "TRACE.md").read_text()
    for table, schema in SCHEMAS.items():
        section = re.search(rf"^## `{table}`.*?\n(.*?)(?=^## )", doc, re.S | re.M)
        assert section, f"docs/TRACE.md has no section for the {table} table"
        documented = []
        for row in section.group(1).splitlines():
            cells = [c.strip() for c in row.strip("|").split("|")] if row.startswith("| ") else []
            if len(cells) >= 3 and cells[0] != "column":  # "run_id, request_id" documents two columns in one row
                documented += [(name.strip(" `"), cells[1]) for name in cells[0].split(",")]
        assert documented == [(f.name, kinds[str(f.type)]) for f in schema], table
