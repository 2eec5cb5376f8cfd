"""The chat in a real browser: `tpdqa serve` as a subprocess, driven by Playwright in Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CORPUS, SHOTS, free_port, needs_chromium, run_tpdqa, serving

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    (base / "documents").mkdir()
    shutil.copy(CORPUS, base / "documents" / CORPUS.name)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPDQA_")}
    url = f"http://127.0.0.1:{port}"
    with serving([sys.executable, "-m", "tpdqa.cli", "serve", "--port", str(port)], url, timeout=180,
                 log=base / "serve.log", cwd=base, env=env):
        yield {"url": url, "base": base}


@pytest.fixture
def page(browser, server, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(server["url"])
    page.wait_for_selector("#question textarea", timeout=60_000)
    page.wait_for_function("document.querySelector('#index-status').innerText.includes('Index ready')", timeout=180_000)
    yield page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def ask(page, question: str, turns: int) -> None:
    """Type a question, send it, wait until the sources panel shows its turn."""
    page.fill("#question textarea", question)
    page.click("#send")
    page.wait_for_function(
        f"document.querySelectorAll('#sources .tpdqa-turn').length >= {turns}", timeout=120_000
    )


@contextmanager
def chat_on(browser, base: Path, **settings: str) -> Iterator[Any]:
    """A page of `tpdqa serve` run in ``base`` (its ``documents/``), with these TPDQA_* settings."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TPDQA_")}, **settings}
    url = f"http://127.0.0.1:{port}"
    with serving([sys.executable, "-m", "tpdqa.cli", "serve", "--port", str(port)], url, timeout=180,
                 log=base / "serve.log", cwd=base, env=env):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#question textarea", timeout=60_000)
        page.wait_for_function("document.querySelector('#index-status').innerText.includes('Index ready')",
                               timeout=180_000)
        try:
            yield page
        finally:
            context.close()


def newest_turn(page):
    return page.locator("#sources .tpdqa-turn").first


def marked(turn) -> str:
    """The highlighted sentences of a turn in the sources panel (one or two)."""
    return " ".join(turn.locator("mark").all_inner_texts())


def test_status_shows_the_index_and_examples_show_on_the_empty_chat(page):
    assert "Index ready: 1 document(s), 8 passages" in page.inner_text("#index-status")
    chat = page.inner_text("#chatbot")
    assert "Qui domine la production de puces mémoire ?" in chat and "What does TPD stand for?" in chat


def test_french_question_shows_cited_answer_and_highlighted_sentence(page):
    ask(page, "Qui domine la production de puces mémoire ?", 1)
    bubble = page.locator("#chatbot .bot, #chatbot [data-testid='bot']").last
    assert "[1]" in bubble.inner_text() and "Corée du Sud domine" in bubble.inner_text()
    turn = newest_turn(page)
    assert "[1] tpd-asie-2025.txt" in turn.inner_text()
    assert "la Corée du Sud domine la production de puces mémoire" in marked(turn)
    # the marker links to its passage in the sources panel
    href = page.locator("#chatbot a[href^='#tpdqa-src-']").last.get_attribute("href")
    assert page.locator(href).count() == 1
    page.locator("#chatbot a[href^='#tpdqa-src-']").last.click()
    assert len(page.context.pages) == 1  # no new tab


def test_english_question_finds_the_french_passage(page):
    ask(page, "Which country is a leader in robotics?", 1)
    assert "The documents say (in French)" in page.locator("#chatbot").inner_text()
    assert "le Japon est leader dans les matériaux avancés, la robotique" in marked(newest_turn(page))


def test_out_of_scope_question_is_refused_without_sources(page):
    ask(page, "Qui a gagné la Coupe du monde de football 2022 ?", 1)
    assert "Je n'ai pas trouvé la réponse dans les documents." in page.inner_text("#chatbot")
    turn = newest_turn(page)
    assert turn.locator(".tpdqa-source").count() == 0
    assert "No source" in turn.inner_text()


