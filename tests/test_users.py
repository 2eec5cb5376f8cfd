"""Several users on one server: sign-in, roles checked inside the handlers, collections filtered
inside retrieval, conversations kept per user, the audit log (real server, real Chromium)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import CORPUS, LEGAL, SALES, SHOTS, free_port, needs_chromium, run_tpdqa, serving, team_folder

PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password", "root": "root-password"}


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    base = tmp_path_factory.mktemp("team")
    docs = team_folder(base)
    roles = {"alice": ("reader", "sales"), "bob": ("reader", "legal"), "carol": ("reader", "default"),
             "root": ("admin", "")}
    for name, (role, collections) in roles.items():
        added = run_tpdqa("user", "add", name, "--role", role, "--collections", collections, "--users", "users.toml",
                          cwd=base, input=PASSWORDS[name] + "\n")
        assert added.returncode == 0, added.stderr
    assert "password" not in (base / "users.toml").read_text() or "$argon2" in (base / "users.toml").read_text()
    assert not any(pw in (base / "users.toml").read_text() for pw in PASSWORDS.values())  # hashes only
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPDQA_")}
    command = [sys.executable, "-m", "tpdqa.cli", "serve", "--port", str(port), "--users", "users.toml"]
    with serving(command, url, timeout=180, log=base / "serve.log", cwd=base, env=env):
        root = client(url, "root")
        deadline = time.monotonic() + 300
        while root.predict(SALES, api_name="/ask")["refused"]:  # the first indexing run
            assert time.monotonic() < deadline, (base / "serve.log").read_text()[-3000:]
            time.sleep(1)
        yield {"url": url, "base": base, "docs": docs}


def client(url: str, name: str):
    from gradio_client import Client

    return Client(url, auth=(name, PASSWORDS[name]), verbose=False)


def sources(answer: dict, key: str = "citations") -> set[str]:
    return {item["source"] for item in answer[key]}


def test_each_user_is_answered_from_their_collections_only(team):
    alice, bob = client(team["url"], "alice"), client(team["url"], "bob")
    own = alice.predict(SALES, api_name="/ask")
    assert not own["refused"] and sources(own) == {"sales/offer.txt"} and "LAVENDER-42" in own["text"]
    other = alice.predict(LEGAL, api_name="/ask")
    assert other["refused"] and "2031" not in other["text"]
    # retrieval itself never returned a forbidden chunk, even when asked for that collection
    asked_for_legal = alice.predict(LEGAL, None, ["legal"], api_name="/ask")
    for answer in (own, other, asked_for_legal):
        assert {s.split("/")[0] for s in sources(answer, "retrieved")} <= {"sales"}
    theirs = bob.predict(LEGAL, api_name="/ask")
    assert not theirs["refused"] and sources(theirs) == {"legal/contract.txt"}
    assert bob.predict(SALES, api_name="/ask")["refused"]
    assert {s.split("/")[0] for s in sources(bob.predict(SALES, api_name="/ask"), "retrieved")} <= {"legal"}


def test_anonymous_clients_and_wrong_passwords_are_refused_and_tries_slow_down(team):
    from gradio_client import Client

    with pytest.raises(Exception):
        Client(team["url"], verbose=False).predict(SALES, api_name="/ask")
    login = f"{team['url']}login"
    for _ in range(10):
        assert httpx.post(login, data={"username": "carol", "password": "not-it"}).status_code == 400
    # the eleventh try comes too soon: refused even with the right password
    assert httpx.post(login, data={"username": "carol", "password": PASSWORDS["carol"]}).status_code == 400
    time.sleep(1.5)
    assert httpx.post(login, data={"username": "carol", "password": PASSWORDS["carol"]}).status_code == 200


def signed_in(url: str, name: str | None) -> httpx.Client:
    session = httpx.Client(base_url=url, timeout=60)
    if name:
        assert session.post("login", data={"username": name, "password": PASSWORDS[name]}).status_code == 200
    return session


def handler(session: httpx.Client, elem_id: str, event: str = "click") -> tuple[int, int]:
    """(fn_index, trigger id) of the event on the component ``elem_id``, read from the page's config."""
    config = session.get("config").json()
    component = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    fn = next(d["id"] for d in config["dependencies"] if [component, event] in d["targets"])
    return fn, component


