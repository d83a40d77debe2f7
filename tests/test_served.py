"""Served mode: every way out of the roots is refused, with one message whatever the path is (so a
refusal never tells whether a path exists), folder searches are bounded and never start at `/`, and a
malformed RAM_STUDIO_ROOTS stops the server instead of falling back to local mode.  RELIABILITY.md counts
these cases."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ram_core import served
from ram_core.served import PathRefused, Roots, RootsError, parse_roots, resolve_read, resolve_write, search_files


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """tmp/data, tmp/models (read roots), tmp/out (write root), tmp/secret (outside), and links out."""
    t = {name: tmp_path / name for name in ("data", "models", "out", "secret", "data-evil")}
    for p in t.values():
        p.mkdir()
    (t["secret"] / "key.txt").write_text("SECRET=hunter2\n")
    (t["data"] / "labels.csv").write_text("image,labels\n")
    (t["data"] / "link_dir").symlink_to(t["secret"], target_is_directory=True)
    (t["data"] / "link_file").symlink_to(t["secret"] / "key.txt")
    (t["data"] / "loop").symlink_to(t["data"] / "loop")
    (t["out"] / "to_data").symlink_to(t["data"], target_is_directory=True)
    t["roots"] = parse_roots(f"read={t['data']}{os.pathsep}{t['models']};write={t['out']}")
    return t


def refused(text: str, roots: Roots, write: bool = False) -> str:
    with pytest.raises(PathRefused) as err:
        (resolve_write if write else resolve_read)(text, "The path", roots=roots)
    message = str(err.value)
    assert "Traceback" not in message and "hunter2" not in message
    return message


# (name, the typed path as a function of the tree)
READ_WAYS_OUT = {
    "absolute_outside": lambda t: str(t["secret"] / "key.txt"),
    "etc_passwd": lambda t: "/etc/passwd",
    "filesystem_root": lambda t: "/",
    "relative_dotdot": lambda t: "../secret/key.txt",
    "dotdot_inside_out": lambda t: f"{t['data']}/../secret/key.txt",
    "dot_segments": lambda t: f"{t['data']}/./sub/../../secret",
    "symlinked_folder": lambda t: str(t["data"] / "link_dir" / "key.txt"),
    "symlinked_file": lambda t: str(t["data"] / "link_file"),
    "home_tilde": lambda t: "~/.ssh/id_rsa",
    "bare_tilde": lambda t: "~",
    "nul_byte": lambda t: f"{t['data']}/\x00/etc",
    "very_long": lambda t: str(t["data"]) + "/" + "a" * 5000,
    "prefix_sibling": lambda t: str(t["data-evil"]),  # /x/data-evil starts with /x/data as a string
    "double_slash": lambda t: "//etc/passwd",
    "proc_self_root": lambda t: "/proc/self/root/etc/passwd",
    "padded": lambda t: f"  {t['secret']}  ",
    "symlink_loop": lambda t: str(t["data"] / "loop" / "x"),
    "empty": lambda t: "   ",
}


@pytest.mark.parametrize("way", list(READ_WAYS_OUT))
def test_each_way_out_of_the_read_roots_is_refused(way, tree):
    message = refused(READ_WAYS_OUT[way](tree), tree["roots"])
    assert "not inside the folders this server lets you read" in message


WRITE_WAYS_OUT = {
    "into_a_read_root": lambda t: str(t["data"] / "report"),
    "outside": lambda t: str(t["secret"] / "new"),
    "tmp": lambda t: "/tmp/ram_studio_evil",
    "relative_dotdot": lambda t: "../data/x",
    "symlink_to_read_root": lambda t: "to_data/x",
    "etc": lambda t: "/etc/cron.d/x",
}


@pytest.mark.parametrize("way", list(WRITE_WAYS_OUT))
def test_each_way_out_of_the_write_root_is_refused(way, tree):
    message = refused(WRITE_WAYS_OUT[way](tree), tree["roots"], write=True)
    assert "not inside the folder this server writes to" in message


def test_no_write_root_refuses_every_write(tree):
    roots = parse_roots(f"read={tree['data']}")
    with pytest.raises(PathRefused, match="does not let visitors write"):
        resolve_write(str(tree["data"] / "x"), roots=roots)


def test_a_refusal_reads_the_same_whether_the_path_exists_or_not(tree):
    roots = tree["roots"]
    secret, missing = tree["secret"], tree["secret"].with_name("secreu")  # same length: same shortening
    assert (secret / "key.txt").is_file() and not missing.exists() and not (secret / "kez.txt").exists()
    pairs = [(secret / "key.txt", secret / "kez.txt"), (secret, missing), (secret / "key.txt", missing / "key.txt")]
    for there, not_there in pairs:
        a, b = refused(str(there), roots), refused(str(not_there), roots)
        assert a.replace(str(there), "X") == b.replace(str(not_there), "X") or (
            len(str(there)) > 80 and a.split("'")[2:] == b.split("'")[2:])


def test_paths_inside_the_roots_resolve_there(tree):
    roots = tree["roots"]
    assert resolve_read("labels.csv", roots=roots) == tree["data"] / "labels.csv"  # from the first read root
    assert resolve_read(str(tree["models"] / "m.safetensors"), roots=roots) == tree["models"] / "m.safetensors"
    assert resolve_read(str(tree["out"] / "eval"), roots=roots) == tree["out"] / "eval"  # the write root reads too
    assert resolve_write("evaluations/a", roots=roots) == tree["out"] / "evaluations" / "a"
    # odd but harmless names stay inside: a URL-like or Windows-like name is a file name under the root
    assert tree["data"] in resolve_read("file:///etc/passwd", roots=roots).parents
    assert tree["data"] in resolve_read("..\\..\\etc\\passwd", roots=roots).parents


def test_local_mode_takes_paths_as_typed(tmp_path, monkeypatch):
    monkeypatch.delenv(served.ENV_ROOTS, raising=False)
    assert resolve_read("/etc/passwd") == Path("/etc/passwd")
    assert resolve_write(str(tmp_path / "x")) == tmp_path / "x"
    assert served.may_read("/etc/passwd")


def test_may_read_checks_paths_found_in_files(tree):
    roots = tree["roots"]
    assert served.may_read(tree["data"] / "labels.csv", roots)
    assert not served.may_read(tree["secret"] / "key.txt", roots)
    assert not served.may_read(tree["data"] / "link_file", roots)  # a link out of the root
    assert served.may_read(served.APP_ASSETS / "samples" / "cat.jpg", roots)  # the app's own files


# --------------------------------------------------------------------------------------------------
# RAM_STUDIO_ROOTS itself


BAD_ROOTS = {
    "no_equals": ("read /data", "expected"),
    "unknown_key": ("exec=/tmp", "expected"),
    "two_write": ("write={a};write={b}", "only one write"),
    "relative": ("read=data", "not an absolute path"),
    "filesystem_root": ("read=/", "filesystem root"),
    "missing_folder": ("read={a}/nope", "not a folder"),
    "a_file": ("read={a}/f.txt", "not a folder"),
    "nothing": (";;", "no read= or write="),
}


@pytest.mark.parametrize("name", list(BAD_ROOTS))
def test_a_malformed_roots_setting_is_an_error_not_local_mode(name, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f.txt").write_text("x")
    spec, message = BAD_ROOTS[name]
    with pytest.raises(RootsError, match=message):
        parse_roots(spec.format(a=tmp_path / "a", b=tmp_path / "b"))


def test_app_command_checks_the_roots_and_hides_tracebacks(tmp_path, capsys):
    from ram_core.cli import main

    code = main(["app", "--roots", f"read={tmp_path};write={tmp_path}", "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0 and "--client.showErrorDetails none" in out and "served mode" in err
    assert main(["app", "--roots", "read=/", "--dry-run"]) == 2
    assert "filesystem root" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Bounded folder searches


def test_a_search_from_the_filesystem_root_finds_nothing(monkeypatch):
    monkeypatch.delenv(served.ENV_ROOTS, raising=False)
    t0 = time.perf_counter()
    assert search_files(["/"], suffixes=(".py", ".safetensors")) == []
    assert search_files([Path("/").resolve()], names=("report.json",)) == []
    assert time.perf_counter() - t0 < 1


def test_a_search_does_not_follow_links_out_of_the_roots(tree):
    (tree["secret"] / "stolen.safetensors").write_bytes(b"x")
    (tree["models"] / "ok.safetensors").write_bytes(b"x")
    found = search_files([tree["data"], tree["models"]], suffixes=(".safetensors",), roots=tree["roots"])
    assert found == [tree["models"] / "ok.safetensors"]
    # a folder outside the roots is not searched at all in served mode
    assert search_files([tree["secret"]], suffixes=(".safetensors",), roots=tree["roots"]) == []


def test_a_search_is_bounded_in_depth_count_and_time(tmp_path):
    deep = tmp_path / "/".join(f"d{i}" for i in range(10))
    deep.mkdir(parents=True)
    (deep / "far.safetensors").write_bytes(b"x")
    (tmp_path / "d0" / "near.safetensors").write_bytes(b"x")
    found = search_files([tmp_path], suffixes=(".safetensors",), max_depth=3, roots=None)
    assert found == [(tmp_path / "d0" / "near.safetensors").resolve()]
    many = tmp_path / "many"
    many.mkdir()
    for i in range(50):
        (many / f"{i:02d}.safetensors").write_bytes(b"x")
    assert len(search_files([many], suffixes=(".safetensors",), max_results=7, roots=None)) == 7
    assert len(search_files([many], suffixes=(".safetensors",), max_entries=10, roots=None)) == 10
    assert search_files([many], suffixes=(".safetensors",), max_seconds=0.0, roots=None) == []


def test_the_app_lists_no_checkpoint_outside_the_roots(tree, monkeypatch):
    from ram_core import app_support, eval_views

    (tree["secret"] / "stolen.safetensors").write_bytes(b"x")
    (tree["secret"] / "report.json").write_text("{}")
    monkeypatch.setenv(served.ENV_ROOTS, f"read={tree['data']};write={tree['out']}")
    folders, refused_ = app_support.checked_folders(f"/, {tree['secret']}, {tree['data']}")
    assert folders == [tree["data"]] and len(refused_) == 2
    assert app_support.list_checkpoints([Path("/"), tree["secret"]]) == []
    efolders, erefused = eval_views.checked_folders(f"/, {tree['secret']}")
    assert efolders == [] and len(erefused) == 2
    assert eval_views.list_evaluations([Path("/"), tree["secret"]]) == []
