# Tidy tables and the learning-curve figure from every run's errors.


localrules:
    aggregate,
    untouched,
    subset,


rule aggregate:
    input:
        errors=run_files(RUNS + UNTOUCHED, "errors.json"),
        robustness=run_files(RUNS + UNTOUCHED, "robustness/robustness.json"),
    output:
        errors="results/tables/errors.csv",
        runs="results/tables/runs.csv",
        robustness="results/tables/robustness.csv",
        figure="results/figures/learning_curves.png",
    log:
        "logs/aggregate.log",
    conda:
        "../envs/ftbench.yaml"
    shell:
        "python -m ftbench aggregate --errors {input.errors} --robustness {input.robustness} --runs-root results/runs "
        "--tables $(dirname {output.errors}) --figures $(dirname {output.figure}) 2>&1 | tee {log}"
