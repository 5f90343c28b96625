# Robustness of every run and untouched foundation model: MD stability, RDF + EMD, random
# structure search, dimer curves (study.md, "Evaluations"; settings in config `robustness`).


rule md_start:
    input:
        unpack(md_start_inputs),
    output:
        start="results/data/{benchmark}/md_start.xyz",
        record="results/data/{benchmark}/md_start.json",
    log:
        "logs/md_start/{benchmark}.log",
    conda:
        "../envs/ftbench.yaml"
    resources:
        runtime=runtime("md_start"),
    params:
        args=lambda w, input: md_start_args(w, input),
    shell:
        "python -m ftbench md-start {params.args} --out {output.start} > {log} 2>&1"


rule reference_rdf:
    input:
        reference_rdf_input,
    output:
        table="results/data/{benchmark}/reference_rdf.csv",
        meta="results/data/{benchmark}/reference_rdf.meta.json",
    log:
        "logs/reference_rdf/{benchmark}.log",
    conda:
        "../envs/ftbench.yaml"
    resources:
        runtime=runtime("reference_rdf"),
    params:
        bin_width=lambda w: robustness_settings(w.benchmark)["rdf"]["bin_width"],
        args=reference_rdf_args,
    shell:
        "python -m ftbench rdf {input} --bin-width {params.bin_width} {params.args} "
        "--out {output.table} > {log} 2>&1"


rule robustness:
    input:
        run=os.path.join(RUN_DIR, "run.json"),
        start="results/data/{benchmark}/md_start.xyz",
        reference="results/data/{benchmark}/reference_rdf.csv",
    output:
        os.path.join(RUN_DIR, "robustness", "robustness.json"),
    log:
        "logs/robustness/{benchmark}/{model}/{strategy}/{e0}/n{size}/seed{seed}.log",
    conda:
        "../envs/ftbench.yaml"
    threads: THREADS
    resources:
        runtime=runtime("robustness"),
    params:
        settings=lambda w: quoted_json(robustness_settings(w.benchmark)),
        head=lambda w: untouched_head(w),
        out_dir=subpath(output[0], parent=True),
        device=config["device"],
    shell:
        "OMP_NUM_THREADS={threads} python -m ftbench robustness --run {input.run} "
        "--structure {input.start} {params.head} "
        "--reference-rdf {input.reference} --settings {params.settings} --device {params.device} "
        "--out-dir {params.out_dir} > {log} 2>&1"
