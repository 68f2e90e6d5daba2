"""The manual in docs/ builds as a strict MkDocs site, and the README stays a short front page whose
two set-up commands are the ones that work on a fresh machine (the second is what .ci/run runs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# The README's set-up commands, character for character: each follows a `<!-- setup-command: NAME -->` marker.
DEMO = "python3 -m venv .venv && .venv/bin/pip install -q -c requirements.lock -e . && .venv/bin/logwarden demo"
TEST = ("python3 -m venv .venv && .venv/bin/pip install -q -c requirements.lock -e '.[test]' "
        "&& .venv/bin/python -m pytest -q")


def nav_pages() -> list[str]:
    def walk(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in walk(item)]
        if isinstance(node, dict):
            return [p for value in node.values() for p in walk(value)]
        return []

    return walk(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])


def setup_commands() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    return dict(re.findall(r"^<!-- setup-command: (\w+) -->\n```sh\n(.+)\n```$", readme, re.M))


def test_the_manual_builds_strictly_with_every_page(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          capture_output=True, text=True, cwd=ROOT, timeout=240, check=False,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = nav_pages()
    assert sorted(pages) == sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    for page in pages:
        stem = page.removesuffix(".md")
        built = site / ("index.html" if stem == "index" else f"{stem}/index.html")
        assert built.is_file() and "<h1" in built.read_text(), page


def test_the_readme_is_short_and_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 120
    for page in nav_pages():
        assert f"(docs/{page})" in readme, page
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)", readme):
        assert (ROOT / target).exists(), target


def test_the_readme_keeps_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    assert setup_commands() == {"demo": DEMO, "test": TEST}
    assert TEST in (ROOT / ".ci" / "run").read_text().splitlines()
