"""The HTTP API of a real `tpdqa serve` (subprocess, free port), through real clients: httpx for
REST, the `openai` package for /v1, the `mcp` SDK's client over streamable HTTP and over
`tpdqa mcp` stdio. Keys made by `tpdqa user key`; roles and collections as on the page."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest

from tests.conftest import CORPUS, LEGAL, SALES, free_port, needs_chromium, run_tpdqa, serving, team_folder

LIGHTHOUSE = "How much money did the lighthouse keeper ask for?"
LIGHTHOUSE_TEXT = ("The harbour committee met on Tuesday to discuss the lighthouse repairs.\n"
                   "The lighthouse keeper asked for a new lens and a budget of 40,000 euros.\n")


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TPDQA_")}, **extra}


def new_key(base: Path, name: str) -> str:
    made = run_tpdqa("user", "key", name, "--users", "users.toml", cwd=base)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A server with users: alice reads sales, bob reads legal, root is admin; uploads up to 1 MB."""
    base = tmp_path_factory.mktemp("api-team")
    docs = team_folder(base)
    for name, role, collections in (("alice", "reader", "sales"), ("bob", "reader", "legal"), ("root", "admin", "")):
        added = run_tpdqa("user", "add", name, "--role", role, "--collections", collections, "--users", "users.toml",
                          cwd=base, input=f"{name}-password\n")
        assert added.returncode == 0, added.stderr
    keys = {name: new_key(base, name) for name in ("alice", "bob", "root")}
    stored = (base / "users.toml").read_text()
    assert not any(key in stored for key in keys.values())  # only their hashes
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tpdqa.cli", "serve", "--port", str(port), "--users", "users.toml"]
    with serving(command, url + "/", timeout=180, log=base / "serve.log", cwd=base,
                 env=clean_env(TPDQA_MAX_UPLOAD_MB="1")):
        root = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys['root']}"}, timeout=300)
        deadline = time.monotonic() + 300
        while root.get("/api/v1/status").json()["documents"] < 3 or root.get("/api/v1/status").json()["indexing"][
                "running"]:
            assert time.monotonic() < deadline, (base / "serve.log").read_text()[-3000:]
            time.sleep(1)
        yield {"url": url, "base": base, "docs": docs, "keys": keys}


def as_user(team, name: str) -> httpx.Client:
    return httpx.Client(base_url=team["url"], headers={"Authorization": f"Bearer {team['keys'][name]}"}, timeout=300)


def test_rest_asks_streams_searches_and_lists(team):
    alice = as_user(team, "alice")
    answer = alice.post("/api/v1/ask", json={"question": SALES}).json()
    assert not answer["refused"] and "LAVENDER-42" in answer["text"] and "[1]" in answer["text"]
    cited = answer["citations"][0]
    assert cited["source"] == "sales/offer.txt" and "LAVENDER-42" in cited["quote"]
    assert {"n", "section", "page", "sentences", "chunk_id"} <= set(cited) and answer["retrieved"]

    with alice.stream("POST", "/api/v1/ask", params={"stream": "true"}, json={"question": SALES}) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [block for block in streamed.read().decode().split("\n\n") if block.strip()]
    kinds = [block.split("\n")[0].removeprefix("event: ") for block in events]
    assert kinds[0] == "delta" and kinds[-1] == "answer" and set(kinds[:-1]) == {"delta"}
    final = json.loads(events[-1].split("data: ", 1)[1])
    text = "".join(json.loads(e.split("data: ", 1)[1])["text"] for e in events[:-1])
    assert final["text"].startswith(text.rstrip()) and final["citations"][0]["source"] == "sales/offer.txt"

    found = alice.get("/api/v1/search", params={"q": "discount code spring offer", "k": 1}).json()
    assert len(found["passages"]) == 1 and found["passages"][0]["source"] == "sales/offer.txt"
    assert found["passages"][0]["score"] > 0 and "LAVENDER-42" in found["passages"][0]["text"]

    listed = alice.get("/api/v1/documents").json()
    assert [d["source"] for d in listed["documents"]] == ["sales/offer.txt"]  # her collection only
    status = alice.get("/api/v1/status").json()
    assert status["documents"] == 1 and status["collections"] == ["sales"] and status["generation"]
    assert as_user(team, "root").get("/api/v1/status").json()["documents"] == 3


