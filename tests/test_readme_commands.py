"""Every command in the README and its docs/ pages runs: `ftbench` ones fully (they are cheap),
`snakemake` ones as dry runs (-n) in an empty work directory. The commands are read from the pages
themselves, so a command added there without working fails here."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

# Commands that need what a test cannot give a dry run: the install line (CI runs it), the test
# suite itself, and the HTML report (needs finished results: test_pipeline builds one).
SKIP = ("python3 -m venv", "-m pytest", "--report")
# docs/own_system.md's commands run on the example file it makes first (and show placeholders):
# tests/test_own_system.py runs that path.
NOT_READ = ("own_system.md",)


def readme_pages() -> list[Path]:
    """README.md, then every docs/*.md page (sorted) but NOT_READ."""
    docs = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in NOT_READ)
    return [ROOT / "README.md", *docs]


def readme_commands() -> list[str]:
    commands = []
    for page in readme_pages():
        text = page.read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            for line in block.splitlines():
                for part in line.split(" #")[0].split("&&"):  # the install line ends by running the grid
                    part = part.strip()
                    if (
                        re.match(r"^(\.venv/bin/)?(snakemake|ftbench)\b", part)
                        and not any(s in part for s in SKIP)
                        and part not in commands
                    ):
                        commands.append(part)
        # runnable commands of the prose (`snakemake -c 2 ...`; ftbench ones there show placeholders)
        for cmd in re.findall(r"`(snakemake [^`\n]+)`", text):
            if not any(s in cmd for s in SKIP) and cmd not in commands and "profile slurm" not in cmd:
                commands.append(cmd)
    return commands


COMMANDS = readme_commands()


def test_readme_has_the_commands_this_file_expects():
    assert any(c.startswith(".venv/bin/ftbench grid --configfile config/paper.yaml") for c in COMMANDS)
    assert sum(c.startswith("snakemake") for c in COMMANDS) >= 10


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.ci
def test_readme_command_runs(command, tmp_path):
    argv = shlex.split(command)
    tool = argv[0].rsplit("/", 1)[-1]
    if tool == "ftbench":
        proc = subprocess.run(
            [sys.executable, "-m", "ftbench", *argv[1:]], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
    else:
        args = [a for a in argv[1:] if a != "slurm"]  # bare `--profile slurm` needs ~/.config: not here
        args = [str(ROOT / a) if a.startswith(("profiles/", "config/")) else a for a in args]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "-s",
                str(ROOT / "Snakefile"),
                "--directory",
                str(tmp_path),
                "-n",
                "--quiet",
                "rules",
                *args,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=600,
        )
    if "--allowed-rules" in argv:
        # "from finished results": in an empty directory it refuses to train instead of planning it
        assert proc.returncode != 0 and "Missing input files for rule aggregate" in proc.stdout + proc.stderr
        return
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    if tool == "ftbench":
        assert "fine-tune jobs" in proc.stdout


@pytest.mark.parametrize("tool", ["tables", "figures"])
def test_tables_and_figures_read_config_as_snakemake_does(tool, tmp_path):
    """An ablation's report_dir comes from its config file merged on config/config.yaml."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ftbench",
            tool,
            "--configfile",
            str(ROOT / "config" / "ablations" / "multihead_lr.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "results/ablations/multihead_lr/tables/errors.csv does not exist" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "ftbench", tool, "--config", "report_dir=results/sn2_only"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert "results/sn2_only/tables/errors.csv does not exist" in proc.stderr