def test_follow_up_uses_the_conversation(page):
    ask(page, "Dans quels domaines le Japon est-il leader ?", 1)
    ask(page, "Et la Corée du Sud ?", 2)
    assert "puces mémoire" in marked(newest_turn(page))
    # an unrelated question after a conversation is still judged on its own
    ask(page, "What is the population of Tokyo?", 3)
    assert "I could not find the answer in the documents." in page.inner_text("#chatbot")


def test_uploaded_file_is_answerable_right_away_and_sources_name_its_section(page, server, tmp_path):
    note = tmp_path / "lighthouse.md"
    note.write_text("# Port-Louvel\n\n## Harbour works\n\nThe harbour committee agreed to repaint the old lighthouse "
                    "in red and white stripes before the summer festival of Port-Louvel.\n", encoding="utf-8")
    page.get_by_role("tab", name="Documents").click()
    page.set_input_files("#upload input[type=file]", str(note))
    page.wait_for_function("document.querySelector('#documents-status').innerText.includes('added lighthouse.md')",
                           timeout=120_000)
    assert "lighthouse.md" in page.inner_text("#documents-table")
    page.get_by_role("tab", name="Chat").click()
    ask(page, "What colour will the lighthouse be painted?", 1)
    turn = newest_turn(page)
    assert "[1] lighthouse.md › Port-Louvel › Harbour works" in turn.inner_text()
    assert "red and white stripes" in marked(turn)
    assert "Harbour works" not in marked(turn)


def test_upload_rejects_unsupported_files(page, tmp_path):
    bad = tmp_path / "script.sh"
    bad.write_text("echo hi\n")
    page.get_by_role("tab", name="Documents").click()
    page.set_input_files("#upload input[type=file]", str(bad))
    page.wait_for_timeout(2000)
    assert "script.sh" not in page.inner_text("#documents-table")


def test_two_pages_keep_separate_histories(browser, server):
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    first, second = (c.new_page() for c in contexts)
    for p in (first, second):
        p.goto(server["url"])
        p.wait_for_selector("#question textarea", timeout=60_000)
    ask(first, "Dans quels domaines le Japon est-il leader ?", 1)
    ask(second, "What does TPD stand for?", 1)
    ask(second, "Et la Corée du Sud ?", 2)
    first_chat, second_chat = first.inner_text("#chatbot"), second.inner_text("#chatbot")
    assert "TPD stand for" not in first_chat and "Corée du Sud ?" not in first_chat
    assert "Japon est-il leader" not in second_chat
    SHOTS.mkdir(parents=True, exist_ok=True)
    first.screenshot(path=str(SHOTS / "two_pages_first.png"))
    second.screenshot(path=str(SHOTS / "two_pages_second.png"))
    for c in contexts:
        c.close()


def test_gradio_client_api(server):
    from gradio_client import Client

    client = Client(server["url"], verbose=False)
    result = client.predict("Qui domine la production de puces mémoire ?", api_name="/ask")
    assert result["refused"] is False
    citation = result["citations"][0]
    assert citation["n"] == 1 and citation["source"] == "tpd-asie-2025.txt"
    assert citation["sentences"] and all(s in citation["text"] for s in citation["sentences"]) and "Corée du Sud domine" in citation["quote"]
    refused = client.predict("What is the population of Tokyo?", api_name="/ask")
    assert refused["refused"] is True and refused["citations"] == []


# -- the Documents tab ---------------------------------------------------------------------

def documents_tab(page) -> None:
    page.get_by_role("tab", name="Documents").click()
    page.wait_for_selector("#documents-table", state="visible")


def choose(page, name: str) -> None:
    page.click("#delete-choice input")
    page.get_by_role("option", name=name, exact=True).click()
    assert page.input_value("#delete-choice input") == name


def wait_status(page, text: str) -> None:
    page.wait_for_function(f"document.querySelector('#documents-status').innerText.includes({text!r})",
                           timeout=120_000)


