# Build of the shipped demo world (config/demo_build.yaml): rules. Helpers: demo_build_common.smk.


localrules:
    demo_world,
    demo_ship,


rule demo_world:
    input:
        f"{BDIR}/shipped.json",


rule demo_trajectory:
    output:
        f"{BDIR}/frames/{{set}}/{{key}}/{{index}}.xyz.gz",
    log:
        "logs/demo_build/{set}/{key}/{index}.log",
    wildcard_constraints:
        index=r"\d+",
    conda:
        "../envs/ftbench.yaml"
    threads: 1
    params:
        method=lambda w: build_sets()[w.set][0],
        family=lambda w: family_entry(w.set, w.key)["family"],
        sample=lambda w: family_entry(w.set, w.key).get("sample_method")
        or build_sets()[w.set][0],
        settings=lambda w: quoted_json(family_entry(w.set, w.key)),
        seed=lambda w: family_entry(w.set, w.key).get("seed", BUILD["seed"]),
    shell:
        "OMP_NUM_THREADS=1 python -m ftbench demo-world trajectory --family {params.family} "
        "--name {wildcards.key} --index {wildcards.index} --method {params.method} --sample-method {params.sample} "
        "--settings {params.settings} --seed {params.seed} --out {output} > {log} 2>&1"


rule demo_short_range:
    output:
        f"{BDIR}/frames/corpus/short_range.xyz.gz",
    log:
        "logs/demo_build/short_range.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        elements=",".join(BUILD["elements"]),
        settings=quoted_json(BUILD["short_range"]),
        method=BUILD["corpus_method"],
    shell:
        "OMP_NUM_THREADS=1 python -m ftbench demo-world pairs --elements {params.elements} "
        "--method {params.method} --settings {params.settings} --out {output} > {log} 2>&1"


rule demo_isolated:
    output:
        f"{BDIR}/frames/isolated_{{method}}.xyz.gz",
    log:
        "logs/demo_build/isolated_{method}.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        elements=",".join(BUILD["elements"]),
    shell:
        "OMP_NUM_THREADS=1 python -m ftbench demo-world isolated --elements {params.elements} "
        "--method {wildcards.method} --out {output} > {log} 2>&1"


rule demo_build_corpus:
    input:
        f"{BDIR}/frames/isolated_{BUILD['corpus_method']}.xyz.gz",
        f"{BDIR}/frames/corpus/short_range.xyz.gz",
        trajectory_files("corpus"),
    output:
        isolated=f"{BDIR}/corpus/isolated.xyz.gz",
        train=f"{BDIR}/corpus/train.xyz.gz",
        heldout=f"{BDIR}/corpus/heldout.xyz.gz",
        summary=f"{BDIR}/corpus/summary.json",
    log:
        "logs/demo_build/corpus.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        fraction=BUILD["heldout_fraction"],
        seed=BUILD["seed"],
        out_dir=subpath(output.train, parent=True),
    shell:
        "python -m ftbench demo-world assemble {input} --fraction {params.fraction} "
        "--seed {params.seed} --out-dir {params.out_dir} > {log} 2>&1"


rule demo_heldout_relabel:
    input:
        f"{BDIR}/corpus/heldout.xyz.gz",
    output:
        f"{BDIR}/corpus/heldout_{BUILD['benchmark_method']}.xyz.gz",
    log:
        "logs/demo_build/heldout_relabel.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        method=BUILD["benchmark_method"],
    shell:
        "OMP_NUM_THREADS=1 python -m ftbench demo-world relabel --data {input} "
        "--method {params.method} --out {output} > {log} 2>&1"


rule demo_benchmark_build:
    input:
        f"{BDIR}/frames/isolated_{BUILD['benchmark_method']}.xyz.gz",
        lambda w: trajectory_files(f"bench_{w.benchmark}"),
    output:
        f"{BDIR}/benchmarks/{{benchmark}}.xyz.gz",
    log:
        "logs/demo_build/benchmark_{benchmark}.log",
    conda:
        "../envs/ftbench.yaml"
    shell:
        "python -m ftbench demo-world merge {input} --out {output} > {log} 2>&1"


