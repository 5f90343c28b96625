# Test errors of every run (and untouched foundation model) on the target test set and on the
# held-out pretraining-distribution slice, every head of a multihead model.


rule evaluate:
    input:
        unpack(lambda w: evaluate_inputs(w)),
    output:
        os.path.join(RUN_DIR, "errors.json"),
    log:
        f"logs/evaluate/{ftg.RUN_PATTERN}.log",
    conda:
        "../envs/ftbench.yaml"
    threads: THREADS
    resources:
        runtime=runtime("evaluate"),
    params:
        data=lambda w, input: " ".join(
            f"{name}={path}" for name, path in input.items() if name != "run"
        ),
        batch=config["evaluation"]["batch_size"],
        head=lambda w: untouched_head(w),
        device=config["device"],
    shell:
        "OMP_NUM_THREADS={threads} python -m ftbench evaluate --run {input.run} --data {params.data} "
        "{params.head} --batch-size {params.batch} --device {params.device} --out {output} > {log} 2>&1"


rule evaluate_pt_eval:
    # A run without a foundation model (scratch) on one foundation model's held-out pretraining slice.
    input:
        unpack(lambda w: pt_eval_inputs(w.benchmark, w.pt_model)),
        run=os.path.join(RUN_DIR, "run.json"),
    output:
        os.path.join(RUN_DIR, "pt_eval", "{pt_model}.json"),
    log:
        f"logs/evaluate_pt_eval/{ftg.RUN_PATTERN}/{{pt_model}}.log",
    wildcard_constraints:
        model=ftg.NO_MODEL,
        pt_model=r"[A-Za-z0-9_]+",
    conda:
        "../envs/ftbench.yaml"
    threads: THREADS
    resources:
        runtime=runtime("evaluate"),
    params:
        data=lambda w, input: " ".join(
            f"{name}={path}" for name, path in input.items() if name != "run"
        ),
        batch=config["evaluation"]["batch_size"],
        device=config["device"],
    shell:
        "OMP_NUM_THREADS={threads} python -m ftbench evaluate --run {input.run} "
        "--data {params.data} --batch-size {params.batch} "
        "--device {params.device} --out {output} > {log} 2>&1"