def test_no_key_a_wrong_key_and_a_reader_key_are_refused_with_the_right_status(team):
    anonymous = httpx.Client(base_url=team["url"], timeout=60)
    calls = [("POST", "/api/v1/ask", {"json": {"question": SALES}}), ("GET", "/api/v1/search?q=x", {}),
             ("GET", "/api/v1/documents", {}), ("POST", "/api/v1/reindex", {}), ("GET", "/api/v1/status", {}),
             ("DELETE", "/api/v1/documents/sales/offer.txt", {}), ("GET", "/v1/models", {}),
             ("POST", "/v1/chat/completions", {"json": {"model": "tpdqa", "messages": [{"role": "user",
                                                                                         "content": SALES}]}}),
             ("POST", "/mcp", {"json": {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}})]
    for method, path, kwargs in calls:
        refused = anonymous.request(method, path, **kwargs)
        assert refused.status_code == 401, (path, refused.text)
        assert refused.json()["error"]["code"] == "unauthorized" and refused.headers["www-authenticate"] == "Bearer"
        wrong = anonymous.request(method, path, headers={"Authorization": "Bearer tpdqa-00000000.guess"}, **kwargs)
        assert wrong.status_code == 401, (path, wrong.text)

    alice = as_user(team, "alice")
    assert alice.post("/api/v1/reindex").status_code == 403
    assert alice.delete("/api/v1/documents/sales/offer.txt").status_code == 403
    upload = alice.post("/api/v1/documents", files={"file": ("note.txt", b"A note.\n")})
    assert upload.status_code == 403 and "admin" in upload.json()["error"]["message"]
    assert (team["docs"] / "sales" / "offer.txt").exists() and not (team["docs"] / "note.txt").exists()

    root = as_user(team, "root")
    assert root.delete("/api/v1/documents/nothing-here.txt").status_code == 404
    taken = root.post("/api/v1/documents", files={"file": (CORPUS.name, b"Another text.\n")})
    assert taken.status_code == 409 and CORPUS.name in taken.json()["error"]["message"]
    too_big = root.post("/api/v1/documents", files={"file": ("big.txt", b"word " * 250_000)})
    assert too_big.status_code == 413 and "1 MB" in too_big.json()["error"]["message"]
    assert root.post("/api/v1/documents", files={"file": ("tool.exe", b"MZ")}).status_code == 400
    assert root.post("/api/v1/documents", files={"file": ("../escape.txt", b"x")}).status_code == 400
    assert root.post("/api/v1/ask", json={"question": "   "}).status_code == 400
    missing = root.post("/api/v1/ask", json={"history": []})
    assert missing.status_code == 422 and "question" in missing.json()["error"]["message"]
    assert not (team["docs"] / "big.txt").exists() and not (team["docs"] / "tool.exe").exists()
    assert sorted(p.name for p in team["docs"].rglob("*.txt")) == sorted([CORPUS.name, "offer.txt", "contract.txt"])

    log = (team["base"] / "index" / "audit.log").read_text()
    lines = [json.loads(line) for line in log.splitlines()]
    assert any(e.get("result") == "refused-no-key" and e.get("path") == "/mcp" for e in lines)
    assert any(e["user"] == "alice" and e["action"] == "re-index" and e["result"] == "refused-not-admin" for e in lines)
    assert not any(key in log or key in (team["base"] / "serve.log").read_text() for key in team["keys"].values())


def test_a_reader_key_never_gets_another_collections_passage(team):
    alice = as_user(team, "alice")
    legal = alice.post("/api/v1/ask", json={"question": LEGAL}).json()
    assert legal["refused"] or all(c["source"] != "legal/contract.txt" for c in legal["citations"])
    assert all(r["source"] != "legal/contract.txt" for r in legal["retrieved"])
    narrowed = alice.post("/api/v1/ask", json={"question": LEGAL, "collections": ["legal"]}).json()
    assert narrowed["refused"] and not narrowed["retrieved"]  # asking for it does not widen her scope
    found = alice.get("/api/v1/search", params={"q": "lease Lyon office legal department", "k": 10}).json()
    assert found["passages"] and all(p["source"] != "legal/contract.txt" for p in found["passages"])
    bob = as_user(team, "bob").post("/api/v1/ask", json={"question": LEGAL}).json()
    assert not bob["refused"] and bob["citations"][0]["source"] == "legal/contract.txt"


