# Downloads of the real study's inputs (config/paper.yaml) and copies of a user's own files
# (`source: local`): local rules, so they run where there is internet (the login node).
# Pre-staged files under data_dir/sources are used when hashes match. What identifies a fetched
# file (source, file key, URL or path, pinned sha256) is a param, and a local file is an input:
# a change to either re-runs the fetch or copy and everything downstream.


localrules:
    fetch_model,
    fetch_benchmark,
    fetch_replay_pool,
    copy_local,


rule fetch_model:
    output:
        os.path.join(DATA, "models", "{model}.model"),
    log:
        "logs/fetch_model/{model}.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        cache=os.path.join(DATA, "sources"),
        spec=lambda w: CATALOG["foundation_models"][w.model]["fetch"],
        entry=lambda w: fetch_entry(
            CATALOG["foundation_models"][w.model]["fetch"],
            f"catalog.foundation_models.{w.model}.fetch",
        ),
    shell:
        "python -m ftbench fetch --sources-json {params.entry} --source {params.spec[source]} "
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
        cache=os.path.join(DATA, "sources"),
        source=lambda w: CATALOG["benchmarks"][w.benchmark]["fetch_source"],
        file=lambda w: CATALOG["benchmarks"][w.benchmark]["files"][w.part],
        entry=lambda w: fetch_entry(
            {
                "source": CATALOG["benchmarks"][w.benchmark]["fetch_source"],
                "file": CATALOG["benchmarks"][w.benchmark]["files"][w.part],
            },
            f"catalog.benchmarks.{w.benchmark}",
        ),
        labels=lambda w: label_keys(CATALOG["benchmarks"][w.benchmark]),
        raw=lambda w, output: output[0] + ".raw",
    shell:
        "(python -m ftbench fetch --sources-json {params.entry} --source {params.source} "
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
        cache=os.path.join(DATA, "sources"),
        entry=lambda w: fetch_entry({"source": w.source, "file": w.file}),
    shell:
        "python -m ftbench fetch --sources-json {params.entry} --source {wildcards.source} "
        "--file {wildcards.file} --data-dir {params.cache} --out {output} > {log} 2>&1"


# A user's own file (`path:` of a `source: local` benchmark or model, or of a replay pool or
# pretraining slice), copied as is (a .gz decompressed); OUT.source.json records its sha256.
rule copy_local:
    input:
        lambda w: local_source(w.kind, w.name),
    output:
        os.path.join(DATA, "local", "{kind}", "{name}"),
    log:
        "logs/copy_local/{kind}/{name}.log",
    wildcard_constraints:
        kind="models|benchmarks|files",
        name=r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)?",
    conda:
        "../envs/ftbench.yaml"
    shell:
        "python -m ftbench fetch --local {input:q} --out {output:q} > {log:q} 2>&1"