def test_document_indexed_by_the_cli_shows_after_reload_and_delete_asks_first(page, server):
    """Nothing is pre-selected; Delete names the file and waits for a yes; Cancel keeps it."""
    note = server["base"] / "documents" / "old-notes.txt"
    note.write_text("The old notes say the ferry to Port-Louvel leaves at seven every morning.\n", encoding="utf-8")
    done = run_tpdqa("index", cwd=server["base"])  # another process, same index
    assert done.returncode == 0, done.stderr
    page.reload()
    documents_tab(page)
    page.wait_for_function("document.querySelector('#documents-table').innerText.includes('old-notes.txt')",
                           timeout=30_000)
    assert page.input_value("#delete-choice input") == ""  # nothing chosen for the user

    page.click("#delete")  # nothing chosen: nothing happens but a hint
    wait_status(page, "choose a document")
    assert note.exists()

    choose(page, "old-notes.txt")
    page.click("#delete")
    prompt = page.locator("#confirm-delete")
    prompt.wait_for(state="visible")
    assert "old-notes.txt" in prompt.inner_text()
    assert note.exists()  # asking is not deleting
    page.click("#confirm-delete-no")
    prompt.wait_for(state="hidden")
    assert note.exists()

    page.click("#delete")
    prompt.wait_for(state="visible")
    page.click("#confirm-delete-yes")
    wait_status(page, "deleted old-notes.txt")
    assert not note.exists()
    assert "old-notes.txt" not in page.inner_text("#documents-table")
    assert page.input_value("#delete-choice input") == ""


def test_same_name_upload_keeps_the_original_unless_replace_is_chosen(page, server, tmp_path):
    target = server["base"] / "documents" / "harbour.txt"
    versions = {}
    for n, text in enumerate(["The harbour opens at six.", "The harbour opens at eight.", "The harbour opens at nine."]):
        versions[n] = tmp_path / str(n) / "harbour.txt"
        versions[n].parent.mkdir()
        versions[n].write_text(text + "\n", encoding="utf-8")
    documents_tab(page)
    page.set_input_files("#upload input[type=file]", str(versions[0]))
    wait_status(page, "added harbour.txt")

    page.set_input_files("#upload input[type=file]", str(versions[1]))
    prompt = page.locator("#confirm-upload")
    prompt.wait_for(state="visible")
    assert "harbour.txt" in prompt.inner_text()
    assert target.read_text(encoding="utf-8") == "The harbour opens at six.\n"  # nothing replaced yet
    page.click("#upload-keep-both")
    wait_status(page, "added harbour.txt as harbour-2.txt")
    assert target.read_text(encoding="utf-8") == "The harbour opens at six.\n"
    assert (target.parent / "harbour-2.txt").read_text(encoding="utf-8") == "The harbour opens at eight.\n"

    page.set_input_files("#upload input[type=file]", str(versions[2]))
    prompt.wait_for(state="visible")
    page.click("#upload-cancel")
    wait_status(page, "kept the existing harbour.txt")
    assert target.read_text(encoding="utf-8") == "The harbour opens at six.\n"

    page.set_input_files("#upload input[type=file]", str(versions[2]))
    prompt.wait_for(state="visible")
    page.click("#upload-replace")
    wait_status(page, "added harbour.txt")
    assert target.read_text(encoding="utf-8") == "The harbour opens at nine.\n"
    assert "harbour-2.txt" in page.inner_text("#documents-table")


def test_a_file_that_failed_to_index_is_listed_with_its_reason_and_can_be_removed(page, server):
    broken = server["base"] / "documents" / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a PDF")
    documents_tab(page)
    page.click("#reindex")
    wait_status(page, "skipped broken.pdf")
    table = page.inner_text("#documents-table")
    assert "broken.pdf" in table and "not indexed" in table
    assert "could not be indexed" in page.inner_text("#index-status")
    choose(page, "broken.pdf")
    page.click("#delete")
    page.locator("#confirm-delete").wait_for(state="visible")
    page.click("#confirm-delete-yes")
    wait_status(page, "deleted broken.pdf")
    assert not broken.exists() and "broken.pdf" not in page.inner_text("#documents-table")


