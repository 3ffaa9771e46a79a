"""Who may read which file, the guard that enforces it in front of gradio, and the expiry of old sessions."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from vggtkit.app.access import COOKIE, FilePolicy, OwnerKeys, is_owner_key
from vggtkit.app.guard import API_CSP, FILE_CSP, PAGE_CSP, DemoGuard, requested_file
from vggtkit.app.session import SessionStore


@pytest.fixture
def folders(tmp_path):
    sessions, examples, uploads = (tmp_path / name for name in ("sessions", "examples", "uploads"))
    for folder in (sessions, examples, uploads):
        folder.mkdir()
    return sessions, examples, uploads


def _file(path: Path, data: bytes = b"data") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_owner_keys_come_only_from_well_formed_cookies():
    keys = OwnerKeys()
    token = keys.new_token()
    assert is_owner_key(keys.key(token)) and keys.key(token) == keys.key(token)
    assert keys.key(keys.new_token()) != keys.key(token)
    assert OwnerKeys().key(token) != keys.key(token)  # the secret lives in one process only
    for bad in (None, "", "short", "../" * 15, token + "x", token[:-1] + "/"):
        assert keys.key(bad) is None
    assert is_owner_key(keys.throwaway()) and not is_owner_key("../etc")


def test_results_are_their_owners_only(folders):
    sessions, examples, uploads = folders
    keys = OwnerKeys()
    alice, bob = keys.throwaway(), keys.throwaway()
    result = _file(sessions / alice / "s1" / "run" / "scene.glb")
    example = _file(examples / "scene" / "0.png")
    policy = FilePolicy(sessions, [examples], uploads)
    assert policy.allows(result, alice)
    assert not policy.allows(result, bob) and not policy.allows(result, None)
    assert policy.allows(example, None) and policy.allows(example, bob)
    assert not policy.allows(_file(sessions / alice / "s1" / ".scene.tmp.glb"), alice)  # half-written
    assert not policy.allows(sessions / alice / "s1", alice)  # a folder
    assert not policy.allows(sessions / alice / "s1" / "missing.glb", alice)
    assert not policy.allows(f"{sessions}/{bob}/../{alice}/s1/run/scene.glb", bob)
    assert not policy.allows("/etc/passwd", alice) and not policy.allows(Path(__file__), alice)
    link = examples / "scene" / "passwd.png"
    link.symlink_to("/etc/passwd")
    assert not policy.allows(link, alice)  # resolved first: outside every served folder
    shared = FilePolicy(sessions, [examples], uploads, share_results=True)
    assert shared.allows(result, bob) and shared.allows(result, None)
    assert not shared.allows("/etc/passwd", None)


def test_uploads_are_their_uploaders_only_and_deleted_only_by_them(folders):
    sessions, examples, uploads = folders
    keys = OwnerKeys()
    alice, bob = keys.throwaway(), keys.throwaway()
    policy = FilePolicy(sessions, [examples], uploads)
    mine = _file(uploads / "hash1" / "a.png")
    both = _file(uploads / "hash2" / "b.png")  # the same content uploaded twice has one name
    outside = _file(examples.parent / "elsewhere.png")
    policy.record_upload(mine, alice)
    policy.record_upload(both, alice)
    policy.record_upload(both, bob)
    policy.record_upload(outside, alice)  # not in the upload folder: never recorded
    assert policy.allows(mine, alice) and not policy.allows(mine, bob) and not policy.allows(mine, None)
    assert not policy.allows(outside, alice)
    policy.delete_uploads([mine, both, outside], owner=bob)  # bob's share of `both` only
    assert mine.is_file() and both.is_file() and outside.is_file()
    assert not policy.allows(both, bob) and policy.allows(both, alice)
    policy.delete_uploads([mine, both], owner=alice)
    assert not mine.exists() and not both.exists() and not (uploads / "hash1").exists()
    assert policy.uploads() == []
    policy.record_upload(_file(uploads / "hash3" / "c.png"), alice)
    (uploads / "hash3" / "c.png").unlink()  # gradio's own expiry
    assert policy.forget_missing() == 1 and policy.uploads() == []


def test_requested_file_knows_every_spelling_of_the_file_route():
    assert requested_file("/gradio_api/file=/a/b.png") == "/a/b.png"
    assert requested_file("/gradio_api/file/a/b.png") == "a/b.png"
    assert requested_file("/file=/a/b.png") == "/a/b.png"
    assert requested_file("/file/a/b.png") == "a/b.png"
    assert requested_file("/gradio_api/upload") is None and requested_file("/") is None


PAGE = b'<html><script>go()</script><SCRIPT src="a.js"></SCRIPT><scripted></html>'


def _echo_app(sent: dict):
    """A stand-in for gradio: answers every path with an HTML page, files with what gradio would send."""

    async def app(scope, receive, send):
        path = scope["path"]
        if path == "/gradio_api/upload":
            body = ('["' + sent["upload"] + '"]').encode()
            headers = [(b"content-type", b"application/json")]
        elif "file=" in path:
            body, headers = (
                b"<html><script>alert(1)</script>",
                [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-disposition", b'inline; filename="x.html"'),
                ],
            )
        elif path == "/gradio_api/info":
            body, headers = b"{}", [(b"content-type", b"application/json")]
        else:
            body, headers = PAGE, [(b"content-type", b"text/html")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def test_the_guard_sets_the_cookie_and_gates_files(folders):
    sessions, examples, uploads = folders
    keys = OwnerKeys()
    policy = FilePolicy(sessions, [examples], uploads)
    sent = {"upload": str(_file(uploads / "h" / "x.html", b"<html>"))}
    alice = TestClient(DemoGuard(_echo_app(sent), policy, keys))
    page = alice.get("/")
    nonce = page.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert page.headers["content-security-policy"] == PAGE_CSP.format(nonce=nonce)
    n = f'nonce="{nonce}"'
    assert page.text == f'<html><script {n}>go()</script><script {n} src="a.js"></SCRIPT><scripted></html>'
    assert page.headers["content-length"] == str(len(page.content))
    assert alice.get("/gradio_api/info").headers["content-security-policy"] == API_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    token = alice.cookies.get(COOKIE)
    assert keys.key(token)
    assert "set-cookie" not in alice.get("/").headers  # kept, not renewed
    result = _file(sessions / keys.key(token) / "s" / "x.html")
    served = alice.get(f"/gradio_api/file={result}")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/octet-stream"  # never text/html
    assert served.headers["content-disposition"] == 'attachment; filename="x.html"'
    assert served.headers["content-security-policy"] == FILE_CSP
    bob = TestClient(DemoGuard(_echo_app(sent), policy, keys))
    assert bob.get(f"/gradio_api/file={result}").status_code == 404
    assert bob.get(f"/file={result}").status_code == 404
    assert alice.post("/gradio_api/upload").status_code == 200  # the answer names the stored file
    assert alice.get(f"/gradio_api/file={sent['upload']}").status_code == 200
    assert bob.get(f"/gradio_api/file={sent['upload']}").status_code == 404


def test_old_sessions_expire_unless_in_use(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    keys = OwnerKeys()
    owner = keys.throwaway()
    old, busy, fresh = (store.create_session(owner) for _ in range(3))
    lonely = store.create_session(keys.throwaway())
    run = store.create_run(busy)
    now = time.time()
    for session in (old, busy, lonely):
        os.utime(session, (now - 7200, now - 7200))
    removed = store.expire(3600, keep=[run.path], now=now)
    assert sorted(removed) == sorted([old, lonely])
    assert busy.is_dir() and fresh.is_dir() and not old.exists()
    assert not lonely.parent.exists()  # the owner folder left empty goes too
    store.touch(run.path / "images" / "x.png")  # any use of a session counts
    assert store.expire(3600, now=time.time() + 1800) == []
    with pytest.raises(ValueError, match="not an owner key"):
        store.create_session("../../etc")