def test_openai_client_plain_streamed_and_with_history(team):
    from openai import NotFoundError, OpenAI

    client = OpenAI(base_url=team["url"] + "/v1", api_key=team["keys"]["alice"], timeout=300)
    assert sorted(m.id for m in client.models.list()) == ["tpdqa", "tpdqa:sales"]

    reply = client.chat.completions.create(model="tpdqa", messages=[{"role": "user", "content": SALES}])
    assert "LAVENDER-42" in reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
    assert reply.model_extra["citations"][0]["source"] == "sales/offer.txt"

    legal = client.chat.completions.create(model="tpdqa", messages=[{"role": "user", "content": LEGAL}])
    assert legal.model_extra["refused"] and "2031" not in legal.choices[0].message.content
    assert not legal.model_extra["citations"]
    with pytest.raises(NotFoundError):  # another's collection is no model of hers
        client.chat.completions.create(model="tpdqa:legal", messages=[{"role": "user", "content": LEGAL}])

    # A follow-up reads the conversation: "it" is the spring offer's code
    history = [{"role": "system", "content": "Answer from the documents."},
               {"role": "user", "content": SALES}, {"role": "assistant", "content": reply.choices[0].message.content},
               {"role": "user", "content": "Which team chose it?"}]
    follow = client.chat.completions.create(model="tpdqa:sales", messages=history)
    assert "sales team" in follow.choices[0].message.content

    text, chunks = "", list(client.chat.completions.create(
        model="tpdqa", messages=[{"role": "user", "content": SALES}], stream=True))
    for chunk in chunks:
        text += chunk.choices[0].delta.content or ""
    assert "LAVENDER-42" in text and chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"][0]["source"] == "sales/offer.txt"


def mcp_call(transport, calls):
    """Open an MCP client session on ``transport``, list the tools and make ``calls``."""
    from mcp import Client

    async def run():
        async with Client(transport, read_timeout_seconds=300) as client:
            tools = (await client.list_tools()).tools
            return tools, [await client.call_tool(name, arguments) for name, arguments in calls]

    return anyio.run(run)


CALLS = [("ask", {"question": SALES}), ("search_documents", {"query": "lease Lyon office", "k": 10}),
         ("list_documents", {})]


def test_mcp_over_streamable_http_with_a_key(team):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {team['keys']['alice']}"}, timeout=300)
    tools, (asked, searched, listed) = mcp_call(streamable_http_client(team["url"] + "/mcp", http_client=http), CALLS)
    assert sorted(t.name for t in tools) == ["ask", "list_documents", "search_documents"]
    assert all(t.output_schema and t.description for t in tools)
    assert not asked.is_error and "LAVENDER-42" in asked.structured_content["text"]
    assert asked.structured_content["citations"][0]["source"] == "sales/offer.txt"
    assert "Sources:" in asked.content[0].text and "sales/offer.txt" in asked.content[0].text
    passages = searched.structured_content["passages"]
    assert passages and all(p["source"] != "legal/contract.txt" for p in passages)  # never bob's collection
    assert [d["source"] for d in listed.structured_content["documents"]] == ["sales/offer.txt"]
    assert "sales/offer.txt" in listed.content[0].text


def test_mcp_over_stdio(tmp_path, corpus_dir):
    from mcp.client.stdio import StdioServerParameters

    command = StdioServerParameters(command=sys.executable, args=["-m", "tpdqa.cli", "mcp", "--documents-dir",
                                                                  str(corpus_dir), "--index-dir",
                                                                  str(tmp_path / "index")], env=clean_env())
    calls = [("ask", {"question": "Qui domine la production de puces mémoire ?"}),
             ("search_documents", {"query": "robotique", "k": 2}), ("list_documents", {})]
    tools, (asked, searched, listed) = mcp_call(command, calls)
    assert sorted(t.name for t in tools) == ["ask", "list_documents", "search_documents"]
    assert not asked.structured_content["refused"] and "Corée du Sud domine" in asked.structured_content["text"]
    assert len(searched.structured_content["passages"]) == 2
    assert listed.structured_content["documents"][0]["source"] == CORPUS.name


def test_an_admin_key_uploads_and_the_next_answer_cites_it_without_restart(team):
    root = as_user(team, "root")
    assert root.post("/api/v1/ask", json={"question": LIGHTHOUSE}).json()["refused"]
    added = root.post("/api/v1/documents", files={"file": ("lighthouse.txt", LIGHTHOUSE_TEXT.encode())})
    assert added.status_code == 201, added.text
    assert added.json()["saved"] == [{"name": "lighthouse.txt", "saved_as": "lighthouse.txt"}]
    assert added.json()["index"]["added"] == 1
    answer = root.post("/api/v1/ask", json={"question": LIGHTHOUSE}).json()
    assert not answer["refused"] and answer["citations"][0]["source"] == "lighthouse.txt"
    assert "40,000 euros" in answer["citations"][0]["quote"]

    again = root.post("/api/v1/documents", data={"if_exists": "keep_both"},
                      files={"file": ("lighthouse.txt", LIGHTHOUSE_TEXT.encode())})
    assert again.json()["saved"][0]["saved_as"] == "lighthouse-2.txt"
    for name in ("lighthouse.txt", "lighthouse-2.txt"):
        assert root.delete(f"/api/v1/documents/{name}").json()["deleted"] == 1
    assert root.post("/api/v1/ask", json={"question": LIGHTHOUSE}).json()["refused"]
    log = [json.loads(line) for line in (team["base"] / "index" / "audit.log").read_text().splitlines()]
    assert {"upload", "delete", "re-index"} <= {e["action"] for e in log if e["user"] == "root"}


