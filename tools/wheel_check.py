"""The packaging check that `make test` runs (through tests/tools/test_wheel_check.py).

1. ``python -m build`` (sdist, then the wheel from the sdist) of a copy of the working tree,
   without build isolation (offline: the running environment's setuptools builds it);
   ``twine check`` of both.
2. A fresh venv whose packages are the running environment's (``--system-site-packages`` plus a
   ``.pth`` naming this environment's site-packages: the machine's torch and the core
   requirements), and the wheel installed into it with ``--no-deps``.
3. In it, from a folder outside the repository and with every optional package hidden (a
   ``.pth`` puts None in ``sys.modules`` for each of refvos.deps.OPTIONAL): ``refvos --help``;
   ``refvos predict`` of a random tiny checkpoint on a small picture; ``refvos download --list``;
   ``refvos serve`` stopping with one line naming ``refvos[serve]``; the installed package is
   the wheel's (version from its metadata, ``py.typed``, the vocabulary, LICENSE).
4. ``pip install --dry-run --report`` of the wheel's requirements in that venv: pip must find
   every one met as installed (nothing to install, torch above all not replaced).

Usage: ``python tools/wheel_check.py [--keep DIR]``; exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = {
    ".git",
    ".venv",
    "build",
    "dist",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "demo_out",
    "bench_out",
    "runs",
    "output",
}

TINY = """
import sys, numpy as np, torch
from PIL import Image
from refvos.checkpoint import save_checkpoint
from refvos.modeling import build_model
from refvos.modeling.config import BERT_BASE_UNCASED
torch.manual_seed(0)
text = {**BERT_BASE_UNCASED, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 128}
model = build_model("refvos_lite", backbone_weights=None, text_encoder=None, text_config=text)
save_checkpoint(sys.argv[1], model.eval())
Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(sys.argv[2])
"""

PROBE = """
import importlib.metadata as md, importlib.resources as res, json, refvos
files = res.files("refvos")
print(json.dumps({"file": refvos.__file__, "version": refvos.__version__, "dist_version": md.version("refvos"),
                  "py_typed": files.joinpath("py.typed").is_file(),
                  "vocab": files.joinpath("resources/bert-base-uncased-vocab.txt").is_file(),
                  "license": any(f.name == "LICENSE" for f in md.files("refvos"))}))
"""


def run(cmd: list, what: str, **kwargs) -> subprocess.CompletedProcess:
    print(f"$ {' '.join(map(str, cmd))}", flush=True)
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        sys.exit(
            f"wheel check FAILED: {what} (status {done.returncode})\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def copy_tree(dest: Path) -> None:
    """The working tree (tracked and untracked, not ignored) at ``dest``."""
    try:
        listed = (
            subprocess.run(
                ["git", "ls-files", "-co", "--exclude-standard", "-z"],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
            .stdout.decode()
            .split("\0")
        )
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO, dest, ignore=lambda d, names: [n for n in names if n in SKIP])
        return
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def optional_modules() -> list[str]:
    """The import names of refvos's optional packages (refvos.deps.OPTIONAL of this tree)."""
    import ast

    tree = ast.parse((REPO / "src" / "refvos" / "deps.py").read_text())
    node = next(
        n
        for n in tree.body
        if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "OPTIONAL"
    )
    return list(ast.literal_eval(node.value))


