"""Write the demo clips (coloured shapes with matching tones, plus captions).

    python scripts/make_demo_clips.py data/demo_clips
    python scripts/make_demo_clips.py /tmp/clips --count 8 --num-frames 33 --size 96
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.data.demo_clips import make_demo_clips  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where the .mp4 and .txt files go")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--num-frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64, help="width and height in pixels (even)")
    parser.add_argument("--fps", type=float, default=24)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-audio", action="store_true", help="write video-only clips")
    args = parser.parse_args(argv)
    clips = make_demo_clips(
        args.folder,
        count=args.count,
        num_frames=args.num_frames,
        size=args.size,
        fps=args.fps,
        sample_rate=args.sample_rate,
        seed=args.seed,
        with_audio=not args.no_audio,
    )
    for clip in clips:
        print(f"{clip.video_path}  {clip.caption}")


if __name__ == "__main__":
    main()
