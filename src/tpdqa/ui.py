"""The Gradio chat: streaming cited answers, a sources panel, document management, an API.

    tpdqa serve                      # http://127.0.0.1:7860
    tpdqa serve --host 0.0.0.0 --port 8080

    >>> from tpdqa import Assistant
    >>> from tpdqa.ui import build_app
    >>> demo = build_app(Assistant())       # a gr.Blocks; demo.launch() serves it
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr

from tpdqa.answer import Answer
from tpdqa.assistant import Assistant, DocumentError, QuestionError
from tpdqa.ingest import SECTION_SEP, SUPPORTED_SUFFIXES, chunk_body

EXAMPLES = [
    "Qui domine la production de puces mémoire ?",
    "Dans quels domaines le Japon est-il leader ?",
    "What does TPD stand for?",
    "Which AI stack layers should exports cover under the US-Japan plan?",
]
NO_SOURCES = '<div class="tpdqa-empty">Sources of the answers appear here.</div>'

CSS = """
#sources { max-height: 620px; overflow-y: auto; }
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
    """Progress of the index run that `serve` starts, read by the page's timer."""

    stage: str = "starting"
    done: int = 0
    total: int = 0
    finished: bool = False
    message: str = "Indexing the documents…"
    errors: list[str] = field(default_factory=list)

    def run(self, assistant: Assistant) -> None:
        try:
            stats = assistant.index(progress=self.update)
            self.errors = [str(e) for e in stats.errors]
            self.message = _stats_line(stats)
        except Exception as exc:  # noqa: BLE001 - shown on the page, the server goes on
            self.message = f"Indexing failed: {exc}"
        self.finished = True

    def update(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total

    def markdown(self) -> str:
        if not self.finished:
            if self.total:
                return f"**Indexing the documents** — {self.stage}: {self.done}/{self.total} passages"
            return "**Indexing the documents…**"
        skipped = "".join(f"\n- skipped {e}" for e in self.errors)
        return f"{self.message}{skipped}"


def _stats_line(stats) -> str:
    files = stats.added + stats.updated + stats.unchanged
    return (
        f"Index ready: {files} document(s), {stats.chunks} passages "
        f"({stats.added} added, {stats.updated} updated, {stats.deleted} deleted, {stats.failed} skipped; "
        f"{stats.embedded} passages embedded in {stats.seconds:.1f}s)."
    )


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
    return [
        [f.source, f.chunks, datetime.fromtimestamp(f.indexed_at).strftime("%Y-%m-%d %H:%M:%S")]
        for f in assistant.documents()
    ]


# -- the app -----------------------------------------------------------------------------

def build_app(assistant: Assistant, indexing: IndexingState | None = None) -> gr.Blocks:
    indexing = indexing or IndexingState(finished=True, message="Index ready.")

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
        except (RuntimeError, ValueError, OSError) as exc:  # an LLM server down, a model missing
            history[-1] = {"role": "assistant", "content": f"⚠️ *{exc}*"}
            yield "", history, panels, _panel(panels)
            return
        # The checks ran at the end: swap in the final text, whose markers link to passages.
        history[-1] = {"role": "assistant", "content": render_answer(answer, turn)}
        panels = [render_sources(answer, turn), *panels]
        yield "", history, panels, _panel(panels)

    def pick_example(event: gr.SelectData) -> str:
        return event.value["text"] if isinstance(event.value, dict) else str(event.value)

    def upload(files: list[Any] | None, progress=gr.Progress()) -> tuple:
        notes = []
        for file in files or []:
            path = Path(file if isinstance(file, str) else file.name)
            try:
                name = assistant.add_document(path.name, path.read_bytes())
                notes.append(f"added {name}")
            except DocumentError as exc:
                notes.append(f"refused: {exc}")
        return (*_reindex(progress, notes), None)

    def delete(source: str | None, progress=gr.Progress()) -> tuple:
        if not source:
            return (*_reindex(progress, ["choose a document to delete"]), )
        try:
            assistant.remove_document(source)
            notes = [f"deleted {source}"]
        except DocumentError as exc:
            notes = [str(exc)]
        return _reindex(progress, notes)

    def reindex(progress=gr.Progress()) -> tuple:
        return _reindex(progress, [])

    def _reindex(progress, notes: list[str]) -> tuple:
        stats = assistant.index(progress=lambda stage, done, total: progress((done, total), desc=stage, unit="passages"))
        lines = [*notes, _stats_line(stats), *[f"skipped {e}" for e in stats.errors]]
        return _documents_updates(lines)

    def _documents_updates(lines: list[str]) -> tuple:
        rows = documents_table(assistant)
        return (rows, gr.Dropdown(choices=[r[0] for r in rows], value=None), "\n".join(f"- {line}" for line in lines))

    def ask_api(question: str, history: list[dict] | None = None) -> dict:
        """Answer a question from the documents: text, refused, citations (n, source, quote, text)."""
        try:
            answer = assistant.ask(question, history=history)
        except QuestionError as exc:
            raise gr.Error(str(exc)) from exc
        return answer.model_dump(include={"question", "lang", "text", "refused", "support", "citations"})

    def tick() -> tuple:
        return indexing.markdown(), gr.Timer(active=not indexing.finished)

    with gr.Blocks(title="tpdqa — questions on your documents") as demo:
        gr.Markdown("## tpdqa — ask your documents\nAnswers quote the documents and cite them; "
                    "when the documents do not hold the answer, it says so.")
        status = gr.Markdown(indexing.markdown(), elem_id="index-status")
        timer = gr.Timer(1.0, active=not indexing.finished)
        timer.tick(tick, outputs=[status, timer])
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
                        sources = gr.HTML(NO_SOURCES, elem_id="sources")
                with gr.Accordion("Settings", open=False):
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
                table = gr.Dataframe(documents_table(assistant), headers=["Document", "Passages", "Indexed at"],
                                     elem_id="documents-table", interactive=False)
                with gr.Row():
                    files = gr.File(label=f"Add documents ({', '.join(SUPPORTED_SUFFIXES)}; "
                                          f"up to {assistant.settings.max_upload_mb} MB)",
                                    file_count="multiple", file_types=list(SUPPORTED_SUFFIXES), elem_id="upload")
                    with gr.Column():
                        choice = gr.Dropdown([r[0] for r in documents_table(assistant)], label="Document",
                                             elem_id="delete-choice")
                        remove = gr.Button("Delete", variant="stop", elem_id="delete")
                        again = gr.Button("Re-index", elem_id="reindex")
                notes = gr.Markdown(elem_id="documents-status")
                files.upload(upload, files, [table, choice, notes, files], api_visibility="private")
                remove.click(delete, choice, [table, choice, notes], api_visibility="private")
                again.click(reindex, None, [table, choice, notes], api_visibility="private")
        gr.api(ask_api, api_name="ask")
    return demo


def _panel(panels: list[str]) -> str:
    return "".join(panels) or NO_SOURCES


def _plain(content: Any) -> str:
    text = content if isinstance(content, str) else str(content)
    return re.sub(r"\[\\\[(\d+)\\\]\]\([^)]*\)", r"[\1]", text)


def serve(assistant: Assistant, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Start indexing in the background and serve the chat (blocks until stopped)."""
    indexing = IndexingState()
    threading.Thread(target=indexing.run, args=(assistant,), daemon=True, name="tpdqa-index").start()
    demo = build_app(assistant, indexing)
    print(f"tpdqa: open http://{host}:{port} in a browser (Ctrl+C stops).", flush=True)
    demo.queue(default_concurrency_limit=assistant.settings.concurrency).launch(
        server_name=host, server_port=port, css=CSS, head=HEAD, show_error=True, quiet=True,
        max_file_size=f"{assistant.settings.max_upload_mb}mb",
    )
