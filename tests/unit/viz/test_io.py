"""Atomic, no-clobber writes: content, permissions, no temporary leftovers, failures that keep the old file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from ssmad.errors import InputError
from ssmad.viz import OutputExistsError, write_bytes_atomic, write_text_atomic
from ssmad.viz import _io as vio


def test_writes_content_and_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "f.bin"
    assert write_bytes_atomic(path, b"\x00\x01payload") == path
    assert path.read_bytes() == b"\x00\x01payload"
    assert os.listdir(path.parent) == ["f.bin"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_text_atomic(tmp_path / "t.txt", "ü")
    finally:
        os.umask(old)
    assert path.read_text(encoding="utf-8") == "ü"
    assert path.stat().st_mode & 0o777 == 0o640


def test_existing_file_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(OutputExistsError) as info:
        write_text_atomic(path, "new")
    assert isinstance(info.value, InputError) and isinstance(info.value, FileExistsError)
    assert str(path) in str(info.value) and "overwrite" in str(info.value)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]
    write_text_atomic(path, "new", overwrite=True)
    assert path.read_text() == "new"


def test_dangling_symlink_counts_as_existing(tmp_path):
    link = tmp_path / "l.txt"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(OutputExistsError):
        write_text_atomic(link, "x")


def test_fallback_without_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(vio.os, "link", no_links)
    path = write_text_atomic(tmp_path / "f.txt", "one")
    assert path.read_text() == "one"
    with pytest.raises(OutputExistsError):
        write_text_atomic(path, "two")
    assert path.read_text() == "one"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_race_second_writer_loses_without_clobbering(tmp_path, monkeypatch):
    """The file appears between the early check and the final link: the link refuses, the first content stays."""
    path = tmp_path / "f.txt"
    real_link = os.link

    def link_after_rival(src, dst):
        with open(dst, "w") as fh:  # a rival process finishes first
            fh.write("rival")
        return real_link(src, dst)

    monkeypatch.setattr(vio.os, "link", link_after_rival)
    with pytest.raises(OutputExistsError):
        write_text_atomic(path, "mine")
    assert path.read_text() == "rival"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    path.write_text("old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vio.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        write_text_atomic(path, "new", overwrite=True)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_rendering_leaves_matplotlib_global_state_alone():
    """Plots and overlays must not import pyplot or switch the backend of the caller's session."""
    code = textwrap.dedent(
        """
        import sys, numpy as np, matplotlib
        before = matplotlib.get_backend()
        from ssmad.viz import overlay, plot_roc, plot_pro, hsi_panel
        overlay(np.zeros((8, 8, 3), np.uint8), np.random.rand(8, 8))
        hsi_panel(np.random.rand(8, 8, 5), np.random.rand(8, 8))
        plot_roc({"a": ([0, 0.5, 1], [0, 0.7, 1])})
        plot_pro({"a": ([0, 0.1, 0.5], [0, 0.5, 1])})
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        assert matplotlib.get_backend() == before, (before, matplotlib.get_backend())
        print("ok")
        """
    )
    env = {**os.environ, "MPLBACKEND": "svg"}  # a user's choice that must survive
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
