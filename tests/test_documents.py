"""Adding and removing documents through the Assistant (what the chat's Documents tab calls)."""

from __future__ import annotations

import pytest

from tpdqa import Assistant, DocumentError


@pytest.mark.parametrize("name", ["../escape.txt", "sub/dir.txt", "..\\\\win.txt", ".hidden.txt", "", "a\x00b.txt"])
def test_names_that_could_escape_the_folder_are_refused(tmp_path, name):
    qa = Assistant(documents_dir=tmp_path / "docs", index_dir=tmp_path / "index")
    with pytest.raises(DocumentError, match="Refused file name"):
        qa.add_document(name, b"hello")
    assert not (tmp_path / "escape.txt").exists()


def test_unsupported_type_and_size_limit(tmp_path):
    qa = Assistant(documents_dir=tmp_path / "docs", index_dir=tmp_path / "index", max_upload_mb=1)
    with pytest.raises(DocumentError, match="unsupported file type"):
        qa.add_document("tool.exe", b"MZ")
    with pytest.raises(DocumentError, match="limit is 1 MB"):
        qa.add_document("big.txt", b"a" * (1024 * 1024 + 1))
    assert qa.add_document("notes.md", b"# Notes\n\nLe port ouvre en mai.") == "notes.md"
    assert (tmp_path / "docs" / "notes.md").read_bytes().startswith(b"# Notes")


def test_remove_only_inside_the_folder(tmp_path):
    (tmp_path / "secret.txt").write_text("keep me")
    qa = Assistant(documents_dir=tmp_path / "docs", index_dir=tmp_path / "index")
    qa.add_document("a.txt", b"Le port ouvre en mai.")
    with pytest.raises(DocumentError, match="No document named"):
        qa.remove_document("../secret.txt")
    assert (tmp_path / "secret.txt").exists()
    qa.remove_document("a.txt")
    assert not (tmp_path / "docs" / "a.txt").exists()


def test_a_name_whose_text_direction_disguises_its_type_is_refused(tmp_path):
    qa = Assistant(documents_dir=tmp_path / "docs", index_dir=tmp_path / "index")
    with pytest.raises(DocumentError, match="text-direction"):
        qa.add_document("report\u202etxt.html", b"<p>shown as reportlmth.txt</p>")
    assert not (tmp_path / "docs").exists() or not any((tmp_path / "docs").iterdir())
