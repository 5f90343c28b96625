# Downloads of the real study's inputs (config/paper.yaml): local rules, so they run where there
# is internet (the login node). Pre-staged files under data_dir/sources are used when hashes match.


localrules:
    fetch_model,
    fetch_benchmark,
    fetch_replay_pool,


rule fetch_model:
    output:
        os.path.join(DATA, "models", "{model}.model"),
    log:
        "logs/fetch_model/{model}.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        sources=ftc.sources_path(config),
        cache=os.path.join(DATA, "sources"),
        spec=lambda w: CATALOG["foundation_models"][w.model]["fetch"],
    shell:
        "python -m ftbench fetch --sources {params.sources} --source {params.spec[source]} "
        "--file {params.spec[file]} --data-dir {params.cache} --out {output} > {log} 2>&1"


rule fetch_benchmark:
    output:
        os.path.join(DATA, "benchmarks", "{benchmark}", "{part}.xyz"),
    log:
        "logs/fetch_benchmark/{benchmark}_{part}.log",
    wildcard_constraints:
        part="data|valid_data|test_data",
    conda:
        "../envs/ftbench.yaml"
    params:
        sources=ftc.sources_path(config),
        cache=os.path.join(DATA, "sources"),
        source=lambda w: CATALOG["benchmarks"][w.benchmark]["fetch_source"],
        file=lambda w: CATALOG["benchmarks"][w.benchmark]["files"][w.part],
        labels=lambda w: label_keys(CATALOG["benchmarks"][w.benchmark]),
        raw=lambda w, output: output[0] + ".raw",
    shell:
        "(python -m ftbench fetch --sources {params.sources} --source {params.source} "
        "--file {params.file} --data-dir {params.cache} --out {params.raw} && "
        "python -m ftbench convert --format extxyz {params.raw} {output} {params.labels} && "
        "rm {params.raw}) > {log} 2>&1"


# Pools are used as downloaded: the replay step streams them and reads their label keys itself
# (MPtrj's 1.6M configurations are never converted or held in memory).
rule fetch_replay_pool:
    output:
        os.path.join(DATA, "replay", "{source}", "{file}.xyz"),
    log:
        "logs/fetch_replay_pool/{source}_{file}.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        sources=ftc.sources_path(config),
        cache=os.path.join(DATA, "sources"),
    shell:
        "python -m ftbench fetch --sources {params.sources} --source {wildcards.source} "
        "--file {wildcards.file} --data-dir {params.cache} --out {output} > {log} 2>&1"
