# Robustness of every run and untouched foundation model: MD stability, RDF + EMD, random
# structure search, dimer curves (study.md, "Evaluations"; settings in config `robustness`).
# Shipped files these rules read directly (the start frame, the reference trajectory) are not
# fetched: md-start and rdf check them against their sha256 pin in `sources_file` (--sources).


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
        sources=lambda w, input: (
            f"--sources {ftc.sources_path(config)}" if "frame" in input.keys() else ""
        ),
    shell:
        "python -m ftbench md-start {params.args} {params.sources} --out {output.start} > {log} 2>&1"


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
        sources=lambda w: (
            f"--sources {ftc.sources_path(config)}"
            if robustness_settings(w.benchmark)["rdf"].get("reference_trajectory")
            else ""
        ),
    shell:
        "python -m ftbench rdf {input} --bin-width {params.bin_width} {params.args} {params.sources} "
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
