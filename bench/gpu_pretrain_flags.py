"""Write the mace flags of each demo generation's pretraining, as demo_build.smk passes them,
for bench/gpu_pretrain.sh (which runs where Snakemake may not be installed)."""

import json
import sys
from pathlib import Path

from ftbench.core.config import pretrain_flags, read_yaml

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
config = read_yaml(Path("config/config.yaml"))
build = read_yaml(Path("config/demo_build.yaml"))["demo_build"]
for gen, entry in build["generations"].items():
    (out / f"{gen}.json").write_text(json.dumps(pretrain_flags(config["training"]["mace_flags"], entry)))
    p = entry["pretrain"]
    (out / f"{gen}.args").write_text(f"{p['stages']} {p['epochs_per_stage']} {p.get('seed', 1)}\n")
