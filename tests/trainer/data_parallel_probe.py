"""run.py's main() as one process of a data-parallel test run, reporting what only that process knows.

    accelerate launch --multi_gpu --num_processes 2 tests/trainer/data_parallel_probe.py CONFIG

With DATA_PARALLEL_PROBE_DIR set, each process writes there, after training,
the LoRA weights it holds (`rank<R>.safetensors`: only the main process saves
files, so this is how a test sees the other ranks' LoRA), and, when its first
step starts, its pid (`rank<R>.pid`, for a test that kills one rank). With
DATA_PARALLEL_PROBE_SIGTERM=R:S process R sends itself SIGTERM as step S starts:
a stop request that reaches one process only.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from toolkit.gc_pause import collection_paused  # noqa: E402

with collection_paused():  # as run.py's command line imports; main() sets the imports aside
    import run
    from extensions_built_in.sd_trainer.SDTrainer import SDTrainer


def _probe(folder: Path, sigterm: str) -> None:
    train, step = SDTrainer._train, SDTrainer.hook_train_loop

    def probed_train(self) -> None:
        train(self)
        from safetensors.torch import save_file

        weights = {name: tensor.detach().contiguous() for name, tensor in self.network.state_dict().items()}
        save_file(weights, str(folder / f"rank{self.parallel.rank}.safetensors"))

    def probed_step(self, index: int):
        pid_file = folder / f"rank{self.parallel.rank}.pid"
        if not pid_file.exists():
            pid_file.write_text(str(os.getpid()))
        if sigterm == f"{self.parallel.rank}:{index}":
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, index)

    SDTrainer._train = probed_train  # type: ignore[method-assign]
    SDTrainer.hook_train_loop = probed_step  # type: ignore[method-assign]


if __name__ == "__main__":
    if os.environ.get("DATA_PARALLEL_PROBE_DIR"):
        _probe(Path(os.environ["DATA_PARALLEL_PROBE_DIR"]), os.environ.get("DATA_PARALLEL_PROBE_SIGTERM", ""))
    sys.argv[0] = "run.py"
    sys.exit(run.main(sys.argv[1:], freeze_imports=True))
