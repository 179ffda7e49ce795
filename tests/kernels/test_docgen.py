"""docs/kernels.md is the generator's output, and the generator covers every kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from relaxvm.kernels import kernel_names, kernel_signature
from relaxvm.kernels.docgen import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "kernels.md"


def test_checked_in_doc_matches_generator() -> None:
    assert DOC.read_text() == render(), (
        "docs/kernels.md is stale: run `python -m relaxvm.kernels.docgen > docs/kernels.md`")


def test_every_kernel_has_a_row_with_its_signature() -> None:
    text = render()
    for name in kernel_names():
        assert f"| `{name}` | `{kernel_signature(name)}` |" in text


def test_module_entry_point_prints_the_doc() -> None:
    done = subprocess.run([sys.executable, "-m", "relaxvm.kernels.docgen"], capture_output=True,
                          text=True, check=True, cwd=DOC.parents[1])
    assert done.stdout == render()
