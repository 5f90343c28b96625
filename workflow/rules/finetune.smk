# One fine-tune per grid cell, driven by mace_run_train; untouched foundation models as runs.


localrules:
    untouched,


rule finetune:
    input:
        unpack(lambda w: finetune_inputs(w)),
    output:
        os.path.join(RUN_DIR, "run.json"),
    log:
        f"logs/finetune/{ftg.RUN_PATTERN}.log",
    wildcard_constraints:
        strategy=r"(?!untouched)[A-Za-z0-9_]+",
    conda:
        "../envs/ftbench.yaml"
    threads: THREADS
    resources:
        runtime=runtime("finetune"),
    params:
        flags=lambda w: quoted_json(
            mace_flags(
                config,
                w.strategy,
                None if w.model == ftg.NO_MODEL else w.model,
                w.benchmark,
                int(w.size),
            )
        ),
        roles=lambda w: quoted_json(roles(config, w.strategy)),
        budget=lambda w: budget_arg(w.strategy, w.benchmark),
        train=lambda w: "" if roles(config, w.strategy)["trained"] else "--e0-only",
        optional=lambda w, input: " ".join(
            f"--{k.replace('_', '-')} {input[k]}"
            for k in ("foundation", "pt_train")
            if k in input.keys()
        ),
        head=lambda w: head_arg(w.model),
        out_dir=subpath(output[0], parent=True),
        checkpoints=lambda w: os.path.join(
            "results/checkpoints", ftg.RUN_PATTERN.format(**w)
        ),
        max_force=config["divergence"]["max_force_rmse_ev_per_a"],
        device=config["device"],
        cueq="--enable-cueq" if config["enable_cueq"] else "",
    shell:
        "python -m ftbench finetune --flags {params.flags} --roles {params.roles} --train {input.train} "
        "--valid {input.valid} --e0 {input.e0} --e0-info {input.e0_info} {params.optional} {params.head} "
        "--seed {wildcards.seed} {params.budget} {params.train} "
        "--threads {threads} --device {params.device} {params.cueq} --max-force-rmse {params.max_force} "
        "--out-dir {params.out_dir} --checkpoints {params.checkpoints} > {log} 2>&1"


rule untouched:
    input:
        model=lambda w: foundation_model(w.model),
        # a gate, not data: a rerun of the check does not make finished work outdated
        elements=ancient("results/data/{benchmark}/elements/{model}.json"),
    output:
        os.path.join(UNTOUCHED_DIR, "run.json"),
    log:
        "logs/untouched/{benchmark}/{model}.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        head=lambda w: head_arg(w.model),
    shell:
        "python -m ftbench untouched --model {input.model} {params.head} --out-dir $(dirname {output}) > {log} 2>&1"