def post(session: httpx.Client, elem_id: str, data: list, event: str = "click", session_hash: str | None = None,
         ids: tuple[int, int] | None = None) -> dict:
    """What a hand-made POST to Gradio's queue gets: the final message of the event."""
    fn, trigger = ids or handler(session, elem_id, event)
    session_hash = session_hash or uuid.uuid4().hex[:10]
    joined = session.post("gradio_api/queue/join", json={"data": data, "fn_index": fn, "trigger_id": trigger,
                                                        "session_hash": session_hash, "event_data": None})
    if joined.status_code != 200:
        return {"msg": "http", "status": joined.status_code}
    deadline = time.monotonic() + 180  # heartbeats arrive every 15 s: a stream that never completes ends here
    with session.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as events:
        if events.status_code != 200:
            return {"msg": "http", "status": events.status_code}
        for line in events.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
            if time.monotonic() > deadline:
                break
    raise AssertionError("the queue never completed the event")


def test_admin_actions_by_hand_made_posts_need_an_admin(team):
    target = team["docs"] / "legal" / "contract.txt"
    before = sorted(p.name for p in team["docs"].rglob("*"))
    root = signed_in(team["url"], "root")
    anonymous = signed_in(team["url"], None)  # knows the handler's number from someone's page
    refused = post(anonymous, "reindex", [], ids=handler(root, "reindex"))
    assert refused in ({"msg": "http", "status": 401}, {"msg": "http", "status": 403})
    alice = signed_in(team["url"], "alice")
    for elem_id, data in (("reindex", []), ("delete", ["legal/contract.txt"])):
        result = post(alice, elem_id, data)
        assert result["success"] is False and "Only an admin" in json.dumps(result), result
    uploaded = alice.post("gradio_api/upload", files={"files": ("evil.txt", b"planted text")}).json()[0]
    result = post(alice, "upload", [[{"path": uploaded, "orig_name": "evil.txt", "meta": {"_type": "gradio.FileData"}}]],
                  event="upload")
    assert result["success"] is False and "Only an admin" in json.dumps(result), result
    assert sorted(p.name for p in team["docs"].rglob("*")) == before and target.exists()  # nothing changed

    scratch = team["docs"] / "scratch.txt"
    scratch.write_text("A scratch note for the admin to delete.\n", encoding="utf-8")
    assert post(root, "reindex", [])["success"] is True
    # the admin's delete: choose (sets the session's pending file), then confirm
    session_hash = uuid.uuid4().hex[:10]
    for elem_id, data in (("delete", ["scratch.txt"]), ("confirm-delete-yes", [None])):
        assert post(root, elem_id, data, session_hash=session_hash)["success"] is True
    assert not scratch.exists()
    audit = audit_lines(team)
    assert {"user": "alice", "action": "re-index", "result": "refused-not-admin"} in audit
    assert {"user": "root", "action": "delete", "file": "scratch.txt"} in audit
    assert {"user": "root", "action": "re-index"} in audit
    assert {"user": "carol", "action": "sign-in", "result": "wrong-password"} in audit
    assert {"user": "root", "action": "sign-in", "result": "ok"} in audit


def audit_lines(team) -> list[dict]:
    """The audit log's lines as objects (every line must be one JSON object), without their time."""
    lines = (team["base"] / "index" / "audit.log").read_text(encoding="utf-8").splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]


@needs_chromium
def test_conversation_comes_back_after_a_reload_and_only_for_its_user(team, browser):
    def sign_in(name: str):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(team["url"])
        page.fill("input[type=text]", name)
        page.fill("input[type=password]", PASSWORDS[name])
        page.keyboard.press("Enter")
        page.wait_for_selector("#question textarea", timeout=60_000)
        return context, page

    alice_context, alice = sign_in("alice")
    assert alice.get_by_role("tab", name="Documents").count() == 0  # readers have no Documents tab
    alice.wait_for_function("document.querySelector('#index-status').innerText.includes('Index ready')")
    assert "Index ready: 1 document(s), 1 passages." in alice.inner_text("#index-status")  # hers only
    alice.fill("#question textarea", SALES)
    alice.click("#send")
    alice.wait_for_function("document.querySelectorAll('#sources .tpdqa-turn').length >= 1", timeout=120_000)
    assert "[1] sales/offer.txt" in alice.inner_text("#sources")
    alice.reload()
    alice.wait_for_function("document.querySelectorAll('#sources .tpdqa-turn').length >= 1", timeout=60_000)
    assert "[1] sales/offer.txt" in alice.inner_text("#sources") and "LAVENDER-42" in alice.inner_text("#chatbot")
    assert SALES in alice.inner_text("#chatbot")

    bob_context, bob = sign_in("bob")
    bob.wait_for_timeout(2000)  # the page's load event has run
    assert SALES not in bob.inner_text("#chatbot") and "LAVENDER" not in bob.inner_text("body")
    assert bob.locator("#sources .tpdqa-turn").count() == 0
    bob.fill("#question textarea", SALES)
    bob.click("#send")
    bob.wait_for_function("document.querySelectorAll('#sources .tpdqa-turn').length >= 1", timeout=120_000)
    assert "No source" in bob.inner_text("#sources") and "LAVENDER" not in bob.inner_text("#chatbot")
    SHOTS.mkdir(parents=True, exist_ok=True)
    alice.screenshot(path=str(SHOTS / "users_alice_after_reload.png"))
    bob.screenshot(path=str(SHOTS / "users_bob.png"))
    alice_context.close()
    bob_context.close()


