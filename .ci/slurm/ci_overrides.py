"""Command-line overrides that fit profiles/slurm onto the CI cluster (one small node, a fake GPU,
no accounting). Prints one argument per line. Resource *kinds* (gpu, serial, cpus_per_gpu, groups)
stay the profile's; only sizes shrink and the partition/account change."""

import sys

import yaml

profile = yaml.safe_load(open(sys.argv[1]))
cpus = int(sys.argv[2])
args = ["--default-resources", "slurm_partition=ci", "mem_mb=1000", "disk_mb=100", "runtime=10"]
# no slurm_account: the CI cluster has no accounting (the plugin then submits without -A)
args.append("--set-resources")
for rule, res in profile.get("set-resources", {}).items():
    for key, value in res.items():
        if key == "mem_mb":
            value = min(int(value), 1500)
        elif key in ("cpus_per_gpu", "cpus_per_task"):
            value = min(int(value), max(1, cpus // 2))
        args.append(f"{rule}:{key}={value}")
# small bundles, so the micro grid (9 evaluate, 9 robustness) still makes several group jobs
args += ["--group-components", "evaluate=4", "robustness=4", "prep=2"]
args += [
    "--jobs",
    "6",
    "--latency-wait",
    "5",
    # no slurmdbd here: sacct would fail and snakemake would wait forever (MinJobAge=300)
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "2",
    "--slurm-keep-successful-logs",
]
print("\n".join(args))
