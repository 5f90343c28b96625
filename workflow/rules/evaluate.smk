# Test errors of every run (and untouched foundation model) on the target test set and on the
# held-out pretraining-distribution slice, every head of a multihead model.


rule evaluate:
    input:
        unpack(lambda w: evaluate_inputs(w)),
    output:
        RUN_DIR + "/errors.json",
    params:
        data=lambda w, input: " ".join(
            f"{name}={path}" for name, path in input.items() if name != "run"
        ),
        batch=config["evaluation"]["batch_size"],
    log:
        "logs/evaluate/{benchmark}/{model}/{strategy}/{e0}/n{size}/seed{seed}.log",
    threads: THREADS
    conda:
        "../envs/ftbench.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {FTBENCH} evaluate --run {input.run} --data {params.data} "
        "--batch-size {params.batch} --out {output} > {log} 2>&1"


def evaluate_inputs(w):
    inputs = {
        "run": RUN_DIR.format(**w) + "/run.json",
        "test": f"results/data/{w.benchmark}/test.xyz",
    }
    # Scratch has no pretraining distribution of its own: it is scored on every model's slice.
    models = config["foundation_models"] if w.model == ftc.NO_MODEL else [w.model]
    for m in models:
        inputs[f"pt_eval__{m}"] = f"results/replay/{w.benchmark}/{m}/pt_eval.xyz"
    return inputs