def test_a_revoked_key_stops_working_and_a_new_password_keeps_keys(team):
    base = team["base"]
    key = new_key(base, "bob")
    bob = httpx.Client(base_url=team["url"], headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert bob.get("/api/v1/status").status_code == 200
    changed = run_tpdqa("user", "add", "bob", "--role", "reader", "--collections", "legal", "--users", "users.toml",
                        cwd=base, input="bob-new-password\n")
    assert changed.returncode == 0 and bob.get("/api/v1/status").status_code == 200
    key_id = key.removeprefix("tpdqa-").split(".")[0]
    assert key_id in run_tpdqa("user", "list", "--users", "users.toml", cwd=base).stdout
    revoked = run_tpdqa("user", "key", "bob", "--revoke", key_id, "--users", "users.toml", cwd=base)
    assert revoked.returncode == 0 and "revoked 1" in revoked.stdout
    assert bob.get("/api/v1/status").status_code == 401  # read again from the file: no restart
    assert as_user(team, "bob").get("/api/v1/status").status_code == 200  # his other key still works


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """A server without users (127.0.0.1 only) on an empty documents folder."""
    base = tmp_path_factory.mktemp("api-local")
    (base / "documents").mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tpdqa.cli", "serve", "--port", str(port)]
    with serving(command, url + "/", timeout=180, log=base / "serve.log", cwd=base, env=clean_env()):
        yield url


def test_the_openapi_document_validates_and_lists_every_endpoint(local):
    from openapi_spec_validator import validate

    spec = httpx.get(local + "/api/v1/openapi.json").json()
    validate(spec)
    operations = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert operations == {("POST", "/api/v1/ask"), ("GET", "/api/v1/search"), ("GET", "/api/v1/documents"),
                          ("POST", "/api/v1/documents"), ("DELETE", "/api/v1/documents/{source}"),
                          ("POST", "/api/v1/reindex"), ("GET", "/api/v1/status"), ("GET", "/v1/models"),
                          ("POST", "/v1/chat/completions")}
    answer = spec["paths"]["/api/v1/ask"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/Answer"}
    assert {"Answer", "Citation", "SearchResult", "DocumentList", "Status", "ErrorBody"} <= set(
        spec["components"]["schemas"])
    assert httpx.get(local + "/api/v1/docs").status_code == 200


def test_without_users_the_api_serves_this_machine_and_refuses_web_pages(local):
    empty = httpx.post(local + "/api/v1/ask", json={"question": SALES}, timeout=120)
    assert empty.status_code == 503 and "empty" in empty.json()["error"]["message"]
    streamed = httpx.post(local + "/api/v1/ask", params={"stream": "true"}, json={"question": SALES}, timeout=120)
    assert streamed.status_code == 503  # a status before the stream starts, not an event inside it
    cross_site = httpx.post(local + "/api/v1/documents", headers={"Origin": "http://attacker.example"},
                            files={"file": ("planted.txt", b"Planted text.\n")})
    assert cross_site.status_code == 403
    rebound = httpx.get(local + "/api/v1/status", headers={"Host": "attacker.example"})
    assert rebound.status_code == 403
    added = httpx.post(local + "/api/v1/documents", files={"file": ("offer.txt", b"The discount code of the spring "
                                                                               b"offer is LAVENDER-42.\n")},
                       timeout=300)
    assert added.status_code == 201, added.text
    answer = httpx.post(local + "/api/v1/ask", json={"question": SALES}, timeout=120).json()
    assert not answer["refused"] and answer["citations"][0]["source"] == "offer.txt"


@needs_chromium
def test_the_interactive_docs_render_in_a_browser_without_internet(local, browser):
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(local + "/api/v1/docs")
    page.wait_for_selector(".opblock", timeout=30_000)  # one block per operation, drawn from openapi.json
    assert page.locator(".opblock").count() == 9
    assert page.locator(".opblock-summary-path", has_text="/api/v1/ask").count() == 1
    assert all(url.startswith(local) for url in requested), [u for u in requested if not u.startswith(local)]
    page.close()
