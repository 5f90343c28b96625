"""After scancel + rerun: the rerun loaded the checkpoint and trained on to max_num_epochs.

usage: check_resume.py WORKDIR RUN_DIR CKPT_DIR MAX_EPOCHS KILLED_AT_EPOCH RERUN_SNAKEMAKE_LOG
"""

import json
import re
import sys
from pathlib import Path

work, run, ckpt, epochs, killed_at, rerun_log = sys.argv[1:7]
work, epochs, killed_at = Path(work), int(epochs), int(killed_at)
rel = run.removeprefix("results/runs/")
rule_log = (work / "logs" / "finetune" / rel).with_suffix(".log")  # rewritten by the rerun
text = rule_log.read_text()
smk = Path(rerun_log).read_text()

problems = []
m = re.search(r"Loading checkpoint: (\S+)", text)
if not m:
    problems.append(f"no 'Loading checkpoint' in {rule_log}")
elif (work / m.group(1)).parent.resolve() != (work / ckpt).resolve():
    problems.append(f"loaded {m.group(1)}, not from {ckpt}")
resumed = [int(e) for e in re.findall(r"INFO: Epoch (\d+):", text)]
if not resumed or min(resumed) < killed_at or killed_at == 0:
    problems.append(f"rerun epochs start at {resumed[:1]}, the checkpoint was epoch {killed_at}")
if resumed and max(resumed) != epochs - 1:
    problems.append(f"rerun's last epoch {max(resumed)}, expected {epochs - 1}")
info = json.loads((work / run / "run.json").read_text())
if info["status"] != "ok" or info["epochs"] != epochs:
    problems.append(f"run.json: status {info['status']}, epochs {info['epochs']} (expected ok, {epochs})")
if not list((work / ckpt).glob("*.pt")):
    problems.append("the checkpoint folder is gone")
if not re.search(r"has been submitted with SLURM jobid", smk):
    problems.append("the rerun did not go through sbatch")
if problems:
    print("resume FAILED:\n  " + "\n  ".join(problems))
    sys.exit(1)
print(
    f"resume: scancel at checkpoint epoch {killed_at}; rerun {m.group(0)}; rerun trained epochs "
    f"{min(resumed)}..{max(resumed)}; run.json epochs={info['epochs']} (max_num_epochs {epochs}), "
    f"status {info['status']}"
)
