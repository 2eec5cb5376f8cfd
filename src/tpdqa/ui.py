"""The Gradio chat: streaming cited answers, a sources panel, document management, an API.

    tpdqa serve                      # http://127.0.0.1:7860
    tpdqa serve --host 0.0.0.0 --port 8080
    tpdqa serve --watch              # re-index when documents/ changes

Every error the page shows is one line (:func:`tpdqa.assistant.explain`); the traceback
goes to the server's log.

    >>> from tpdqa import Assistant
    >>> from tpdqa.ui import build_app
    >>> demo = build_app(Assistant())       # a gr.Blocks; demo.launch() serves it
"""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr

from tpdqa.answer import Answer
from tpdqa.assistant import Assistant, DocumentError, DocumentExists, QuestionError, explain
from tpdqa.ingest import SECTION_SEP, SUPPORTED_SUFFIXES, chunk_body

log = logging.getLogger(__name__)

EXAMPLES = [
    "Qui domine la production de puces mémoire ?",
    "Dans quels domaines le Japon est-il leader ?",
    "What does TPD stand for?",
    "Which AI stack layers should exports cover under the US-Japan plan?",
]
NO_SOURCES = '<div class="tpdqa-empty">Sources of the answers appear here.</div>'

CSS = """
.tpdqa-turn { margin-bottom: 1em; }
.tpdqa-turn h4 { margin: 0.2em 0; font-size: 0.95em; opacity: 0.8; }
.tpdqa-source { border-left: 3px solid var(--color-accent); padding: 0.3em 0.7em; margin: 0.5em 0;
                background: var(--block-background-fill); border-radius: 4px; }
.tpdqa-source.tpdqa-flash { outline: 2px solid var(--color-accent); }
.tpdqa-source .tpdqa-where { font-weight: 600; font-size: 0.9em; }
.tpdqa-source mark { background: #fde68a; color: #111; padding: 0 2px; }
.tpdqa-nosource { font-style: italic; opacity: 0.8; }
"""

# A marker [n] in an answer is a link to its passage in the sources panel: scroll to it
# and flash it, instead of following the link (Gradio opens links in a new tab).
HEAD = """
<script>
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest('a[href^="#tpdqa-src-"]');
  if (!link) return;
  event.preventDefault();
  event.stopPropagation();
  const target = document.getElementById(link.getAttribute("href").slice(1));
  if (!target) return;
  target.scrollIntoView({behavior: "smooth", block: "center"});
  target.classList.add("tpdqa-flash");
  setTimeout(() => target.classList.remove("tpdqa-flash"), 1500);
}, true);
</script>
"""


