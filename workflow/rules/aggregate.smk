# Tidy tables from every run, then the study's tables and figures from those tables only: the
# `figures` target never needs a model, so regenerating figures never trains or evaluates.


localrules:
    aggregate,
    tables,
    figure,
    figures,
    benchmark_done,


REPORT_DIR = report_dir()
TABLES = f"{REPORT_DIR}/tables"
FIGURES = f"{REPORT_DIR}/figures"
LOG_TAG = "_".join(REPORT_DIR.split(os.sep))
# every figure name (the report's and the probes'): a list and the probe registry, no pandas
FIGURE_NAMES = figure_names()
TIDY = {
    "errors": f"{TABLES}/errors.csv",
    "runs": f"{TABLES}/runs.csv",
    "robustness": f"{TABLES}/robustness.csv",
    "rdf": f"{TABLES}/rdf.csv.gz",
    "dimers": f"{TABLES}/dimers.csv.gz",
    "training_curves": f"{TABLES}/training_curves.csv.gz",
    "survival": f"{TABLES}/survival.csv",
    "references": f"{TABLES}/references.csv",
    "replay_steps": f"{TABLES}/replay_steps.csv",
}
STUDY_TABLES = [
    f"{TABLES}/{name}.{ext}"
    for name in [f"summary_{b}" for b in config["benchmarks"]]
    + ["recommendations", "cost", "findings"]
    for ext in ("csv", "md", "tex")
] + [f"{TABLES}/recommendations.txt"]


rule aggregate:
    input:
        **run_results(RUNS + UNTOUCHED),
        # read beside each errors.json (status, cost, flags): a missing one is rebuilt by its
        # fine-tune before aggregate starts, never a traceback after the tables were deleted
        runs=run_files(RUNS + UNTOUCHED, "run.json"),
        # only where robustness runs (robustness.benchmarks)
        reference=expand(
            "results/data/{benchmark}/reference_rdf.csv",
            benchmark=sorted({r.benchmark for r in robustness_runs(RUNS + UNTOUCHED)}),
        ),
        replay=replay_summaries(),
    output:
        **TIDY,
    log:
        f"logs/aggregate/{LOG_TAG}.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        tables=subpath(output[0], parent=True),
    shell:
        "python -m ftbench aggregate --errors {input.errors} --pt-eval {input.pt_eval} "
        "--robustness {input.robustness} --reference-rdf {input.reference} "
        "--replay-summaries {input.replay} --runs-root results/runs --tables {params.tables} 2>&1 | tee {log}"


rule tables:
    input:
        **TIDY,
    output:
        [report(p, category="Tables") if p.endswith(".md") else p for p in STUDY_TABLES],
    log:
        f"logs/tables/{LOG_TAG}.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        tables=subpath(input[0], parent=True),
        grid=tables_grid_args(),
        findings=quoted_json(config["findings"]),
    shell:
        "python -m ftbench tables --tables {params.tables} {params.grid} --findings {params.findings} "
        "2>&1 | tee {log}"


rule figure:
    input:
        **TIDY,
    output:
        png=report(
            f"{FIGURES}/{{name}}.png",
            caption="../report/figure.rst",
            category="Figures",
        ),
        pdf=f"{FIGURES}/{{name}}.pdf",
    log:
        f"logs/figures/{LOG_TAG}/{{name}}.log",
    wildcard_constraints:
        name="|".join(FIGURE_NAMES),
    conda:
        "../envs/ftbench.yaml"
    params:
        tables=subpath(input[0], parent=True),
        out=subpath(output[0], parent=True),
    shell:
        "python -m ftbench figures --tables {params.tables} --out {params.out} --only {wildcards.name} > {log} 2>&1"


rule figures:
    input:
        # the config's `figures`: an ablation's figure only where its config ran it
        expand(
            f"{FIGURES}/{{name}}.{{ext}}", name=config["figures"], ext=("png", "pdf")
        ),
        STUDY_TABLES,


rule benchmark_done:
    # Partial rerun target: `snakemake results/benchmarks/sn2.done` runs one benchmark's cells.
    input:
        unpack(
            lambda w: run_results(
                [r for r in RUNS + UNTOUCHED if r.benchmark == w.benchmark]
            )
        ),
    output:
        "results/benchmarks/{benchmark}.done",
    log:
        "logs/benchmarks/{benchmark}.log",
    conda:
        "../envs/ftbench.yaml"
    shell:
        "printf '%s\\n' {input} > {output} 2> {log}"
