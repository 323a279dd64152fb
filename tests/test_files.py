"""Student files are read and written as regular files only: links are never followed out of a folder."""
import os

import pytest

from dlvision.grading import files


@pytest.fixture
def course(tmp_path):
    (tmp_path / "submitted" / "ada" / "toy").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("the instructor's")
    return tmp_path


def test_regular_files_are_read_with_their_subfolders(course):
    folder = course / "submitted" / "ada" / "toy"
    (folder / "toy.ipynb").write_text("{}")
    (folder / "data").mkdir()
    (folder / "data" / "x.csv").write_text("1,2")
    assert files.read_folder(course, "submitted/ada/toy", max_files=10, max_bytes=100) == {
        "toy.ipynb": b"{}", "data/x.csv": b"1,2"}


def test_links_fifos_and_folders_named_like_files_are_skipped(course):
    folder = course / "submitted" / "ada" / "toy"
    os.symlink(course / "secret.txt", folder / "toy.ipynb")
    os.symlink(course, folder / "course")
    os.mkfifo(folder / "pipe.ipynb")
    (folder / "folder.ipynb").mkdir()
    assert files.read_folder(course, "submitted/ada/toy", max_files=10, max_bytes=100) == {}


def test_a_link_on_the_way_to_the_folder_is_refused(course):
    os.symlink(course / "submitted" / "ada", course / "submitted" / "eve")
    with pytest.raises(files.UnsafeFile, match="link"):
        files.read_folder(course, "submitted/eve/toy", max_files=10, max_bytes=100)
    assert not files.is_real_folder(course, "submitted/eve/toy")
    assert files.is_real_folder(course, "submitted/ada/toy")


def test_too_many_or_too_large_files_are_refused(course):
    folder = course / "submitted" / "ada" / "toy"
    for i in range(3):
        (folder / f"f{i}").write_bytes(b"x" * 40)
    with pytest.raises(files.UnsafeFile, match="more than 2 files"):
        files.read_folder(course, "submitted/ada/toy", max_files=2, max_bytes=1000)
    with pytest.raises(files.UnsafeFile, match="bytes"):
        files.read_folder(course, "submitted/ada/toy", max_files=10, max_bytes=100)


def test_a_path_that_climbs_out_is_refused(course):
    with pytest.raises(files.UnsafeFile, match="leaves its folder"):
        files.read_folder(course, "submitted/../../etc", max_files=10, max_bytes=100)


def test_writing_replaces_a_planted_link_without_touching_its_target(course):
    (course / "autograded" / "ada").mkdir(parents=True)
    os.symlink(course / "secret.txt", course / "autograded" / "ada" / "toy")
    files.write_folder(course, "autograded/ada/toy", {"toy.ipynb": b"{}"})
    assert (course / "secret.txt").read_text() == "the instructor's"
    assert (course / "autograded" / "ada" / "toy" / "toy.ipynb").read_bytes() == b"{}"


def test_writing_through_a_linked_parent_folder_is_refused(course):
    os.symlink(course / "submitted", course / "feedback")
    with pytest.raises(files.UnsafeFile, match="link"):
        files.write_folder(course, "feedback/ada/toy", {"toy.html": b"x"})
    assert not (course / "submitted" / "ada" / "toy" / "toy.html").exists()


def test_a_staged_folder_changes_nothing_until_it_is_committed(course):
    files.write_folder(course, "autograded/ada/toy", {"toy.ipynb": b"old"})
    staged = files.stage_folder(course, "autograded/ada/toy", {"toy.ipynb": b"new"})
    assert (course / "autograded" / "ada" / "toy" / "toy.ipynb").read_bytes() == b"old"
    staged.discard()
    assert sorted(os.listdir(course / "autograded" / "ada")) == ["toy"]
    files.stage_folder(course, "autograded/ada/toy", {"toy.ipynb": b"new"}).commit()
    assert (course / "autograded" / "ada" / "toy" / "toy.ipynb").read_bytes() == b"new"


def test_a_file_given_to_a_kernel_is_opened_only_if_regular(course):
    folder = course / "submitted" / "ada" / "toy"
    (folder / "data.txt").write_text("ok")
    os.symlink("/etc/passwd", folder / "passwd")
    opened = files.open_regular_files(folder, max_files=10, max_bytes=100)
    try:
        assert sorted(opened) == ["data.txt"]
    finally:
        for fd in opened.values():
            os.close(fd)
