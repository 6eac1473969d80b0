"""rrlab as a tool installed beside someone else's project (issue L.1).

Builds the wheel from this checkout into a temp dir (the sdist first, then the wheel from it, so
nothing stale in a `build/` can leak in), installs it into a fresh venv (the dependencies from
requirements.lock, offline from the uv cache `make venv` filled: the test needs no network), and
runs the installed `rrlab` from a temporary directory outside the repository. `pip install .`
used to put `worker`, `proxy`, `brokers`, `rr` and `replayer` at the top of site-packages, where
they collide with a user's own packages, and `rrlab brokers up` wrote into site-packages.
"""

from __future__ import annotations

import csv
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST_INFO = "messaging_rr_lab-"
COMMANDS = ("record", "replay", "serve", "proxy", "inspect", "verify", "brokers", "arch")
#: folders that are symlinks in the repository (rrlab/rr -> ../rr ...): real files in the wheel
LINKED = ("rr", "proxy", "replayer", "brokers")


#: each subcommand's --help text, as `rrlab COMMAND --help` prints it
HELPS = """
from rrlab.cli import build_parser
_, sub = build_parser()
for name, parser in sub.choices.items():
    print(parser.format_help())
"""


def _uv() -> str:
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        pytest.fail("uv not found: install it (`make venv` does: python3 -m pip install uv)")
    return uv


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(argv)}: exit {proc.returncode}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env |= {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
    dist = tmp / "dist"
    _run([uv, "build", "--offline", "--quiet", "--out-dir", str(dist), str(ROOT)], tmp, env)
    wheel = next(dist.glob("*.whl"))
    venv = tmp / "venv"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], tmp, env)
    env["VIRTUAL_ENV"] = str(venv)
    lock = str(ROOT / "requirements.lock")
    _run([uv, "pip", "sync", "--offline", "--quiet", "--require-hashes", lock], tmp, env)
    _run([uv, "pip", "install", "--offline", "--quiet", "--no-deps", str(wheel)], tmp, env)
    _run([uv, "pip", "check", "--offline", "--quiet"], tmp, env)  # the wheel's requirements hold
    project = tmp / "their-project"  # a user's directory, far from this checkout
    project.mkdir()
    env.pop("VIRTUAL_ENV")
    py = venv / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   project, env).stdout.strip()  # fmt: skip
    return {"wheel": wheel, "venv": venv, "project": project, "site": Path(purelib)}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "RRLAB_"))}


def test_the_wheel_holds_only_rrlab_and_real_files(installed: dict[str, Path]) -> None:
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        infos = wheel.infolist()
        entry_points = wheel.read(
            next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
        )
    tops = {info.filename.split("/")[0] for info in infos}
    assert {t for t in tops if not t.startswith(DIST_INFO)} == {"rrlab"}, sorted(tops)
    links = [i.filename for i in infos if stat.S_ISLNK(i.external_attr >> 16)]
    assert links == []
    names = {info.filename for info in infos}
    for folder in LINKED:
        assert f"rrlab/{folder}/__init__.py" in names
    assert "rrlab/replayer/guard/sitecustomize.py" in names  # the replay guard (not a package)
    assert "rrlab/brokers/kafka-libs.pom.xml" in names  # Apache Kafka's jars come from it
    assert b"rrlab = rrlab.cli:main" in entry_points and b"worker" not in entry_points


def test_installed_top_level_names(installed: dict[str, Path]) -> None:
    """What the wheel put into site-packages, from its own RECORD (other distributions, e.g.
    kio 0.6.5, put their README.md there: not ours)."""
    record = next(installed["site"].glob(f"{DIST_INFO}*.dist-info")) / "RECORD"
    with record.open(newline="") as f:
        paths = [row[0] for row in csv.reader(f) if row]
    inside = {p.split("/")[0] for p in paths if not p.startswith("..")}
    assert {t for t in inside if not t.startswith(DIST_INFO)} == {"rrlab"}, sorted(inside)
    outside = sorted(Path(p).name for p in paths if p.startswith(".."))
    assert outside == ["rrlab"]  # the one console script; the demo worker stays in the repo
    for folder in LINKED:
        assert (installed["site"] / "rrlab" / folder).is_dir()
        assert not (installed["site"] / "rrlab" / folder).is_symlink()


def test_installed_rrlab_runs_from_another_directory(installed: dict[str, Path]) -> None:
    rrlab, project, env = installed["venv"] / "bin" / "rrlab", installed["project"], _env()
    where = _run([str(installed["venv"] / "bin" / "python"), "-c",
                  "import rrlab.replayer, rrlab.rr; print(rrlab.replayer.__file__)"],
                 project, env).stdout  # fmt: skip
    assert where.startswith(str(installed["site"])), where  # not this checkout
    assert "COMMAND" in _run([str(rrlab), "--help"], project, env).stdout
    helps = _run([str(installed["venv"] / "bin" / "python"), "-c", HELPS], project, env).stdout
    for command in COMMANDS:  # every command's own --help, from one process (a start is ~1 s)
        assert f"usage: rrlab {command} " in helps
    cassette = ROOT / "cassettes" / "worker-mqtt-amqtt"
    shown = _run([str(rrlab), "inspect", str(cassette)], project, env).stdout
    assert "CONNECT" in shown and "PUBLISH" in shown
    _run([str(rrlab), "verify", str(cassette)], project, env)


def test_installed_broker_state_goes_to_the_working_directory(installed: dict[str, Path]) -> None:
    """`rrlab brokers up` wrote into site-packages/.rrlab (its state root came from its path)."""
    project = installed["project"]
    _run([str(installed["venv"] / "bin" / "rrlab"), "brokers", "down"], project, _env())
    assert (project / ".rrlab" / "brokers").is_dir()
    assert not (installed["site"] / "rrlab" / ".rrlab").exists()
    assert not (installed["site"] / ".rrlab").exists()


def test_an_optional_feature_names_its_extra(installed: dict[str, Path]) -> None:
    """Without jsonschema (the `arch` extra), `rrlab arch check` says what to install."""
    code = (
        "import sys; sys.modules['jsonschema'] = None; from rrlab.cli import main; sys.exit(main())"
    )
    proc = subprocess.run(
        [str(installed["venv"] / "bin" / "python"), "-c", code, "arch", "check"],
        cwd=installed["project"], env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "pip install 'messaging-rr-lab[arch]'" in proc.stderr, proc.stderr
