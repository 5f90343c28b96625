# Benchmark splits, nested training subsets, E0s and replay pools: everything a fine-tune reads.


localrules:
    check_elements,
    subset,


rule prepare_benchmark:
    input:
        unpack(lambda w: benchmark_files(w.benchmark)),
    output:
        pool="results/data/{benchmark}/train_pool.xyz",
        valid="results/data/{benchmark}/valid.xyz",
        test="results/data/{benchmark}/test.xyz",
        isolated="results/data/{benchmark}/isolated.xyz",
        summary="results/data/{benchmark}/summary.json",
    log:
        "logs/prepare_benchmark/{benchmark}.log",
    conda:
        "../envs/ftbench.yaml"
    resources:
        runtime=runtime("prepare_benchmark"),
    params:
        args=lambda w, input: prepare_args(w.benchmark, input),
        out_dir=subpath(output.pool, parent=True),
        split_seed=config["split_seed"],
    shell:
        "python -m ftbench prepare {params.args} --split-seed {params.split_seed} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule check_elements:
    # Every split against every foundation model before any model job (e0, replay, untouched).
    input:
        pool="results/data/{benchmark}/train_pool.xyz",
        valid="results/data/{benchmark}/valid.xyz",
        test="results/data/{benchmark}/test.xyz",
        model=lambda w: foundation_model(w.model),
    output:
        "results/data/{benchmark}/elements/{model}.json",
    log:
        "logs/check_elements/{benchmark}/{model}.log",
    conda:
        "../envs/ftbench.yaml"
    shell:
        "python -m ftbench check-elements --model {input.model} --model-name {wildcards.model} "
        "--split training={input.pool} validation={input.valid} test={input.test} "
        "--out {output} > {log} 2>&1"


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
        "python -m ftbench subset --pool {input} --size {wildcards.size} --out {output} > {log} 2>&1"


rule e0:
    input:
        unpack(lambda w: e0_inputs(w)),
    output:
        e0="results/e0/{benchmark}/{model}/{e0}/n{size}.json",
        info="results/e0/{benchmark}/{model}/{e0}/n{size}.provenance.json",
    log:
        "logs/e0/{benchmark}/{model}/{e0}/n{size}.log",
    conda:
        "../envs/ftbench.yaml"
    threads: THREADS
    resources:
        runtime=runtime("e0"),
    params:
        model_args=lambda w, input: (
            f"--model {input.model} --model-name {w.model} {head_arg(w.model)}"
            if "model" in input.keys()
            else ""
        ),
        mismatch=lambda w: config["e0_mismatch"],
        units=(
            "--unit-slope-range {0} {1} --unit-min-correlation {2}".format(
                *config["data_checks"]["unit_slope_range"],
                config["data_checks"]["unit_min_correlation"],
            )
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m ftbench e0 --mode {wildcards.e0} --data {input.train} "
        "--isolated {input.isolated} {params.model_args} "
        "--threshold {params.mismatch[threshold_ev_per_atom]} "
        "--on-mismatch {params.mismatch[action]} {params.units} --out {output.e0} > {log} 2>&1"


rule replay:
    input:
        pool=lambda w: replay_pool(w.model, w.benchmark),
        model=lambda w: foundation_model(w.model),
        bench="results/data/{benchmark}/train_pool.xyz",
        # a gate, not data: a rerun of the check does not make finished work outdated
        elements=ancient("results/data/{benchmark}/elements/{model}.json"),
        pt_eval_file=lambda w: pt_eval_files(w.model).get("file", []),
        pt_eval_relabelled=lambda w: pt_eval_files(w.model).get("relabelled", []),
    output:
        replay="results/replay/{benchmark}/{model}/replay.xyz",
        pseudo="results/replay/{benchmark}/{model}/replay_pseudo.xyz",
        pt_eval="results/replay/{benchmark}/{model}/pt_eval.xyz",
        pt_eval_relabelled="results/replay/{benchmark}/{model}/pt_eval_relabelled.xyz",
        summary="results/replay/{benchmark}/{model}/summary.json",
    log:
        "logs/replay/{benchmark}/{model}.log",
    conda:
        "../envs/ftbench.yaml"
    threads: THREADS
    resources:
        runtime=runtime("replay"),
    params:
        r=config["replay"],
        head=lambda w: head_arg(w.model),
        pool_args=lambda w: replay_args(w.model, w.benchmark),
        pt_eval=lambda w, input: pt_eval_args(w.model, input),
        out_dir=subpath(output.replay, parent=True),
        split_seed=config["split_seed"],
    shell:
        "OMP_NUM_THREADS={threads} python -m ftbench replay --pool {input.pool} --model {input.model} "
        "{params.head} --benchmark-data {input.bench} --n-samples {params.r[n_samples]} "
        "--n-eval {params.r[n_eval]} --filter {params.r[filter]} {params.pool_args} {params.pt_eval} "
        "--seed {params.split_seed} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule foundation_head:
    input:
        lambda w: foundation_source(w.model),
    output:
        "results/foundation/{model}/{head}.model",
    log:
        "logs/foundation_head/{model}_{head}.log",
    conda:
        "../envs/ftbench.yaml"
    resources:
        runtime=runtime("foundation_head"),
    shell:
        "python -m ftbench head --model {input} --head {wildcards.head} --out {output} > {log} 2>&1"
