"""The official Node.js clients the tests check the mesh with: NATS's service API (micro
discovery) and the AsyncAPI parser, run by the scripts beside this file.

`npm ci` installs them into pytest's cache folder the first time, and again only when
package.json or package-lock.json change. Without node or npm, or when the install fails,
the test that needs them fails: it never skips.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FILES = ("package.json", "package-lock.json", "micro.mjs", "asyncapi.mjs")


@dataclass
class NodeTools:
    folder: Path

    @classmethod
    def install(cls, folder: Path) -> NodeTools:
        """The tools in `folder`, installed there unless they already are (same package files)."""
        for name in FILES:
            shutil.copyfile(HERE / name, folder / name)
        stamp = hashlib.sha256(b"".join((HERE / n).read_bytes() for n in FILES[:2])).hexdigest()
        installed = folder / ".installed"
        if installed.exists() and installed.read_text() == stamp and (folder / "node_modules").is_dir():
            return cls(folder)
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            pytest.fail(
                "node and npm are needed to check the mesh with the official clients (apt-get install nodejs npm)"
            )
        command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=170)
        if result.returncode != 0:
            pytest.fail(f"`npm ci` in {folder} failed ({result.returncode}): {result.stderr[-2000:]}")
        installed.write_text(stamp)
        return cls(folder)

    def run(self, script: str, *args: str, timeout: float = 60.0) -> dict:
        """Run one of the scripts and return the JSON it prints."""
        result = subprocess.run(
            ["node", script, *args], cwd=self.folder, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"node {script} {' '.join(args)} failed: {result.stderr[-3000:]}"
        return json.loads(result.stdout)
