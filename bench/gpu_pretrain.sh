#!/usr/bin/env bash
# Pretrain both demo foundation generations at once on a GPU, each in one mace run from its
# committed checkpoint to its final stage (the recipe's stages x epochs_per_stage). The CPU build
# (`snakemake --profile profiles/demo_build`) then finds them trained and only records the stages.
# A run cut by the time limit keeps its best checkpoint and resumes on the next call or on CPU.
#   bench/gpu_pretrain.sh FLAGS_DIR SECONDS OUT_DIR [DEVICE]
# FLAGS_DIR holds <gen>.json (mace flags, as demo_build.smk passes them) and <gen>.args
# ("stages epochs_per_stage seed"), written by: python bench/gpu_pretrain_flags.py FLAGS_DIR
set -u
flags_dir=$1 limit=$2 out=$3 device=${4:-cuda}
B=${PRETRAIN_DIR:-data/demo_build/pretrain}
export FTBENCH_FORKSERVER=0 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}src PYTHONUNBUFFERED=1
mkdir -p "$out"
for gen in demo_gen1 demo_gen2; do
  read -r stages epochs seed < "$flags_dir/$gen.args"
  timeout -s INT "$limit" python3 -m ftbench demo-world pretrain --flags "$(cat "$flags_dir/$gen.json")" \
    --data-dir "$B/$gen/data" --e0 "$B/$gen/e0.json" --stage "$stages" --epochs-per-stage "$epochs" \
    --seed "$seed" --threads 4 --device "$device" --work "$B/$gen/work" \
    --out "$B/$gen/stage$stages.json" > "$out/$gen.log" 2>&1 &
done
wait
for gen in demo_gen1 demo_gen2; do
  grep -h '"mode": "eval"' "$B/$gen"/work/mace_results/*_train.txt | tail -n 2
  tar czf "$out/$gen.tgz" -C "$B" "$gen/work" $(cd "$B" && ls $gen/stage*.json 2>/dev/null)
done
