# The embedded demo world: corpus and benchmarks labelled offline with tblite, and the demo
# foundation models pretrained on the corpus with mace_run_train.


rule demo_corpus:
    output:
        "data/demo/corpus/{model}.xyz",
    params:
        args=lambda w: demo_args(CATALOG["foundation_models"][w.model]["corpus"]),
    log:
        "logs/demo_corpus/{model}.log",
    threads: THREADS
    conda:
        "../envs/ftbench.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {FTBENCH} demo {params.args} --out {output} > {log} 2>&1"


rule demo_benchmark:
    output:
        "data/demo/benchmarks/{benchmark}.xyz",
    params:
        args=lambda w: demo_args(CATALOG["benchmarks"][w.benchmark]["generator"]),
    log:
        "logs/demo_benchmark/{benchmark}.log",
    threads: THREADS
    conda:
        "../envs/ftbench.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {FTBENCH} demo {params.args} --out {output} > {log} 2>&1"


rule prepare_corpus:
    input:
        "data/demo/corpus/{model}.xyz",
    output:
        pool="results/pretrain/{model}/data/train_pool.xyz",
        valid="results/pretrain/{model}/data/valid.xyz",
        isolated="results/pretrain/{model}/data/isolated.xyz",
    params:
        n_valid=lambda w: max(1, CATALOG["foundation_models"][w.model]["corpus"]["n"] // 10),
        out_dir=subpath(output.pool, parent=True),
    log:
        "logs/prepare_corpus/{model}.log",
    conda:
        "../envs/ftbench.yaml"
    shell:
        "{FTBENCH} prepare --data {input} --n-valid {params.n_valid} --n-test 1 "
        "--split-seed {config[split_seed]} --out-dir {params.out_dir} > {log} 2>&1"


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
    shell:
        "{FTBENCH} e0 --mode isolated --data {input.pool} --isolated {input.isolated} "
        "--out {output} > {log} 2>&1"


rule pretrain:
    input:
        train="results/pretrain/{model}/data/train_pool.xyz",
        valid="results/pretrain/{model}/data/valid.xyz",
        e0="results/pretrain/{model}/e0.json",
    output:
        run="results/pretrain/{model}/run/run.json",
        model="results/pretrain/{model}/run/model.model",
    params:
        flags=lambda w: quoted_json(pretrain_flags(w.model)),
        seed=lambda w: CATALOG["foundation_models"][w.model]["pretrain"].get("seed", 1),
        out_dir=subpath(output.run, parent=True),
    log:
        "logs/pretrain/{model}.log",
    threads: THREADS
    conda:
        "../envs/ftbench.yaml"
    shell:
        "{FTBENCH} finetune --require-ok --flags {params.flags} --train {input.train} "
        "--valid {input.valid} --e0 {input.e0} --seed {params.seed} --threads {threads} "
        "--device {config[device]} --out-dir {params.out_dir} "
        "--checkpoints results/checkpoints/pretrain/{wildcards.model} > {log} 2>&1"


def pretrain_flags(model):
    entry = CATALOG["foundation_models"][model]
    flags = dict(config["training"]["mace_flags"])
    flags.update(energy_key="REF_energy", forces_key="REF_forces", stress_key="REF_stress")
    flags.update(entry["architecture"])
    flags.update({k: v for k, v in entry["pretrain"].items() if k != "seed"})
    return flags


def demo_args(gen):
    args = [f"--{k}={','.join(v) if isinstance(v, list) else v}" for k, v in gen.items()]
    return " ".join(shlex.quote(a) for a in args)
