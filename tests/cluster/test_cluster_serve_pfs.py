"""The pfs calls `local serve` answers, through python-pachyderm as a user calls them: what each
returns, and pachd's error codes and wording where clients depend on them."""
from __future__ import annotations

import grpc
import pytest
import python_pachyderm
from python_pachyderm.proto.v2.pfs import pfs_pb2


@pytest.fixture
def client(local_server):
    return python_pachyderm.Client(host="localhost", port=local_server[0])


@pytest.fixture
def images(client):
    client.create_repo("images", description="pictures")
    with client.commit("images", "master") as c1:
        client.put_file_bytes(c1, "/a.txt", b"hello")
        client.put_file_bytes(c1, "/d/b.txt", b"x" * 2_500_000)  # several GetFile messages
        client.put_file_bytes(c1, "/d/e/f.txt", b"")
    with client.commit("images", "master") as c2:
        client.delete_file(c2, "/a.txt")
        client.put_file_bytes(c2, "/d/b.txt", b"appended", append=True)
    return c1.id, c2.id


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code()


def test_repos(client):
    client.create_repo("r1", description="one")
    assert _code(lambda: client.create_repo("r1")) == grpc.StatusCode.ALREADY_EXISTS
    client.create_repo("r1", description="uno", update=True)
    assert client.inspect_repo("r1").description == "uno"
    assert [r.repo.name for r in client.list_repo()] == ["r1"]
    assert _code(lambda: client.inspect_repo("r2")) == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.create_repo("bad name")) == grpc.StatusCode.INVALID_ARGUMENT
    client.delete_repo("r1")
    assert list(client.list_repo()) == []


def test_commits_and_commit_sets(client, images):
    c1, c2 = images
    ids = [c.commit.id for c in client.list_commit("images")]
    assert ids == [c2, c1]  # newest first, as pachd
    assert [c.commit.id for c in client.list_commit("images", number=1)] == [c2]
    head = next(client.inspect_commit(("images", "master")))
    assert head.commit.id == c2 and head.parent_commit.id == c1 and head.finished.seconds > 0
    assert next(client.inspect_commit(("images", "master^"))).commit.id == c1
    assert [c.commit.branch.repo.name for c in client.inspect_commit(c1)] == ["images"]
    assert {s.commit_set.id for s in client.list_commit()} == {c1, c2}
    branch = client.inspect_branch("images", "master")
    assert branch.head.id == c2
    assert [b.branch.name for b in client.list_branch("images")] == ["master"]
    assert _code(lambda: next(client.inspect_commit(("images", "nobranch")))) == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.finish_commit(("images", c1))) == grpc.StatusCode.FAILED_PRECONDITION


def test_open_commit_is_started_not_finished_and_can_be_dropped(client):
    client.create_repo("r")
    c = client.start_commit("r", "master", description="wip")
    info = next(client.inspect_commit(c))
    assert info.commit.id == c.id and info.started.seconds > 0 and not info.finished.seconds
    client.put_file_bytes(c, "/x", b"1")
    client.drop_commit(c.id)
    assert list(client.list_commit("r")) == []


def test_files(client, images, tmp_path):
    c1, c2 = images
    head = ("images", "master")
    assert [f.file.path for f in client.list_file(head, "/")] == ["/d/"]
    assert [(f.file.path, f.file_type) for f in client.list_file(("images", c1), "/")] == [
        ("/a.txt", pfs_pb2.FileType.FILE), ("/d/", pfs_pb2.FileType.DIR)]
    assert [f.file.path for f in client.walk_file(head, "/d")] == ["/d/", "/d/b.txt", "/d/e/", "/d/e/f.txt"]
    assert [f.file.path for f in client.glob_file(head, "/d/*")] == ["/d/b.txt", "/d/e/"]
    info = client.inspect_file(head, "/d/b.txt")
    assert info.size_bytes == 2_500_008 and len(info.hash) == 32
    assert client.get_file(head, "/d/b.txt").read() == b"x" * 2_500_000 + b"appended"
    assert client.get_file(head, "/d/b.txt", offset=2_500_000).read() == b"appended"
    assert client.get_file(head, "/d/e/f.txt").read() == b""
    assert client.get_file(("images", c1), "/a.txt").read() == b"hello"
    assert client.path_exists(head, "/d/e/f.txt") and not client.path_exists(head, "/a.txt")
    tar = client.get_file_tar(head, "/d")
    tar.extractall(tmp_path)
    assert (tmp_path / "d" / "b.txt").stat().st_size == 2_500_008 and (tmp_path / "d" / "e" / "f.txt").exists()
    with pytest.raises(ConnectionError) as e:  # python-pachyderm wraps a failing first message
        client.get_file(head, "/d")
    assert e.value.__cause__.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_modify_file_on_a_branch_opens_and_finishes_a_commit(client):
    client.create_repo("r")
    with client.modify_file_client(("r", "master")) as mfc:
        mfc.put_file_from_bytes("/one", b"1")
        mfc.put_file_from_bytes("/two", b"2")
    assert [f.file.path for f in client.list_file(("r", "master"), "/")] == ["/one", "/two"]
    assert len(list(client.list_commit("r"))) == 1
    with pytest.raises(grpc.RpcError) as e:
        client.put_file_url(("r", "master"), "/u", "http://nonexistent.invalid/x")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "http://nonexistent.invalid/x: cannot be read" in e.value.details()
    assert len(list(client.list_commit("r"))) == 1  # the refused stream changed nothing


def test_put_file_from_a_url_and_copy_and_diff(client, tmp_path):
    """put_file_url reads http:// (a local server here) and file:// URLs; copy_file and
    diff_file work as pachd's."""
    import http.server
    import threading
    (tmp_path / "page.html").write_bytes(b"<p>hi</p>")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client.create_repo("u")
        with client.commit("u", "master") as c1:
            client.put_file_url(c1, "/web.html", f"http://127.0.0.1:{httpd.server_port}/page.html")
            client.put_file_url(c1, "/local.html", (tmp_path / "page.html").as_uri())
    finally:
        httpd.shutdown()
    assert client.get_file(c1, "/web.html").read() == b"<p>hi</p>"
    assert client.get_file(c1, "/local.html").read() == b"<p>hi</p>"
    with client.commit("u", "master") as c2:
        client.copy_file(c1, "/web.html", c2, "/copy.html")
        client.put_file_bytes(c2, "/local.html", b"changed")
    assert client.get_file(c2, "/copy.html").read() == b"<p>hi</p>"
    diff = list(client.diff_file(c2, "/"))  # against the parent commit
    assert sorted((d.new_file.file.path, d.old_file.file.path) for d in diff) == [
        ("/copy.html", ""), ("/local.html", "/local.html")]