def core_requirements(wheel: Path) -> list[str]:
    """The wheel's ``Requires-Dist`` entries without an ``extra`` marker."""
    import zipfile
    from email.parser import HeaderParser

    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(z.read(name).decode())
    return [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="refvos-wheel-check-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    try:
        tree, dist = work / "tree", work / "dist"
        copy_tree(tree)
        run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, tree],
            "python -m build",
            env=env,
        )
        wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            sys.exit(
                f"wheel check FAILED: expected one wheel and one sdist in {dist}, found {os.listdir(dist)}"
            )
        run(
            [sys.executable, "-m", "twine", "check", "--strict", *wheels, *sdists],
            "twine check",
            env=env,
        )

        venv = work / "venv"
        run(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
            "venv",
            env=env,
        )
        python = venv / "bin" / "python"
        site = Path(
            run(
                [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                "venv site",
                env=env,
            ).stdout.strip()
        )
        # the running environment's packages (torch, the core requirements) under the new venv's own
        (site / "_outer_env.pth").write_text(sysconfig.get_path("purelib") + "\n")
        pip = [sys.executable, "-m", "pip", "--python", python]
        run(
            [*pip, "install", "--no-deps", "--no-index", wheels[0]],
            "pip install --no-deps the wheel",
            env=env,
        )
        # the commands below run with every optional package hidden: the core alone must predict
        (site / "_hide_optional.pth").write_text(
            f"import sys; sys.modules.update(dict.fromkeys({sorted(optional_modules())!r}))\n"
        )

        outside = work / "run"
        outside.mkdir()
        probe = json.loads(
            run([python, "-c", PROBE], "import the installed refvos", cwd=outside, env=env).stdout
        )
        if (
            not probe["file"].startswith(str(site))
            or probe["version"] != probe["dist_version"]
            or not (probe["py_typed"] and probe["vocab"] and probe["license"])
        ):
            sys.exit(f"wheel check FAILED: the installed package is not the wheel's: {probe}")
        refvos = venv / "bin" / "refvos"
        helped = run([refvos, "--help"], "refvos --help", cwd=outside, env=env).stdout
        if "predict" not in helped or "download" not in helped:
            sys.exit(f"wheel check FAILED: refvos --help lists no predict / download:\n{helped}")
        run(
            [python, "-c", TINY, "tiny.pth", "photo.png"], "a tiny checkpoint", cwd=outside, env=env
        )
        predicted = run(
            [
                refvos,
                "predict",
                "--checkpoint",
                "tiny.pth",
                "--image",
                "photo.png",
                "-e",
                "the cat",
                "--mask-out",
                "mask.png",
                "--json",
                "--device",
                "cpu",
            ],
            "refvos predict",
            cwd=outside,
            env={**env, "REFVOS_PRECISION": "fp32", "REFVOS_CACHE_DIR": str(work / "cache")},
        )
        if not (outside / "mask.png").is_file():
            sys.exit(f"wheel check FAILED: refvos predict wrote no mask\n{predicted.stdout}")
        listed = run(
            [refvos, "download", "--list"], "refvos download --list", cwd=outside, env=env
        ).stdout
        if len(listed.strip().splitlines()) != 8:
            sys.exit(
                f"wheel check FAILED: refvos download --list does not list seven models:\n{listed}"
            )
        served = subprocess.run(
            [str(refvos), "serve", "--checkpoint", "tiny.pth"],
            cwd=outside,
            env=env,
            capture_output=True,
            text=True,
        )
        if (
            served.returncode != 2
            or served.stderr.strip().count("\n")
            or "refvos[serve]" not in served.stderr
        ):
            sys.exit(
                f"wheel check FAILED: refvos serve without its extra is not one line naming "
                f"refvos[serve]:\n{served.stderr[-2000:]}"
            )

        # the wheel's own requirements (the core; extras are opt-in), resolved by pip against the venv:
        # nothing may be installed or replaced (the refvos dist-info of an editable install in the
        # running environment would make a dry run of the wheel itself a no-op)
        requirements = core_requirements(wheels[0])
        if not any(r.startswith("torch") for r in requirements):
            sys.exit(f"wheel check FAILED: the wheel does not require torch: {requirements}")
        report = json.loads(
            run(
                [*pip, "install", "--dry-run", "--quiet", "--report", "-", *requirements],
                "pip install --dry-run of the wheel's requirements",
                env=env,
            ).stdout
        )
        would = {i["metadata"]["name"]: i["metadata"]["version"] for i in report["install"]}
        if would:
            sys.exit(
                f"wheel check FAILED: installing the wheel would install or replace {would} "
                f"(requirements {requirements})"
            )
        print(
            f"wheel check passed: {wheels[0].name}, {sdists[0].name}; its requirements {requirements} "
            "are met by the environment as it is"
        )
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
