"""``refvos make-synthetic``: write the built-in synthetic data in the real on-disk layouts."""

from __future__ import annotations

import argparse

HELP = "write synthetic RefCOCO / DAVIS-2017 / A2D-Sentences data in their real on-disk layouts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--kind",
        choices=("refcoco", "davis", "a2d", "all"),
        default="all",
        help="which layout to write (default: all)",
    )
    parser.add_argument("--num-images", type=int, default=200, help="RefCOCO images (default 200)")
    parser.add_argument(
        "--num-videos", type=int, default=10, help="videos per video set (default 10)"
    )
    parser.add_argument("--num-frames", type=int, default=8, help="frames per video (default 8)")
    parser.add_argument(
        "--image-size", type=int, default=128, help="image side in pixels (default 128)"
    )
    parser.add_argument("--seed", type=int, default=0)


MIN_VIDEOS = 5  # every fifth video is DAVIS val / A2D test


def run(args: argparse.Namespace) -> int:

    from ..data import synthetic
    from ..errors import InputError
    from ..io import check_output_folder

    for name in ("num_images", "num_videos", "num_frames"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if args.image_size < 48:
        raise InputError("--image-size must be at least 48 pixels")
    # images cycle through the splits (16 train, 2 val, testA, testB): fewer leave splits empty
    min_images = len(synthetic.REFCOCO_SPLITS)
    if args.kind in ("refcoco", "all") and args.num_images < min_images:
        raise InputError(
            f"--num-images {args.num_images} leaves RefCOCO's val / testA / testB splits empty; "
            f"give at least {min_images}"
        )
    if args.kind in ("davis", "a2d", "all") and args.num_videos < MIN_VIDEOS:
        raise InputError(
            f"--num-videos {args.num_videos} leaves the DAVIS val / A2D test split empty "
            f"(every fifth video is in it); give at least {MIN_VIDEOS}"
        )
    out = check_output_folder(args.out, "--out")
    video = {
        "num_videos": args.num_videos,
        "num_frames": args.num_frames,
        "image_size": args.image_size,
        "seed": args.seed,
    }
    if args.kind == "all":
        roots = synthetic.make_all(out, num_images=args.num_images, **video)
    elif args.kind == "refcoco":
        roots = {
            "refcoco": synthetic.make_refcoco(
                out, num_images=args.num_images, image_size=args.image_size, seed=args.seed
            )
        }
    elif args.kind == "davis":
        roots = {"davis": synthetic.make_davis(out, **video)}
    else:
        roots = {"a2d": synthetic.make_a2d(out, **video)}
    for name, root in roots.items():
        print(f"{name}: {root}")
    return 0