@dataclass
class IndexingState:
    """The index runs of this server (at start, on a watched change, from the page), read by
    the header; the counts it shows are read from the store, so they include other processes' runs."""

    running: bool = False
    stage: str = ""
    done: int = 0
    total: int = 0
    last: str = ""  # what the last run did, or why it failed
    watching: bool = False

    def run(self, assistant: Assistant) -> None:
        self.running, self.stage, self.done, self.total = True, "", 0, 0
        try:
            self.last = "Last indexing: " + _stats_line(assistant.index(progress=self.update))
        except Exception as exc:  # noqa: BLE001 - shown on the page in one line, the server goes on
            log.exception("indexing failed")
            self.last = f"Indexing failed: {explain(exc, assistant.settings.index_dir)}"
        finally:
            self.running = False

    def update(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total

    def markdown(self, assistant: Assistant) -> str:
        if self.running:
            if self.total:
                return f"**Indexing the documents** — {self.stage}: {self.done}/{self.total} passages"
            return f"**Indexing the documents** — {self.stage or 'reading the folder'}…"
        try:
            store = assistant.current_store()
            files, chunks = store.counts()
            failed = store.failures()
        except Exception as exc:  # noqa: BLE001
            log.exception("reading the index failed")
            return f"⚠️ {explain(exc, assistant.settings.index_dir)}"
        lines = [f"Index ready: {files} document(s), {chunks} passages."
                 + (f" {len(failed)} file(s) could not be indexed (see Documents)." if failed else "")]
        if self.last:
            lines.append(self.last)
        if self.watching:
            lines.append(f"Watching {assistant.settings.documents_dir} for changes.")
        return "  \n".join(lines)


def _stats_line(stats) -> str:
    return (f"{stats.added} added, {stats.updated} updated, {stats.deleted} deleted, {stats.failed} skipped; "
            f"{stats.embedded} passages embedded in {stats.seconds:.1f}s.")


# -- rendering ---------------------------------------------------------------------------

def render_answer(answer: Answer, turn: int) -> str:
    """Markdown for the chat bubble: markers become links to the turn's passages;
    generated sentences that no passage supports are flagged."""
    if answer.refused:
        return f"⚠️ *{answer.text}*"
    text = answer.text
    for sentence in answer.unsupported:
        text = text.replace(sentence, f"{sentence} ⚠️ *(not supported by the documents)*", 1)
    text = re.sub(r"\[(\d+)\]", lambda m: f"[\\[{m.group(1)}\\]](#tpdqa-src-{turn}-{m.group(1)})", text)
    if any(w.startswith("answer_language:") for w in answer.warnings):
        text += "\n\n*⚠️ The answer is not in the language of the question.*"
    return text


def render_sources(answer: Answer, turn: int) -> str:
    """HTML for one turn in the sources panel; the supporting sentence is highlighted."""
    title = html.escape(answer.question)
    if answer.refused or not answer.citations:
        return (f'<div class="tpdqa-turn"><h4>{title}</h4>'
                '<div class="tpdqa-nosource">No source: the documents do not hold the answer.</div></div>')
    items = []
    for c in answer.citations:
        where = html.escape(c.section or c.source) + (f", page {c.page}" if c.page else "")
        # the chunk's heading line is already said in the header above
        text = chunk_body(c.text, {"section": (c.section or "")[len(c.source) + len(SECTION_SEP):]})
        start = text.find(c.quote)
        if start >= 0:
            body = (html.escape(text[:start]) + "<mark>" + html.escape(c.quote) + "</mark>"
                    + html.escape(text[start + len(c.quote):]))
        else:
            body = html.escape(text)
        body = body.replace("\n", "<br>")
        items.append(f'<div class="tpdqa-source" id="tpdqa-src-{turn}-{c.n}"><div class="tpdqa-where">[{c.n}] {where}'
                     f'</div><div class="tpdqa-text">{body}</div></div>')
    return f'<div class="tpdqa-turn"><h4>{title}</h4>{"".join(items)}</div>'


def documents_table(assistant: Assistant) -> list[list[Any]]:
    """Rows (document, status, passages, indexed at), read from the store now: indexed files,
    then files that could not be indexed, with the reason."""
    store = assistant.current_store()
    rows = [[f.source, "indexed", f.chunks, datetime.fromtimestamp(f.indexed_at).strftime("%Y-%m-%d %H:%M:%S")]
            for f in store.files()]
    rows += [[e.source, f"not indexed: {e.reason}", 0, ""] for e in store.failures()]
    return rows


# -- the app -----------------------------------------------------------------------------

def build_app(assistant: Assistant, indexing: IndexingState | None = None) -> gr.Blocks:
    indexing = indexing or IndexingState()

    def respond(message: str, history: list[dict], panels: list[str], llm: str | None = None) -> Iterator[tuple]:
        question = (message or "").strip()
        history = list(history or [])
        try:
            assistant.check_question(question)
        except QuestionError as exc:
            gr.Warning(str(exc))
            yield message, history, panels, _panel(panels)
            return
        previous = [{"role": m["role"], "content": _plain(m["content"])} for m in history]
        history = history + [{"role": "user", "content": question}, {"role": "assistant", "content": "…"}]
        yield "", history, panels, _panel(panels)
        turn = len(panels) + 1
        text, answer = "", None
        try:
            for item in assistant.stream(question, history=previous, llm=llm or None):
                if isinstance(item, Answer):
                    answer = item
                    continue
                text += item
                history[-1] = {"role": "assistant", "content": text + " …"}
                yield "", history, panels, _panel(panels)
        except Exception as exc:  # noqa: BLE001 - an LLM server down, an index deleted: one line, details logged
            log.exception("answering %r failed", question)
            history[-1] = {"role": "assistant", "content": f"⚠️ *{explain(exc, assistant.settings.index_dir)}*"}
            yield "", history, panels, _panel(panels)
            return
        # The checks ran at the end: swap in the final text, whose markers link to passages.
        history[-1] = {"role": "assistant", "content": render_answer(answer, turn)}
        panels = [render_sources(answer, turn), *panels]
        yield "", history, panels, _panel(panels)

    def pick_example(event: gr.SelectData) -> str:
        return event.value["text"] if isinstance(event.value, dict) else str(event.value)

    # -- documents: every change ends with a re-index and a fresh table ------------------
    def documents_view(notes: list[str] | None = None, choice: str | None = None) -> tuple:
        """Outputs of every documents action: table, choices (nothing chosen), notes, header."""
        try:
            rows = documents_table(assistant)
        except Exception as exc:  # noqa: BLE001
            log.exception("reading the documents failed")
            rows, notes = [], [*(notes or []), explain(exc, assistant.settings.index_dir)]
        names = [r[0] for r in rows]
        return (rows, gr.Dropdown(choices=names, value=choice if choice in names else None),
                "\n".join(f"- {line}" for line in notes or []), indexing.markdown(assistant))

    def reindexed(notes: list[str], progress) -> tuple:
        try:
            stats = assistant.index(progress=lambda stage, done, total: progress((done, total), desc=stage,
                                                                                  unit="passages"))
            notes = [*notes, "Index: " + _stats_line(stats), *[f"skipped {e}" for e in stats.errors]]
            indexing.last = "Last indexing: " + _stats_line(stats)
        except Exception as exc:  # noqa: BLE001 - one line on the page, the traceback in the log
            log.exception("re-indexing failed")
            notes = [*notes, f"Indexing failed: {explain(exc, assistant.settings.index_dir)}"]
        return documents_view(notes)

    def add_files(uploads: list[tuple[str, bytes]], if_exists: str) -> tuple[list[str], list[tuple[str, bytes]]]:
        notes, conflicts = [], []
        for name, data in uploads:
            try:
                saved = assistant.add_document(name, data, if_exists=if_exists)
                notes.append(f"added {saved}" if saved == name or if_exists != "keep_both"
                             else f"added {name} as {saved} (kept both)")
            except DocumentExists:
                conflicts.append((name, data))
            except DocumentError as exc:
                notes.append(f"refused: {exc}")
        return notes, conflicts

    def upload(files: list[Any] | None, progress=gr.Progress()) -> tuple:
        uploads = []
        for file in files or []:
            path = Path(file if isinstance(file, str) else file.name)
            uploads.append((Path(getattr(file, "orig_name", None) or path.name).name, path.read_bytes()))
        notes, conflicts = add_files(uploads, "error")
        view = reindexed(notes, progress) if notes else documents_view()
        return (*view, None, *conflict_prompt(conflicts))

    def resolve_upload(pending: list[tuple[str, bytes]], choice: str, progress) -> tuple:
        if choice == "cancel" or not pending:
            notes = [f"kept the existing {name}; the upload was not saved" for name, _ in pending]
            return (*documents_view(notes), *conflict_prompt([]))
        notes, _ = add_files(pending, choice)
        return (*reindexed(notes, progress), *conflict_prompt([]))

    def conflict_prompt(conflicts: list[tuple[str, bytes]]) -> tuple:
        names = ", ".join(name for name, _ in conflicts)
        text = (f"**{names}** already exist(s) in the documents folder. Replace, keep both "
                "(the upload gets a new name), or cancel?") if conflicts else ""
        return conflicts, gr.Row(visible=bool(conflicts)), text

    def ask_delete(source: str | None) -> tuple:
        if not source:
            return None, gr.Row(visible=False), "", "- choose a document to delete"
        return (source, gr.Row(visible=True),
                f"Delete **{source}** from the documents folder? The file is removed from disk and from the index.",
                "")

    def confirm_delete(source: str | None, progress=gr.Progress()) -> tuple:
        if not source:
            return (*documents_view(["nothing to delete"]), None, gr.Row(visible=False))
        try:
            assistant.remove_document(source)
            notes = [f"deleted {source}"]
        except DocumentError as exc:
            notes = [str(exc)]
        return (*reindexed(notes, progress), None, gr.Row(visible=False))

    def reindex(progress=gr.Progress()) -> tuple:
        return reindexed([], progress)

    def ask_api(question: str, history: list[dict] | None = None) -> dict:
        """Answer a question from the documents: text, refused, citations (n, source, quote, text)."""
        try:
            answer = assistant.ask(question, history=history)
        except QuestionError as exc:
            raise gr.Error(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001
            log.exception("/ask failed for %r", question)
            raise gr.Error(explain(exc, assistant.settings.index_dir)) from exc
        return answer.model_dump(include={"question", "lang", "text", "refused", "support", "citations"})

    def tick(seen: str | None, choice: str | None) -> tuple:
        """Header always; the documents table only when the index changed (any process)."""
        try:
            generation = assistant.current_store().generation
        except Exception:  # noqa: BLE001 - the header says what is wrong
            generation = seen
        if generation == seen:
            return indexing.markdown(assistant), gr.skip(), gr.skip(), seen
        rows, dropdown, _, header = documents_view(choice=choice)
        return header, rows, dropdown, generation

    def load() -> tuple:
        rows, dropdown, _, header = documents_view(choice=None)
        return header, rows, dropdown, assistant.current_store().generation

    with gr.Blocks(title="tpdqa — questions on your documents") as demo:
        gr.Markdown("## tpdqa — ask your documents\nAnswers quote the documents and cite them; "
                    "when the documents do not hold the answer, it says so.")
        status = gr.Markdown(elem_id="index-status")
        seen = gr.State(None)  # the index generation this page shows
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                panels = gr.State([])
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
                            elem_id="chatbot", height=560, label="Conversation",
                            examples=[{"text": q} for q in EXAMPLES],
                            placeholder="Ask a question about the documents, in French or English.",
                        )
                        with gr.Row():
                            box = gr.Textbox(elem_id="question", show_label=False, scale=6, lines=1, max_lines=4,
                                             placeholder="Votre question / your question…", autofocus=True)
                            send = gr.Button("Send", elem_id="send", variant="primary", scale=1)
                    with gr.Column(scale=2):
                        gr.Markdown("### Sources")
                        sources = gr.HTML(NO_SOURCES, elem_id="sources", max_height=620, container=True)
                with gr.Accordion("Settings", open=False, elem_id="settings"):
                    choices = list(dict.fromkeys(["extractive", assistant.settings.llm]))
                    llm = gr.Dropdown(choices, value=assistant.settings.llm, label="Answerer", elem_id="answerer",
                                      info="extractive quotes the documents; an LLM (TPDQA_LLM) writes answers "
                                           "whose citations are checked")
                outputs = [box, chatbot, panels, sources]
                inputs = [box, chatbot, panels, llm]
                box.submit(respond, inputs, outputs, api_visibility="private")
                send.click(respond, inputs, outputs, api_visibility="private")
                chatbot.example_select(pick_example, None, box, api_visibility="private").then(
                    respond, inputs, outputs, api_visibility="private"
                )
            with gr.Tab("Documents", id="documents"):
                table = gr.Dataframe(headers=["Document", "Status", "Passages", "Indexed at"],
                                     elem_id="documents-table", interactive=False, wrap=True)
                with gr.Row():
                    files = gr.File(label=f"Add documents ({', '.join(SUPPORTED_SUFFIXES)}; "
                                          f"up to {assistant.settings.max_upload_mb} MB)",
                                    file_count="multiple", file_types=list(SUPPORTED_SUFFIXES), elem_id="upload")
                    with gr.Column():
                        choice = gr.Dropdown([], value=None, label="Document", elem_id="delete-choice")
                        remove = gr.Button("Delete…", variant="stop", elem_id="delete")
                        again = gr.Button("Re-index", elem_id="reindex")
                to_delete = gr.State(None)
                with gr.Row(visible=False, elem_id="confirm-delete") as delete_row:
                    delete_text = gr.Markdown()
                    delete_yes = gr.Button("Delete", variant="stop", elem_id="confirm-delete-yes")
                    delete_no = gr.Button("Cancel", elem_id="confirm-delete-no")
                pending = gr.State([])
                with gr.Row(visible=False, elem_id="confirm-upload") as upload_row:
                    upload_text = gr.Markdown()
                    replace = gr.Button("Replace", variant="stop", elem_id="upload-replace")
                    keep = gr.Button("Keep both", elem_id="upload-keep-both")
                    skip = gr.Button("Cancel", elem_id="upload-cancel")
                notes = gr.Markdown(elem_id="documents-status")

                view = [table, choice, notes, status]
                prompt = [pending, upload_row, upload_text]
                private = {"api_visibility": "private"}
                files.upload(upload, files, [*view, files, *prompt], **private)
                replace.click(lambda p, progress=gr.Progress(): resolve_upload(p, "replace", progress),
                              pending, [*view, *prompt], **private)
                keep.click(lambda p, progress=gr.Progress(): resolve_upload(p, "keep_both", progress),
                           pending, [*view, *prompt], **private)
                skip.click(lambda p: resolve_upload(p, "cancel", None), pending, [*view, *prompt], **private)
                remove.click(ask_delete, choice, [to_delete, delete_row, delete_text, notes], **private)
                delete_yes.click(confirm_delete, to_delete, [*view, to_delete, delete_row], **private)
                delete_no.click(lambda: (None, gr.Row(visible=False)), None, [to_delete, delete_row], **private)
                again.click(reindex, None, view, **private)
        timer = gr.Timer(2.0)
        timer.tick(tick, [seen, choice], [status, table, choice, seen], show_progress="hidden",
                   concurrency_limit=None, **private)
        demo.load(load, None, [status, table, choice, seen], **private)
        gr.api(ask_api, api_name="ask")
    return demo


def _panel(panels: list[str]) -> str:
    return "".join(panels) or NO_SOURCES


def _plain(content: Any) -> str:
    text = content if isinstance(content, str) else str(content)
    return re.sub(r"\[\\\[(\d+)\\\]\]\([^)]*\)", r"[\1]", text)


def serve(assistant: Assistant, host: str = "127.0.0.1", port: int = 7860, watch: bool = False) -> None:
    """Index in the background (and on every change with ``watch``), serve the chat (blocks until stopped)."""
    indexing = IndexingState(running=True, watching=watch)
    run = lambda: indexing.run(assistant)  # noqa: E731
    if watch:
        from tpdqa.watch import watch_documents, watched_folder

        watched_folder(assistant)  # a missing folder stops here, with its message, not in a thread
        target, kwargs = watch_documents, {"assistant": assistant, "on_change": run, "run_first": True}
    else:
        target, kwargs = run, {}
    threading.Thread(target=target, kwargs=kwargs, daemon=True, name="tpdqa-index").start()
    demo = build_app(assistant, indexing)
    print(f"tpdqa: open http://{host}:{port} in a browser (Ctrl+C stops).", flush=True)
    demo.queue(default_concurrency_limit=assistant.settings.concurrency).launch(
        server_name=host, server_port=port, css=CSS, head=HEAD, show_error=True, quiet=True,
        max_file_size=f"{assistant.settings.max_upload_mb}mb",
    )
