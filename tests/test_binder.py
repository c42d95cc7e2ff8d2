"""binder/ agrees with pyproject.toml and its postBuild really builds the package in a fresh venv."""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def _requirements():
    reqs = {}
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("--"):
            continue
        name = re.match(r"[A-Za-z0-9_.\-]+", line).group(0).lower()
        reqs[name] = line[len(name):].strip()
    return reqs


def _split(spec):
    name = re.match(r"[A-Za-z0-9_.\-]+", spec).group(0).lower()
    return name, spec[len(name):].strip()


def test_requirements_cover_pyproject_runtime_and_lab_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = _requirements()
    wanted = project["dependencies"] + project["optional-dependencies"]["lab"]
    for spec in wanted:
        name, constraint = _split(spec)
        assert name in reqs, f"binder/requirements.txt lacks {name}"
        if name != "torch":
            assert reqs[name] == constraint, f"{name}: binder pins {reqs[name]!r}, pyproject {constraint!r}"
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]:
        name, constraint = _split(spec)
        assert reqs.get(name) == constraint, f"build requirement {name} missing or different in binder"


def test_binder_pins_the_same_cpu_torch_as_the_makefile():
    pin = re.search(r"^TORCH_PIN\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert "torch" + _requirements()["torch"] == pin
    assert "download.pytorch.org/whl/cpu" in (BINDER / "requirements.txt").read_text()


def test_apt_txt_has_what_the_build_needs():
    apt = set((BINDER / "apt.txt").read_text().split())
    assert {"libgmp-dev", "pkg-config"} <= apt


@pytest.mark.slow
def test_postbuild_builds_and_installs_in_a_fresh_venv(tmp_path):
    """Run binder/postBuild in a fresh venv whose only packages are this environment's (via a .pth)."""
    src = tmp_path / "repo"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", "build", ".git", "_skbuild", "*.so",
                                                            "__pycache__", "test-artifacts", ".hypothesis"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    site = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # our packages (pip, scikit-build-core, pybind11, torch, ...) are visible, aijack_lab is not
    ours = sysconfig.get_paths()["purelib"]
    pathlib.Path(site, "zz_parent_env.pth").write_text(ours + "\n")
    env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}", PYTHONNOUSERSITE="1")
    for var in ("PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(var, None)
    done = subprocess.run(["bash", "binder/postBuild"], cwd=src, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ready" in done.stdout
    where = subprocess.run([str(vpy), "-c", "import aijack_lab; print(aijack_lab.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(site), where


def test_readme_binder_badges_list_every_notebook():
    import importlib.util

    spec = importlib.util.spec_from_file_location("binder_badges", ROOT / "tools" / "binder_badges.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = (ROOT / "README.md").read_text()
    repo = re.search(r"mybinder\.org/v2/gh/([^/]+/[^/]+)/", text).group(1)
    assert mod.rewrite(text, repo) == text, "README badges are stale: run python tools/binder_badges.py"
