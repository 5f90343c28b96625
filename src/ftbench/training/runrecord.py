"""The run record (run.json): one type that every writer fills and every reader relies on.

Three paths write it (a fine-tune that finished, one that failed or diverged, an untouched or
zero-shot model) and three read it (evaluate, robustness, aggregate). The fields and their defaults
live here once; the provenance keys (argv, versions, inputs, outputs, timing, device) sit beside
them at the top level of the same JSON, as `ftbench.runtime.provenance` writes them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ftbench.core.errors import FtbenchError
from ftbench.runtime.provenance import Provenance, write_json

STATUSES = ("ok", "failed", "diverged")


@dataclass(frozen=True)
class RunRecord:
    """What one run of the grid did and how it ended."""

    status: str  # ok | failed | diverged (evaluation may add `invalid` later, in the tables)
    reason: str | None = None
    model: str | None = None  # the model file to evaluate; None unless status is ok
    roles: dict | None = None  # strategies.roles of the run's strategy (older records: none)
    epochs: int = 0
    optimiser_steps: int | None = 0
    optimiser_time_s: float | None = None  # summed time of mace's per-step "opt" rows
    # mace's per-epoch evaluation rows (mace_runner.training_curve); None: a record older than
    # this field, whose curve is still only in the run's mace_results/
    training_curve: list | None = None
    trainable_parameters: dict = field(default_factory=dict)  # {"total": n, "trained": n}
    e0s_in_model: dict | None = None
    first_valid: dict | None = None
    last_valid: dict | None = None
    warnings: list = field(default_factory=list)
    flags: dict = field(default_factory=dict)  # the mace_run_train flags
    budget: dict | None = None  # strategies.epochs_for_budget
    resumed: bool = False
    attempts: int = 1
    foundation_head: str | None = None
    wall_time_s: float | None = None  # every attempt; None: take the provenance's
    attempt_wall_time_s: float | None = None
    cpu_time_s: float | None = None
    gpu_hours: float = 0.0
    device: str | None = None  # None: the provenance's
    provenance: dict = field(default_factory=dict, compare=False)  # read back only, never written from here

    def __post_init__(self):
        """Refuse a status no reader knows."""
        if self.status not in STATUSES:
            raise FtbenchError(f"run record: status {self.status!r} is not one of {', '.join(STATUSES)}")

    def write(self, path: str | Path, prov: Provenance, outputs: list = ()) -> dict:
        """Write the record with `prov`'s provenance to `path`; return what was written."""
        own = {k: v for k, v in dataclasses.asdict(self).items() if k != "provenance"}
        for key in ("wall_time_s", "device"):  # the provenance measures these unless the writer did
            if own[key] is None:
                del own[key]
        rec = prov.record(outputs, extra=own)
        write_json(path, rec)
        return rec

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """Read a run.json; fields an older ftbench did not write take their defaults."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if "optimizer_steps" in data:  # the spelling records before 2026-12 used
                data.setdefault("optimiser_steps", data.pop("optimizer_steps"))
            names = {f.name for f in dataclasses.fields(cls)} - {"provenance"}
            own = {k: v for k, v in data.items() if k in names}
            return cls(**own, provenance={k: v for k, v in data.items() if k not in names})
        except FileNotFoundError:
            raise FtbenchError(f"run record {path} is missing: rerun the run's fine-tune (rule finetune)") from None
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, FtbenchError) as err:
            raise FtbenchError(
                f"run record {path} is not a run.json written by `ftbench finetune` ({type(err).__name__}: {err}); "
                "rerun the run's fine-tune (rule finetune)"
            ) from None

    def training(self, run_dir: Path) -> tuple[int | None, float | None, list]:
        """(optimiser steps, their time, per-epoch evaluation rows) of the run.

        From the record itself; a record written before it held them is read from mace's log in
        `run_dir`/mace_results (and refused, naming the folder, when that log is gone).
        """
        if self.training_curve is not None:
            return self.optimiser_steps or None, self.optimiser_time_s, self.training_curve
        from ftbench.training.mace_runner import optimiser_steps, training_curve

        steps, seconds = optimiser_steps(Path(run_dir) / "mace_results")
        if self.status == "ok" and self.optimiser_steps and steps is None:
            raise FtbenchError(
                f"{Path(run_dir) / 'mace_results'}/*_train.txt is missing: {Path(run_dir) / 'run.json'} records "
                f"{self.optimiser_steps} optimiser steps, but mace's training log (cost, training curves) is "
                "gone; rerun the fine-tune (`snakemake --forcerun finetune` on that run) or restore the folder"
            )
        return steps, seconds, training_curve(Path(run_dir) / "mace_results")

    @property
    def model_path(self) -> Path | None:
        """The model to evaluate, or None when the run did not finish ok."""
        return Path(self.model) if self.model and self.status == "ok" else None
