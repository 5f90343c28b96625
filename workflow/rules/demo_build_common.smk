# Helpers of the demo-world build rules (demo_build.smk) (config/demo_build.yaml): thermally sampled, tblite-labelled
# trajectories (one job each), corpus assembly with a held-out slice, staged resumable
# pretraining of the two foundation generations, quality gates, and the copy into data/demo/.

BUILD = config["demo_build"]
BDIR = "data/demo_build"


def build_sets():
    """{set: (method, entries)}: the corpus and one set per target benchmark."""
    sets = {"corpus": (BUILD["corpus_method"], BUILD["corpus"])}
    for name, entry in BUILD["benchmarks"].items():
        sets[f"bench_{name}"] = (BUILD["benchmark_method"], {name: entry})
    return sets


def trajectory_files(set_name):
    _, entries = build_sets()[set_name]
    return [
        f"{BDIR}/frames/{set_name}/{key}/{i:03d}.xyz.gz"
        for key, entry in entries.items()
        for i in range(entry["trajectories"])
    ]


def family_entry(set_name, key):
    return build_sets()[set_name][1][key]


def generation(gen):
    return BUILD["generations"][gen]


def generation_data_recipe(gen):
    """The keys that shape a generation's training data (not its training flags, so that a new
    training flag does not redo the data and with it the checkpoints)."""
    entry = generation(gen)
    return {
        "families": entry.get("families"),
        "fraction": entry.get("fraction", 1.0),
        "pretrain": {"valid_fraction": entry["pretrain"].get("valid_fraction", 0.05)},
        "charged_energy": BUILD.get("charged_energy"),
    }


def pretrain_flags_for(gen):
    return ftc.pretrain_flags(config["training"]["mace_flags"], generation(gen))


def previous_stage(w):
    stage = int(w.stage)
    return [f"{BDIR}/pretrain/{w.gen}/stage{stage - 1}.json"] if stage > 1 else []


def final_stage(gen):
    return f"{BDIR}/pretrain/{gen}/stage{generation(gen)['pretrain']['stages']}.json"