def test_sources_panel_scrolls_inside_its_box_after_ten_questions(page):
    questions = ["Qui domine la production de puces mémoire ?", "Dans quels domaines le Japon est-il leader ?",
                 "What does TPD stand for?", "Which country is a leader in robotics?"]
    for n in range(10):
        ask(page, questions[n % len(questions)], n + 1)
    geometry = page.evaluate("""() => {
        const panel = document.querySelector('#sources');
        const box = panel.getBoundingClientRect();
        const scroller = [panel, ...panel.querySelectorAll('*')].find(
            e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowY) && e.scrollHeight > e.clientHeight);
        const view = scroller.getBoundingClientRect();
        const below = document.querySelector('#settings').getBoundingClientRect();
        const before = scroller.scrollTop;
        scroller.scrollTop = scroller.scrollHeight;
        return {box: [box.top, box.bottom], view: [view.top, view.bottom], settingsTop: below.top,
                before, after: scroller.scrollTop, turns: panel.querySelectorAll('.tpdqa-turn').length};
    }""")
    top, bottom = geometry["box"]
    assert geometry["turns"] == 10
    assert top - 1 <= geometry["view"][0] and geometry["view"][1] <= bottom + 1  # the scroller lies in the box
    assert bottom <= geometry["settingsTop"]  # the panel does not run over the Settings bar
    assert geometry["before"] == 0 and geometry["after"] > 0  # newest on top, the rest by scrolling
    assert page.locator("#sources .tpdqa-turn h4").first.inner_text() == questions[9 % len(questions)]


@pytest.fixture(scope="module")
def listener():
    """A local HTTP server that counts the requests it gets: nothing in a quoted passage may reach it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[str] = []

    class Count(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Count)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "hits": hits}
    httpd.shutdown()


def test_markup_in_a_quoted_passage_is_shown_as_text_and_fetches_nothing(browser, listener, tmp_path):
    docs = tmp_path / "documents"
    docs.mkdir()
    passage = (f'The pixel report embeds the tracking pixel <img src="{listener["url"]}/html.png"> and the '
               f'badge ![badge]({listener["url"]}/markdown.png) in every page it sends.')
    (docs / "pixels.txt").write_text(passage + "\n", encoding="utf-8")
    with chat_on(browser, tmp_path) as page:
        no_examples = "What does TPD stand for?" not in page.inner_text("#chatbot")
        ask(page, "What does the pixel report embed in every page?", 1)
        page.wait_for_timeout(1000)
        bubble = page.locator("#chatbot .bot, #chatbot [data-testid='bot']").last
        text = bubble.inner_text()
        assert f'<img src="{listener["url"]}/html.png">' in text and f"[badge]({listener['url']}/markdown.png)" in text
        assert bubble.locator("img").count() == 0
        assert "[1]" in text and bubble.locator("a[href^='#tpdqa-src-']").count() == 1  # the marker still links
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "markup_as_text.png"), full_page=True)
    assert listener["hits"] == []
    assert no_examples  # the bundled article's example questions are not offered for a folder without it


def test_with_the_reader_the_answers_words_are_bold_in_the_chat_and_the_sources(browser, tmp_path):
    from tests.test_reader import ARIANE

    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "ariane.md").write_text(ARIANE, encoding="utf-8")
    with chat_on(browser, tmp_path, TPDQA_READER="auto") as page:
        ask(page, "Which engine powers the upper stage?", 1)
        bubble = page.locator("#chatbot .bot, #chatbot [data-testid='bot']").last
        assert "Vinci" in " ".join(bubble.locator("strong").all_inner_texts())
        turn = newest_turn(page)
        assert "Vinci" in " ".join(turn.locator("mark strong").all_inner_texts())  # bold inside the highlight
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "reader_span_bold.png"), full_page=True)
