# Robustness of every run and untouched foundation model: MD stability, RDF + EMD, random
# structure search, dimer curves (study.md, "Evaluations"; settings in config `robustness`).


rule reference_rdf:
    input:
        "results/data/{benchmark}/test.xyz",
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
    shell:
        "python -m ftbench rdf {input} --bin-width {params.bin_width} "
        "--out {output.table} > {log} 2>&1"


rule robustness:
    input:
        run=os.path.join(RUN_DIR, "run.json"),
        structures="results/data/{benchmark}/test.xyz",
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
        index=lambda w: robustness_settings(w.benchmark)["structure_index"],
        head=lambda w: untouched_head(w),
        out_dir=subpath(output[0], parent=True),
        device=config["device"],
    shell:
        "OMP_NUM_THREADS={threads} python -m ftbench robustness --run {input.run} "
        "--structure {input.structures} --index {params.index} {params.head} "
        "--reference-rdf {input.reference} --settings {params.settings} --device {params.device} "
        "--out-dir {params.out_dir} > {log} 2>&1"