@needs_chromium
def test_the_collections_box_limits_the_answer(team, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(team["url"])
    page.fill("input[type=text]", "root")
    page.fill("input[type=password]", PASSWORDS["root"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#collections", timeout=60_000)  # an admin of all collections gets the box
    assert all(page.get_by_label(name, exact=True).is_checked() for name in ("default", "legal", "sales"))
    page.get_by_label("sales", exact=True).uncheck()
    page.fill("#question textarea", SALES)
    page.click("#send")
    page.wait_for_function("document.querySelectorAll('#sources .tpdqa-turn').length >= 1", timeout=120_000)
    assert "No source" in page.inner_text("#sources") and "LAVENDER" not in page.inner_text("#chatbot")
    page.get_by_label("sales", exact=True).check()
    page.fill("#question textarea", SALES)
    page.click("#send")
    page.wait_for_function("document.querySelectorAll('#sources .tpdqa-turn').length >= 2", timeout=120_000)
    assert "[1] sales/offer.txt" in page.locator("#sources .tpdqa-turn").first.inner_text()
    context.close()


def test_serving_beyond_this_machine_without_users_is_refused(tmp_path):
    result = run_tpdqa("serve", "--host", "0.0.0.0", "--port", str(free_port()), cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Refusing to serve on 0.0.0.0 without sign-in" in result.stderr and "--users" in result.stderr


def test_a_trusted_proxy_header_names_the_user_and_nothing_else_gets_in(tmp_path):
    """``trusted_user_header``: the proxy signs users in; the server only maps the name to a user."""
    (tmp_path / "documents").mkdir()
    shutil.copy(CORPUS, tmp_path / "documents" / CORPUS.name)
    added = run_tpdqa("user", "add", "alice", "--users", "users.toml", cwd=tmp_path, input=PASSWORDS["alice"] + "\n")
    assert added.returncode == 0, added.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TPDQA_")},
           "TPDQA_USERS_FILE": "users.toml", "TPDQA_TRUSTED_USER_HEADER": "X-Forwarded-User"}
    with serving([sys.executable, "-m", "tpdqa.cli", "serve", "--port", str(port)], url, timeout=180,
                 log=tmp_path / "serve.log", cwd=tmp_path, env=env, headers={"X-Forwarded-User": "alice"}):
        assert httpx.get(f"{url}config", headers={"X-Forwarded-User": "alice"}).status_code == 200
        assert httpx.get(f"{url}config").status_code == 401
        assert httpx.get(f"{url}config", headers={"X-Forwarded-User": "mallory"}).status_code == 401


def test_a_session_hash_used_by_another_user_yields_nothing_of_the_first(team):
    alice, bob = signed_in(team["url"], "alice"), signed_in(team["url"], "bob")
    ids = handler(alice, "send")
    question, hash_ = SALES, uuid.uuid4().hex[:10]
    chat = [question, [], None, "extractive", [], None]
    answered = post(alice, "send", chat, session_hash=hash_, ids=ids)
    assert answered["success"] is True and "LAVENDER-42" in json.dumps(answered)
    # bob, signed in as himself, replays her hash: her stream, her session and her state stay hers
    with bob.stream("GET", "gradio_api/queue/data", params={"session_hash": hash_}) as stream:  # headers only
        assert stream.status_code == 403
    assert post(bob, "send", [LEGAL, [], None, "extractive", [], None], session_hash=hash_, ids=ids) == \
        {"msg": "http", "status": 403}
    for client_, status in ((bob, 403), (signed_in(team["url"], None), 401)):
        with client_.stream("GET", f"gradio_api/heartbeat/{hash_}") as stream:  # an endless stream when let in
            assert stream.status_code == status
    # her own next turn in the same session still works, and her stored conversation has no turn of bob's
    again = post(alice, "send", [question, [], None, "extractive", [], None], session_hash=hash_, ids=ids)
    assert again["success"] is True
    conversation = sqlite_rows(team["base"] / "index" / "conversations.sqlite")
    assert LEGAL not in conversation.get("alice", "") and "2031" not in conversation.get("alice", "")
    assert {"user": "bob", "action": "use-session", "result": "refused-other-user",
            "path": "/gradio_api/queue/data"} in audit_lines(team)


def sqlite_rows(path: Path) -> dict[str, str]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return {user: messages for user, messages in conn.execute("SELECT user, messages FROM conversations")}


def test_a_user_name_with_a_newline_cannot_forge_an_audit_line_and_refused_deletes_are_logged(team):
    forged = 'eve\n{"time": "2026-01-01T00:00:00Z", "user": "root", "action": "delete", "file": "offer.txt"}'
    assert httpx.post(f"{team['url']}login", data={"username": forged, "password": "x"}).status_code == 400
    root = signed_in(team["url"], "root")
    session_hash = uuid.uuid4().hex[:10]
    for target in ("../users.toml", "/etc/passwd"):
        assert post(root, "delete", [target], session_hash=session_hash)["success"] is True
        assert post(root, "confirm-delete-yes", [None], session_hash=session_hash)["success"] is True
    assert (team["base"] / "users.toml").exists()
    audit = audit_lines(team)  # every line parses: nothing was split off as a line of its own
    assert {"user": forged, "action": "sign-in", "result": "wrong-password"} in audit
    assert {"user": "root", "action": "delete", "file": "offer.txt"} not in audit
    refused = [a for a in audit if a.get("action") == "delete" and a.get("result") == "refused"]
    assert {a["file"] for a in refused} >= {"../users.toml", "/etc/passwd"}
    for name in ("audit.log", "conversations.sqlite"):  # other users' questions: the owner's only
        assert (team["base"] / "index" / name).stat().st_mode & 0o077 == 0, name


def test_an_admin_narrows_api_answers_to_the_collections_asked_for(team):
    root = client(team["url"], "root")
    narrowed = root.predict(SALES, None, ["legal"], api_name="/ask")
    assert narrowed["refused"] and "LAVENDER" not in narrowed["text"]
    assert {s.split("/")[0] for s in sources(narrowed, "retrieved")} <= {"legal"}
    assert sources(root.predict(SALES, None, ["sales"], api_name="/ask")) == {"sales/offer.txt"}


def test_sign_in_floods_leave_signed_in_users_served(team):
    import threading

    carol = signed_in(team["url"], "carol")
    assert carol.get("config").status_code == 200
    stop = threading.Event()

    def flood(client_number: int) -> None:
        with httpx.Client(base_url=team["url"], timeout=120) as anonymous:
            for attempt in range(5):  # made-up names: each one is checked in full (no back-off yet)
                if stop.is_set():
                    return
                anonymous.post("login", data={"username": f"flood-{client_number}-{attempt}", "password": "guess"})

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the flood is under way
    seconds = []
    for _ in range(10):
        started = time.monotonic()
        assert carol.get("config").status_code == 200
        seconds.append(time.monotonic() - started)
        time.sleep(0.2)
    busy = any(thread.is_alive() for thread in threads)
    stop.set()
    for thread in threads:
        thread.join()
    # Nine of ten served at once, none stalled: a flood that held the server would slow them all; one
    # slow answer is this 2-core machine's scheduler (0.52 s once in a CI run, the rest under 0.03 s).
    assert sorted(seconds)[-2] < 0.2 and max(seconds) < 2.0, seconds
    assert busy, "the flood ended before the measurements: send more attempts"


def test_the_failure_table_stays_bounded_whatever_names_are_tried(tmp_path, monkeypatch):
    from tpdqa import users as users_module

    monkeypatch.setattr(users_module, "MAX_TRACKED_NAMES", 5)
    users = users_module.Users(tmp_path / "users.toml")
    users.add("alice", "alice-password")
    for n in range(12):
        assert users.authenticate(f"nobody-{n}", "guess") is False
    assert users.tracked() == 5
    assert users.authenticate("alice", "alice-password") is True


def test_changing_a_password_ends_the_sessions_signed_in_with_the_old_one(team):
    added = run_tpdqa("user", "add", "dave", "--collections", "sales", "--users", "users.toml", cwd=team["base"],
                      input="dave-password-1\n")
    assert added.returncode == 0, added.stderr
    dave = httpx.Client(base_url=team["url"], timeout=60)
    assert dave.post("login", data={"username": "dave", "password": "dave-password-1"}).status_code == 200
    assert dave.get("config").status_code == 200
    time.sleep(0.05)  # a distinct modification time for the users file
    changed = run_tpdqa("user", "add", "dave", "--collections", "sales", "--users", "users.toml", cwd=team["base"],
                        input="dave-password-2\n")
    assert changed.returncode == 0, changed.stderr
    assert dave.get("config").status_code == 401
    assert dave.post("login", data={"username": "dave", "password": "dave-password-1"}).status_code == 400
    fresh = httpx.Client(base_url=team["url"], timeout=60)
    assert fresh.post("login", data={"username": "dave", "password": "dave-password-2"}).status_code == 200
    assert fresh.get("config").status_code == 200
