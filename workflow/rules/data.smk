# Benchmark splits, nested training subsets, E0s and replay pools: everything a fine-tune reads.


rule prepare_benchmark:
    input:
        unpack(lambda w: benchmark_files(w.benchmark)),
    output:
        pool="results/data/{benchmark}/train_pool.xyz",
        valid="results/data/{benchmark}/valid.xyz",
        test="results/data/{benchmark}/test.xyz",
        isolated="results/data/{benchmark}/isolated.xyz",
        summary="results/data/{benchmark}/summary.json",
    params:
        args=lambda w, input: prepare_args(w.benchmark, input),
        out_dir=subpath(output.pool, parent=True),
    log:
        "logs/prepare_benchmark/{benchmark}.log",
    conda:
        "../envs/ftbench.yaml"
    shell:
        "{FTBENCH} prepare {params.args} --split-seed {config[split_seed]} "
        "--benchmark {wildcards.benchmark} --out-dir {params.out_dir} > {log} 2>&1"


rule subset:
    input:
        "results/data/{benchmark}/train_pool.xyz",
    output:
        "results/data/{benchmark}/train_n{size}.xyz",
    log:
        "logs/subset/{benchmark}_n{size}.log",
    conda:
        "../envs/ftbench.yaml"
    shell:
        "{FTBENCH} subset --pool {input} --size {wildcards.size} --out {output} > {log} 2>&1"


rule e0:
    input:
        unpack(lambda w: e0_inputs(w)),
    output:
        e0="results/e0/{benchmark}/{model}/{e0}/n{size}.json",
        info="results/e0/{benchmark}/{model}/{e0}/n{size}.provenance.json",
    params:
        model_args=lambda w, input: (
            f"--model {input.model} --model-name {w.model}" if "model" in input.keys() else ""
        ),
        mismatch=lambda w: config["e0_mismatch"],
    log:
        "logs/e0/{benchmark}/{model}/{e0}/n{size}.log",
    threads: THREADS
    conda:
        "../envs/ftbench.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {FTBENCH} e0 --mode {wildcards.e0} --data {input.train} "
        "--isolated {input.isolated} {params.model_args} "
        "--threshold {params.mismatch[threshold_ev_per_atom]} "
        "--on-mismatch {params.mismatch[action]} --out {output.e0} > {log} 2>&1"


rule replay:
    input:
        pool=lambda w: replay_pool(w.model),
        model=lambda w: foundation_model(w.model),
        bench="results/data/{benchmark}/train_pool.xyz",
    output:
        replay="results/replay/{benchmark}/{model}/replay.xyz",
        pseudo="results/replay/{benchmark}/{model}/replay_pseudo.xyz",
        pt_eval="results/replay/{benchmark}/{model}/pt_eval.xyz",
    params:
        r=config["replay"],
        out_dir=subpath(output.replay, parent=True),
    log:
        "logs/replay/{benchmark}/{model}.log",
    threads: THREADS
    conda:
        "../envs/ftbench.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {FTBENCH} replay --pool {input.pool} --model {input.model} "
        "--benchmark-data {input.bench} --n-samples {params.r[n_samples]} "
        "--n-eval {params.r[n_eval]} --filter {params.r[filter]} "
        "--seed {config[split_seed]} --out-dir {params.out_dir} > {log} 2>&1"


def prepare_args(benchmark, input):
    entry = CATALOG["benchmarks"][benchmark]
    split = entry.get("split", {})
    args = [f"--data {input.data}"]
    for key in ("valid_data", "test_data"):
        if key in input.keys():
            args.append(f"--{key.replace('_', '-')} {input[key]}")
    args += [f"--n-valid {split.get('valid', 20)}", f"--n-test {split.get('test', 30)}"]
    for key in ("energy_key", "forces_key", "stress_key"):
        if entry.get(key):
            args.append(f"--{key.replace('_', '-')} {entry[key]}")
    return " ".join(args)


def e0_inputs(w):
    inputs = {
        "train": f"results/data/{w.benchmark}/train_n{w.size}.xyz",
        "isolated": f"results/data/{w.benchmark}/isolated.xyz",
    }
    if w.model != ftc.NO_MODEL:
        inputs["model"] = foundation_model(w.model)
    return inputs
