"""The caption font is matplotlib's bundled DejaVu Sans, found without importing matplotlib."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO_ROOT


def test_caption_font_is_found_without_importing_matplotlib():
    code = ("import json, sys\nfrom refvos.media.visualize import caption_font\nfont = caption_font(300)\n"
            "print(json.dumps([font.path, 'matplotlib' in sys.modules]))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    path, imported = json.loads(proc.stdout)
    assert path.endswith(os.path.join("mpl-data", "fonts", "ttf", "DejaVuSans.ttf")) and not imported
