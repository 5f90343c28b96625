# The generated demo world (`source: demo` benchmarks, `source: pretrain` models; data/generated/):
# corpus and benchmarks labelled on the fly with tblite, and the
# demo foundation models pretrained on the corpus with mace_run_train.


rule demo_corpus:
    output:
        "data/generated/corpus/{model}.xyz",
    log:
        "logs/demo_corpus/{model}.log",
    conda:
        "../envs/ftbench.yaml"
    threads: THREADS
    resources:
        runtime=runtime("demo_corpus"),
    params:
        args=lambda w: demo_args(CATALOG["foundation_models"][w.model]["corpus"]),
    shell:
        "OMP_NUM_THREADS={threads} python -m ftbench demo {params.args} --out {output} > {log} 2>&1"


rule demo_benchmark:
    output:
        "data/generated/benchmarks/{benchmark}.xyz",
    log:
        "logs/demo_benchmark/{benchmark}.log",
    conda:
        "../envs/ftbench.yaml"
    threads: THREADS
    resources:
        runtime=runtime("demo_benchmark"),
    params:
        args=lambda w: demo_args(CATALOG["benchmarks"][w.benchmark]["generator"]),
    shell:
        "OMP_NUM_THREADS={threads} python -m ftbench demo {params.args} --out {output} > {log} 2>&1"


rule prepare_corpus:
    input:
        "data/generated/corpus/{model}.xyz",
    output:
        pool="results/pretrain/{model}/data/train_pool.xyz",
        valid="results/pretrain/{model}/data/valid.xyz",
        isolated="results/pretrain/{model}/data/isolated.xyz",
    log:
        "logs/prepare_corpus/{model}.log",
    conda:
        "../envs/ftbench.yaml"
    resources:
        runtime=runtime("prepare_corpus"),
    params:
        n_valid=lambda w: max(
            1, CATALOG["foundation_models"][w.model]["corpus"]["n"] // 10
        ),
        out_dir=subpath(output.pool, parent=True),
        split_seed=config["split_seed"],
    shell:
        "python -m ftbench prepare --data {input} --n-valid {params.n_valid} --n-test 1 "
        "--split-seed {params.split_seed} --out-dir {params.out_dir} > {log} 2>&1"


rule pretrain_e0:
    input:
        pool="results/pretrain/{model}/data/train_pool.xyz",
        isolated="results/pretrain/{model}/data/isolated.xyz",
    output:
        "results/pretrain/{model}/e0.json",
    log:
        "logs/pretrain_e0/{model}.log",
    conda:
        "../envs/ftbench.yaml"
    resources:
        runtime=runtime("pretrain_e0"),
    shell:
        "python -m ftbench e0 --mode isolated --data {input.pool} --isolated {input.isolated} "
        "--out {output} > {log} 2>&1"


rule pretrain:
    input:
        train="results/pretrain/{model}/data/train_pool.xyz",
        valid="results/pretrain/{model}/data/valid.xyz",
        e0="results/pretrain/{model}/e0.json",
    output:
        run="results/pretrain/{model}/run/run.json",
        model="results/pretrain/{model}/run/model.model",
    log:
        "logs/pretrain/{model}.log",
    conda:
        "../envs/ftbench.yaml"
    threads: THREADS
    resources:
        runtime=runtime("pretrain"),
    params:
        flags=lambda w: quoted_json(pretrain_flags(config, w.model)),
        seed=lambda w: CATALOG["foundation_models"][w.model]["pretrain"].get("seed", 1),
        out_dir=subpath(output.run, parent=True),
        device=config["device"],
    shell:
        "python -m ftbench pretrain --flags {params.flags} --train {input.train} "
        "--valid {input.valid} --e0 {input.e0} --seed {params.seed} --threads {threads} "
        "--device {params.device} --out-dir {params.out_dir} "
        "--checkpoints results/checkpoints/pretrain/{wildcards.model} > {log} 2>&1"
