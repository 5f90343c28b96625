# Tidy tables and the learning-curve figure from every run's errors.


localrules:
    aggregate,
    untouched,
    subset,


rule aggregate:
    input:
        run_files(RUNS + UNTOUCHED, "errors.json"),
    output:
        errors="results/tables/errors.csv",
        runs="results/tables/runs.csv",
        figure="results/figures/learning_curves.png",
    log:
        "logs/aggregate.log",
    conda:
        "../envs/ftbench.yaml"
    shell:
        "python -m ftbench aggregate --errors {input} --runs-root results/runs "
        "--tables $(dirname {output.errors}) --figures $(dirname {output.figure}) 2>&1 | tee {log}"
