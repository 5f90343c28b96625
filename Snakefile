# ftbench: fine-tuning strategies x foundation models x benchmarks x training-set sizes x seeds.
# Default config: the offline demo world (config/config.yaml); full study: --configfile config/paper.yaml

from snakemake.utils import min_version

min_version("9.27")


include: "workflow/rules/common.smk"
include: "workflow/rules/demo_data.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/aggregate.smk"


if "demo_build" in config:  # config/demo_build.yaml: rebuild the shipped demo world

    include: "workflow/rules/demo_build_common.smk"
    include: "workflow/rules/demo_build.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        rules.demo_world.input if "demo_build" in config else rules.figures.input,


onstart:
    # Local runs: one process imports torch/mace once and forks every `python -m ftbench` job.
    forkserver.start(workflow, config)


onsuccess:
    forkserver.stop()
    print_e0_warnings()
    print_recommendation()
    print(
        f"ftbench finished. Tables: {TABLES}/ (summary_*, recommendations, cost, findings; "
        f"tidy: errors.csv, runs.csv, robustness.csv); figures: {FIGURES}/; "
        "HTML report: snakemake --report report.html"
    )


onerror:
    forkserver.stop()
    print_e0_warnings()
