"""What is checked before anything loads: dataset folders and captions, sampling, LoRA filters."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from toolkit.config import parse_config
from toolkit.errors import ConfigError
from toolkit.preflight import check_before_loading, problems_before_loading

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CLIPS = REPO_ROOT / "data" / "demo_clips"


def clips(folder: Path, count: int = 2, captions: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for clip in sorted(DEMO_CLIPS.glob("*.mp4"))[:count]:
        shutil.copy2(clip, folder / clip.name)
        if captions:
            shutil.copy2(clip.with_suffix(".txt"), folder / clip.with_suffix(".txt").name)
    return folder


def job(datasets: list[dict[str, Any]], **process: Any):
    raw = {
        "job": "extension",
        "config": {
            "name": "checks",
            "process": [{"type": "sd_trainer", "model": {"name_or_path": "tiny-ltx2"}, "datasets": datasets, **process}],
        },
    }
    return parse_config(raw)


def test_a_good_job_has_no_problems(tmp_path: Path) -> None:
    config = job([{"folder_path": str(DEMO_CLIPS)}], sample={"prompts": ["a red square"]})
    assert problems_before_loading(config) == []
    check_before_loading(config)  # does not raise


def test_empty_folder_and_folder_without_media(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    for name in ("clip.gif", "notes.txt", ".hidden.mp4"):
        (tmp_path / "other" / name).write_text("x")
    problems = problems_before_loading(job([{"folder_path": str(tmp_path / "empty")}, {"folder_path": str(tmp_path / "other")}]))
    assert problems == [
        f"config.process[0].datasets[0].folder_path: folder {tmp_path / 'empty'} is empty; put the clips "
        "(.mp4/.mov/.webm/.mkv/.png/.jpg/.jpeg/.webp) and their caption files in it",
        f"config.process[0].datasets[1].folder_path: folder {tmp_path / 'other'} holds no clips or images "
        "(clip.gif, notes.txt); training media must be .mp4/.mov/.webm/.mkv/.png/.jpg/.jpeg/.webp",
    ]


def test_captions_missing_because_of_caption_ext_name_files_and_the_fix(tmp_path: Path) -> None:
    folder = clips(tmp_path / "clips", count=4, captions=False)
    for clip in folder.glob("*.mp4"):
        clip.with_suffix(".caption").write_text("a shape")
    (problem,) = problems_before_loading(job([{"folder_path": str(folder)}]))
    assert problem.startswith("config.process[0].datasets[0].caption_ext: 4 of 4 files in ")
    assert "caption_ext 'txt'" in problem and "default_caption is not set" in problem
    assert "demo_00.mp4 needs demo_00.txt" in problem and "and 1 more" in problem
    assert "captions with another extension are there: .caption (4)" in problem
    fixed = [job([{"folder_path": str(folder), "caption_ext": "caption"}]), job([{"folder_path": str(folder), "default_caption": "x"}])]
    assert [problems_before_loading(config) for config in fixed] == [[], []]


def test_one_clip_without_caption_and_an_empty_caption_are_both_counted(tmp_path: Path) -> None:
    folder = clips(tmp_path / "clips", count=3)
    (folder / "demo_01.txt").unlink()
    (folder / "demo_02.txt").write_text("   \n")
    (problem,) = problems_before_loading(job([{"folder_path": str(folder)}]))
    assert "2 of 3 files" in problem and "demo_01.mp4 needs demo_01.txt, demo_02.mp4 needs demo_02.txt" in problem


def test_caption_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    folder = clips(tmp_path / "clips", count=1)
    (folder / "demo_00.txt").write_bytes(b"caf\xe9")
    (problem,) = problems_before_loading(job([{"folder_path": str(folder)}]))
    assert problem.startswith(f"config.process[0].datasets[0].caption_ext: {folder / 'demo_00.txt'}: caption is not UTF-8")


def test_sampling_on_without_prompts_and_missing_ctrl_img(tmp_path: Path) -> None:
    datasets = [{"folder_path": str(DEMO_CLIPS)}]
    problems = problems_before_loading(job(datasets, sample={"sample_every": 10}))
    assert problems == [
        "config.process[0].sample.prompts: sampling is on (every 10 steps) but there are no prompts, so no sample "
        "would be made; add prompts, or set train.disable_sampling: true"
    ]
    assert problems_before_loading(job(datasets, sample={"sample_every": 10}, train={"disable_sampling": True})) == []
    assert problems_before_loading(job(datasets)) == []  # no sample section: nothing asked for
    (problem,) = problems_before_loading(job(datasets, sample={"prompts": ["a", {"prompt": "b", "ctrl_img": "nope.png"}]}))
    assert problem.startswith("config.process[0].sample.prompts[1].ctrl_img: nope.png is not a file")


def test_generate_prompt_with_missing_ctrl_img() -> None:
    raw = {
        "job": "extension",
        "config": {
            "name": "gen",
            "process": [
                {"type": "generate", "model": {"name_or_path": "tiny-ltx2"}, "generate": {"prompts": ["a --ctrl_img x.png"]}}
            ],
        },
    }
    (problem,) = problems_before_loading(parse_config(raw))
    assert problem.startswith("config.process[0].generate.prompts[0].ctrl_img: x.png is not a file")


def test_every_problem_is_in_one_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    config = job([{"folder_path": str(tmp_path / "empty")}], sample={"sample_every": 5})
    with pytest.raises(ConfigError) as caught:
        check_before_loading(config, source="job.yaml")
    assert str(caught.value).startswith("Invalid config job.yaml (2 problems):")
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        "config.process[0].datasets[0].folder_path",
        "config.process[0].sample.prompts",
    ]


def test_dataset_and_sampling_checks_do_not_import_torch(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code = (
        "import sys\n"
        "from toolkit.config import parse_config\n"
        "from toolkit.preflight import problems_before_loading\n"
        "raw = {'job': 'extension', 'config': {'name': 'n', 'process': [{'type': 'sd_trainer', "
        f"'model': {{'name_or_path': 'tiny-ltx2'}}, 'datasets': [{{'folder_path': {str(tmp_path / 'empty')!r}}}]}}]}}}}\n"
        "print(len(problems_before_loading(parse_config(raw))))\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'av') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["1", "[]"]


def test_an_output_folder_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    datasets = [{"folder_path": str(DEMO_CLIPS)}]
    (problem,) = problems_before_loading(job(datasets, training_folder=str(blocker / "runs")))
    assert problem == (
        f"config.process[0].training_folder: {blocker / 'runs'} cannot be created: {blocker} is a file, not a "
        "folder; choose another folder or move that file"
    )
    assert problems_before_loading(job(datasets, training_folder=str(tmp_path / "new" / "runs"))) == []