rule demo_generation_data:
    input:
        f"{BDIR}/corpus/train.xyz.gz",
    output:
        train=f"{BDIR}/pretrain/{{gen}}/data/train.xyz",
        valid=f"{BDIR}/pretrain/{{gen}}/data/valid.xyz",
    log:
        "logs/demo_build/{gen}_data.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        recipe=lambda w: quoted_json(generation_data_recipe(w.gen)),
        seed=lambda w: generation(w.gen)["pretrain"].get("seed", 1),
        out_dir=subpath(output.train, parent=True),
    shell:
        "python -m ftbench demo-world generation-data --pool {input} --recipe {params.recipe} "
        "--seed {params.seed} --out-dir {params.out_dir} > {log} 2>&1"


rule demo_pretrain_e0:
    input:
        pool=f"{BDIR}/pretrain/{{gen}}/data/train.xyz",
        isolated=f"{BDIR}/corpus/isolated.xyz.gz",
    output:
        f"{BDIR}/pretrain/{{gen}}/e0.json",
    log:
        "logs/demo_build/{gen}_e0.log",
    conda:
        "../envs/ftbench.yaml"
    shell:
        "python -m ftbench e0 --mode isolated --data {input.pool} --isolated {input.isolated} "
        "--out {output} > {log} 2>&1"


rule demo_pretrain_stage:
    input:
        previous_stage,
        train=f"{BDIR}/pretrain/{{gen}}/data/train.xyz",
        valid=f"{BDIR}/pretrain/{{gen}}/data/valid.xyz",
        e0=f"{BDIR}/pretrain/{{gen}}/e0.json",
    output:
        f"{BDIR}/pretrain/{{gen}}/stage{{stage}}.json",
    log:
        "logs/demo_build/{gen}_stage{stage}.log",
    wildcard_constraints:
        stage=r"\d+",
    conda:
        "../envs/ftbench.yaml"
    threads: 2
    params:
        flags=lambda w: quoted_json(pretrain_flags_for(w.gen)),
        epochs=lambda w: generation(w.gen)["pretrain"]["epochs_per_stage"],
        seed=lambda w: generation(w.gen)["pretrain"].get("seed", 1),
        data_dir=subpath(input.train, parent=True),
        work=lambda w: f"{BDIR}/pretrain/{w.gen}/work",
    shell:
        "python -m ftbench demo-world pretrain --flags {params.flags} --data-dir {params.data_dir} "
        "--e0 {input.e0} --stage {wildcards.stage} --epochs-per-stage {params.epochs} "
        "--seed {params.seed} --threads {threads} --work {params.work} --out {output} >> {log} 2>&1"


rule demo_gate:
    input:
        stage=lambda w: final_stage(w.gen),
        train=f"{BDIR}/pretrain/{{gen}}/data/train.xyz",
        heldout=f"{BDIR}/corpus/heldout.xyz.gz",
        heldout_relabelled=f"{BDIR}/corpus/heldout_{BUILD['benchmark_method']}.xyz.gz",
        benchmarks=expand(f"{BDIR}/benchmarks/{{b}}.xyz.gz", b=BUILD["benchmarks"]),
    output:
        f"{BDIR}/pretrain/{{gen}}/gate.json",
    log:
        "logs/demo_build/{gen}_gate.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        model=lambda w: f"{BDIR}/pretrain/{w.gen}/work/model.model",
        data=lambda w, input: " ".join(
            [
                f"heldout={input.heldout}",
                f"heldout_relabelled={input.heldout_relabelled}",
            ]
            + [f"{b}={f}" for b, f in zip(BUILD["benchmarks"], input.benchmarks)]
        ),
    shell:
        "python -m ftbench demo-world gate --model {params.model} --data {params.data} "
        "--train {input.train} --out {output} > {log} 2>&1"


rule demo_ship:
    input:
        gates=expand(f"{BDIR}/pretrain/{{gen}}/gate.json", gen=BUILD["generations"]),
        corpus=rules.demo_build_corpus.output,
        relabelled=rules.demo_heldout_relabel.output,
        benchmarks=expand(f"{BDIR}/benchmarks/{{b}}.xyz.gz", b=BUILD["benchmarks"]),
    output:
        f"{BDIR}/shipped.json",
    log:
        "logs/demo_build/ship.log",
    conda:
        "../envs/ftbench.yaml"
    params:
        build=quoted_json(BUILD),
        build_dir=lambda w, output: os.path.dirname(output[0]),
    shell:
        "python -m ftbench demo-world ship --build-dir {params.build_dir} --recipe {params.build} "
        "--out-dir data/demo --record {output} > {log} 2>&1"
