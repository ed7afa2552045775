"""Source snapshots: ignore files, the size limit, git properties, restore, on every store."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from ledger import Experiment
from ledger.domain.errors import ValidationError
from ledger.sdk.snapshots import SnapshotTooLargeError


def make_source(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print('train')\n")
    (root / "pkg" / "model.py").write_text("W = 1\n")
    (root / "data.csv").write_text("a,b\n")
    (root / "big.ckpt").write_bytes(b"\0" * 100)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"pyc")
    return root


def names_in(zip_path: str) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return sorted(archive.namelist())


def test_amlignore_wins_over_gitignore(exp: Experiment, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    (source / ".gitignore").write_text("*.csv\n")
    (source / ".amlignore").write_text("*.ckpt\n__pycache__/\n")
    run = exp.start_logging(snapshot_directory=str(source))
    snapshot_id = run.get_snapshot_id()
    assert snapshot_id is not None
    zip_path = run.restore_snapshot(path=str(tmp_path / "restored"))
    assert Path(zip_path).name == f"{snapshot_id}.zip"
    assert names_in(zip_path) == [".amlignore", ".gitignore", "data.csv", "pkg/model.py",
                                  "train.py"]
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.read("pkg/model.py") == b"W = 1\n"


def test_gitignore_when_there_is_no_amlignore_and_same_source_same_id(
        exp: Experiment, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    (source / ".gitignore").write_text("*.csv\n__pycache__/\n")
    first = exp.start_logging(snapshot_directory=str(source))
    second = exp.start_logging()
    assert second.take_snapshot(str(source)) == first.get_snapshot_id()
    assert names_in(first.restore_snapshot(path=str(tmp_path / "r"))) == [
        ".gitignore", "big.ckpt", "pkg/model.py", "train.py"]
    # Any run restores any snapshot of the ledger by id.
    other = exp.start_logging()
    restored = other.restore_snapshot(snapshot_id=first.get_snapshot_id(),
                                      path=str(tmp_path / "o"))
    assert names_in(restored) == names_in(first.restore_snapshot(path=str(tmp_path / "p")))
    with pytest.raises(ValidationError, match="no snapshot"):
        other.restore_snapshot(snapshot_id="00000000-0000-0000-0000-000000000000")
    (source / "train.py").write_text("changed\n")
    with pytest.raises(ValidationError, match="one snapshot"):
        first.take_snapshot(str(source))


def test_past_the_limit_is_refused_and_no_run_is_created(
        exp: Experiment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = make_source(tmp_path / "src")
    monkeypatch.setenv("RUNLEDGER_SNAPSHOT_LIMIT_MB", "0.00001")  # 10 bytes
    with pytest.raises(SnapshotTooLargeError, match="snapshot limit"):
        exp.start_logging(snapshot_directory=str(source))
    exp.workspace.flush()
    assert list(exp.get_runs()) == []


def test_git_properties_of_a_checkout(exp: Experiment, tmp_path: Path) -> None:
    source = make_source(tmp_path / "repo")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(source), *args], check=True, text=True,
                              capture_output=True).stdout.strip()

    try:
        git("init", "-q", "-b", "main")
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"git is not usable here: {error}")
    git("-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "first")
    commit = git("rev-parse", "HEAD")
    clean = exp.start_logging(snapshot_directory=str(source))
    properties = clean.get_properties()
    assert properties["azureml.git.commit"] == commit
    assert properties["azureml.git.branch"] == "main"
    assert properties["azureml.git.dirty"] == "False"
    (source / "train.py").write_text("edited\n")
    dirty = exp.start_logging(snapshot_directory=str(source))
    assert dirty.get_properties()["azureml.git.dirty"] == "True"
    plain = exp.start_logging(snapshot_directory=str(make_source(tmp_path / "plain")))
    assert not any(k.startswith("azureml.git.") for k in plain.get_properties())


def nested_source(root: Path) -> Path:
    """A tree with ignore files at several depths: re-inclusion, anchoring, folders."""
    files = {
        ".gitignore": "*.log\n/build/\ncache/\n",
        "train.py": "x", "run.log": "x", "build/out.o": "x",
        "pkg/.gitignore": "!keep.log\n/local.txt\n*.tmp\n",
        "pkg/keep.log": "x", "pkg/other.log": "x", "pkg/local.txt": "x", "pkg/a.tmp": "x",
        "pkg/build/kept.o": "x",  # /build/ is anchored to the top folder
        "pkg/sub/local.txt": "x",  # /local.txt is anchored to pkg/
        "pkg/sub/keep.log": "x", "pkg/sub/b.tmp": "x",
        "pkg/sub/.gitignore": "*.py\n",
        "pkg/sub/mod.py": "x",
        "pkg/cache/c.bin": "x",  # cache/ (top file, unanchored) leaves out any cache folder
        "data/.gitignore": "*\n!.gitignore\n!keep/\n!keep/**\n",
        "data/big.bin": "x", "data/keep/small.csv": "x",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_nested_gitignore_files_select_what_git_selects(tmp_path: Path) -> None:
    from ledger.sdk.snapshots import snapshot_files

    source = nested_source(tmp_path / "src")
    try:
        subprocess.run(["git", "-C", str(source), "init", "-q"], check=True, capture_output=True)
        listed = subprocess.run(
            ["git", "-C", str(source), "ls-files", "--others", "--cached", "--exclude-standard"],
            check=True, capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"git is not usable here: {error}")
    ours = [name for name, _path in snapshot_files(source)]
    assert ours == sorted(listed)  # git itself is the oracle of gitignore semantics
    assert "pkg/keep.log" in ours and "run.log" not in ours and "pkg/sub/mod.py" not in ours


def test_a_nested_amlignore_wins_over_the_gitignore_of_its_own_folder(
        exp: Experiment, tmp_path: Path) -> None:
    source = nested_source(tmp_path / "src")
    # In pkg/ the .amlignore replaces pkg/.gitignore (its patterns no longer apply there)...
    (source / "pkg" / ".amlignore").write_text("other.log\n!a.tmp\n")
    run = exp.start_logging(snapshot_directory=str(source))
    names = names_in(run.restore_snapshot(path=str(tmp_path / "r")))
    assert "pkg/other.log" not in names
    assert "pkg/local.txt" in names  # pkg/.gitignore's /local.txt is not read
    assert "pkg/a.tmp" in names
    # ...the top .gitignore still applies below pkg/ (keep.log: no file with a say re-includes
    # it now), and so does pkg/sub/.gitignore in its own folder.
    assert "pkg/keep.log" not in names and "pkg/sub/keep.log" not in names
    assert "pkg/sub/mod.py" not in names and "pkg/sub/b.tmp" in names
    assert "train.py" in names and "run.log" not in names
