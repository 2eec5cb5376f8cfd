"""The Gradio chat: streaming cited answers, a sources panel, document management.

Served at ``/`` by :mod:`tpdqa.server` (``tpdqa serve``), beside the REST, OpenAI-compatible
and MCP doors.

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
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr

from tpdqa.answer import Answer
from tpdqa import api
from tpdqa.api import IndexingState, stats_line
from tpdqa.assistant import Assistant, DocumentError, DocumentExists, QuestionError, explain
from tpdqa.conversations import Conversations
from tpdqa.ingest import SECTION_SEP, SUPPORTED_SUFFIXES, chunk_body, collection_of
from tpdqa.store import READING
from tpdqa.users import LOCAL, User, Users, audit

log = logging.getLogger(__name__)

# Example questions offered under the chat, per document: shown only while that document is
# indexed and the user may read it (a folder of other files gets no misleading examples).
EXAMPLES = {
    "tpd-asie-2025.txt": [
        "Qui domine la production de puces mémoire ?",
        "Dans quels domaines le Japon est-il leader ?",
        "What does TPD stand for?",
        "Which AI stack layers should exports cover under the US-Japan plan?",
    ],
}
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


def status_line(indexing: IndexingState, assistant: Assistant, user: User = LOCAL) -> str:
    """The page's header for ``user``: a reader sees the counts of their collections only."""
    try:
        store = assistant.current_store()
        scope = user.scope(assistant.collections())
        searchable, complete, known = store.phases(scope)
        if indexing.running:
            # Files are answerable once searchable: say how many, and what the run does now.
            phases = f"searchable {searchable} · complete {complete} of {known} files"
            if indexing.total:
                unit = "files" if indexing.stage == READING else "passages"
                return (f"**Indexing the documents** ({phases}) — {indexing.stage}: "
                        f"{indexing.done}/{indexing.total} {unit}")
            return f"**Indexing the documents** ({phases}) — {indexing.stage or 'reading the folder'}…"
        files, chunks = store.counts(scope)
        failed = store.failures() if user.is_admin else []
    except Exception as exc:  # noqa: BLE001
        log.exception("reading the index failed")
        return f"⚠️ {explain(exc, assistant.settings.index_dir)}"
    lines = [f"Index ready: {files} document(s), {chunks} passages."
             + (f" {len(failed)} file(s) could not be indexed (see Documents)." if failed else "")
             + (f" {searchable - complete} searchable, not complete: the next index run completes them."
                if complete < searchable else "")]
    if indexing.last and user.is_admin:
        lines.append(indexing.last)
    if indexing.watching:
        lines.append(f"Watching {assistant.settings.documents_dir} for changes.")
    return "  \n".join(lines)


# -- rendering ---------------------------------------------------------------------------

def render_answer(answer: Answer, turn: int) -> str:
    """Markdown for the chat bubble: the answer's text shown as text (a quoted ``<img>`` or
    ``![x](http://…)`` from a document is printed, never rendered or fetched); markers
    become links to the turn's passages; generated sentences no passage supports are flagged."""
    if answer.refused:
        return f"⚠️ *{as_text(answer.text)}*"
    text = bold_span(as_text(answer.text), answer)
    for sentence in answer.unsupported:
        quoted = as_text(sentence)
        text = text.replace(quoted, f"{quoted} ⚠️ *(not supported by the documents)*", 1)
    text = re.sub(r"\\\[(\d+)\\\]", lambda m: f"[\\[{m.group(1)}\\]](#tpdqa-src-{turn}-{m.group(1)})", text)
    if any(w.startswith("answer_language:") for w in answer.warnings):
        text += "\n\n*⚠️ The answer is not in the language of the question.*"
    return text


# Markdown's and HTML's special characters; each is printed as itself after a backslash (CommonMark).
_MARKUP_CHARS = r"[\\`*_{}\[\]()#+\-.!|~<>&$:]"
_MARKUP = re.compile(f"({_MARKUP_CHARS})")
_ESCAPED = re.compile(f"\\\\({_MARKUP_CHARS})")  # what as_text wrote: undone by _plain


def bold_span(text: str, answer: Answer) -> str:
    """``text`` (already escaped by :func:`as_text`) with the reader's answer words in bold.
    HTML, not ``**``: Markdown's emphasis rules refuse ``**`` beside punctuation."""
    if not answer.span_text:
        return text
    return text.replace(as_text(answer.span_text), f"<strong>{as_text(answer.span_text)}</strong>", 1)


def as_text(text: str) -> str:
    """``text`` for a Markdown component, shown exactly as written: nothing in it is markup."""
    return _MARKUP.sub(r"\\\1", text)


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
        shift = len(c.text) - len(text)
        span = (c.span[0] - shift, c.span[1] - shift) if c.span else None
        body = highlight(text, c.sentences or [c.quote], span).replace("\n", "<br>")
        items.append(f'<div class="tpdqa-source" id="tpdqa-src-{turn}-{c.n}"><div class="tpdqa-where">[{c.n}] {where}'
                     f'</div><div class="tpdqa-text">{body}</div></div>')
    return f'<div class="tpdqa-turn"><h4>{title}</h4>{"".join(items)}</div>'


def highlight(text: str, quotes: list[str], span: tuple[int, int] | None = None) -> str:
    """``text`` as HTML with each quote (an exact substring, in the text's order) marked,
    and the answer ``span`` (offsets in ``text``, inside a quote) in bold."""
    parts, at = [], 0
    for quote in quotes:
        start = text.find(quote, at)
        if start < 0:
            continue
        end = start + len(quote)
        inner = html.escape(quote)
        if span and start <= span[0] < span[1] <= end:
            inner = (html.escape(text[start:span[0]]) + "<strong>" + html.escape(text[span[0]:span[1]])
                     + "</strong>" + html.escape(text[span[1]:end]))
        parts += [html.escape(text[at:start]), "<mark>", inner, "</mark>"]
        at = end
    return "".join(parts) + html.escape(text[at:])


INSIDE = "inside "  # the status of a document inside a file


def documents_table(assistant: Assistant) -> list[list[Any]]:
    """Rows (document, status, passages, indexed at), read from the store now: indexed files,
    each followed by the documents inside it (attachments, messages), then files that could
    not be indexed, with the reason."""
    store = assistant.current_store()
    parts = store.parts()
    rows = []
    for f in store.files():
        rows.append([f.source, "indexed", f.chunks, datetime.fromtimestamp(f.indexed_at).strftime("%Y-%m-%d %H:%M:%S")])
        rows += [[f"{f.source}{SECTION_SEP}{p.name}", f"{INSIDE}{f.source}: {p.title}", p.chunks, ""]
                 for p in parts.get(f.source, ())]
    rows += [[e.source, f"not indexed: {e.reason}", 0, ""] for e in store.failures()]
    return rows


# -- the app -----------------------------------------------------------------------------

def build_app(assistant: Assistant, indexing: IndexingState | None = None, users: Users | None = None) -> gr.Blocks:
    """The app; with ``users``, every handler acts for the signed-in user (roles and
    collections checked here, on the server, whatever the page sends)."""
    indexing = indexing or IndexingState()
    conversations = Conversations(Path(assistant.settings.index_dir) / "conversations.sqlite") if users else None

    def who(request: gr.Request | None) -> User:
        if users is None:
            return LOCAL
        user = users.get(getattr(request, "username", None))
        if user is None:
            raise gr.Error("Sign in first (reload the page).")
        return user

    def admin(request: gr.Request | None, action: str) -> User:
        user = who(request)
        if not user.is_admin:
            audit(user=user.name, action=action, result="refused-not-admin")
            raise gr.Error(f"Only an admin may {action}; {user.name} is a {user.role}.")
        return user

    def scope(user: User, chosen: list[str] | None, offered: list[str] | None = None) -> list[str] | None:
        return user.scope(assistant.collections(), chosen, offered)

    def respond(message: str, history: list[dict], panels: list[str], llm: str | None = None,
                chosen: list[str] | None = None, offered: list[str] | None = None,
                request: gr.Request = None) -> Iterator[tuple]:
        user = who(request)
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
            for item in assistant.stream(question, history=previous, llm=llm or None,
                                         collections=scope(user, chosen, offered or [])):
                if isinstance(item, Answer):
                    answer = item
                    continue
                text += item
                history[-1] = {"role": "assistant", "content": as_text(text) + " …"}
                yield "", history, panels, _panel(panels)
        except Exception as exc:  # noqa: BLE001 - an LLM server down, an index deleted: one line, details logged
            log.exception("answering %r failed", question)
            history[-1] = {"role": "assistant", "content": f"⚠️ *{explain(exc, assistant.settings.index_dir)}*"}
            yield "", history, panels, _panel(panels)
            return
        # The checks ran at the end: swap in the final text, whose markers link to passages.
        history[-1] = {"role": "assistant", "content": render_answer(answer, turn)}
        panels = [render_sources(answer, turn), *panels]
        if conversations is not None:
            conversations.save(user.name, history, panels)
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
        names = [r[0] for r in rows if not r[1].startswith(INSIDE)]  # a part goes with its file
        return (rows, gr.Dropdown(choices=names, value=choice if choice in names else None),
                "\n".join(f"- {line}" for line in notes or []), status_line(indexing, assistant))  # admins only

    def reindexed(notes: list[str], progress, user: User) -> tuple:
        audit(user=user.name, action="re-index")
        stats = indexing.run(assistant, progress=lambda stage, done, total: progress(
            (done, total), desc=stage, unit="files" if stage == READING else "passages"))
        if stats is None:
            return documents_view([*notes, indexing.last])
        return documents_view([*notes, "Index: " + stats_line(stats), *[f"skipped {e}" for e in stats.errors]])

    def add_files(uploads: list[tuple[str, bytes]], if_exists: str, user: User
                  ) -> tuple[list[str], list[tuple[str, bytes]]]:
        notes, conflicts = [], []
        for name, data in uploads:
            try:
                saved = assistant.add_document(name, data, if_exists=if_exists)
                audit(user=user.name, action="upload", file=saved, bytes=len(data), mode=if_exists)
                notes.append(f"added {saved}" if saved == name or if_exists != "keep_both"
                             else f"added {name} as {saved} (kept both)")
            except DocumentExists:
                conflicts.append((name, data))
            except DocumentError as exc:
                audit(user=user.name, action="upload", file=name, result="refused", reason=str(exc))
                notes.append(f"refused: {exc}")
        return notes, conflicts

    def upload(files: list[Any] | None, request: gr.Request = None, progress=gr.Progress()) -> tuple:
        user = admin(request, "upload documents")
        uploads = []
        for file in files or []:
            path = Path(file if isinstance(file, str) else file.name)
            uploads.append((Path(getattr(file, "orig_name", None) or path.name).name, path.read_bytes()))
        notes, conflicts = add_files(uploads, "error", user)
        view = reindexed(notes, progress, user) if notes else documents_view()
        return (*view, None, *conflict_prompt(conflicts))

    def resolve_upload(pending: list[tuple[str, bytes]], choice: str, request: gr.Request | None, progress) -> tuple:
        user = admin(request, "upload documents")
        if choice == "cancel" or not pending:
            notes = [f"kept the existing {name}; the upload was not saved" for name, _ in pending]
            return (*documents_view(notes), *conflict_prompt([]))
        notes, _ = add_files(pending, choice, user)
        return (*reindexed(notes, progress, user), *conflict_prompt([]))

    def resolver(how: str):
        def resolve(pending: list[tuple[str, bytes]], request: gr.Request, progress=gr.Progress()) -> tuple:
            return resolve_upload(pending, how, request, progress)
        return resolve

    def conflict_prompt(conflicts: list[tuple[str, bytes]]) -> tuple:
        names = ", ".join(name for name, _ in conflicts)
        text = (f"**{names}** already exist(s) in the documents folder. Replace, keep both "
                "(the upload gets a new name), or cancel?") if conflicts else ""
        return conflicts, gr.Row(visible=bool(conflicts)), text

    def ask_delete(source: str | None, request: gr.Request = None) -> tuple:
        admin(request, "delete documents")
        if not source:
            return None, gr.Row(visible=False), "", "- choose a document to delete"
        return (source, gr.Row(visible=True),
                f"Delete **{source}** from the documents folder? The file is removed from disk and from the index.",
                "")

    def confirm_delete(source: str | None, request: gr.Request = None, progress=gr.Progress()) -> tuple:
        user = admin(request, "delete documents")
        if not source:
            return (*documents_view(["nothing to delete"]), None, gr.Row(visible=False))
        try:
            assistant.remove_document(source)
            audit(user=user.name, action="delete", file=source)
            notes = [f"deleted {source}"]
        except DocumentError as exc:
            audit(user=user.name, action="delete", file=source, result="refused", reason=str(exc))
            notes = [str(exc)]
        return (*reindexed(notes, progress, user), None, gr.Row(visible=False))

    def reindex(request: gr.Request = None, progress=gr.Progress()) -> tuple:
        return reindexed([], progress, admin(request, "re-index"))

    def ask_api(question: str, history: list[dict] | None = None, collections: list[str] | None = None,
                request: gr.Request = None) -> dict:
        """Answer a question from the documents: text, refused, citations (n, source, quote, text),
        retrieved (id, source, score of each passage considered). ``collections``: only those
        (within the signed-in user's)."""
        user = who(request)
        try:
            answer = api.ask(assistant, user, question, history=history, collections=collections)
        except QuestionError as exc:
            raise gr.Error(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001
            log.exception("/ask failed for %r", question)
            raise gr.Error(explain(exc, assistant.settings.index_dir)) from exc
        return answer.model_dump(include={"question": True, "lang": True, "text": True, "refused": True,
                                          "support": True, "citations": True,
                                          "retrieved": {"__all__": {"id", "source", "score"}}})

    def tick(seen: str | None, choice: str | None, request: gr.Request = None) -> tuple:
        """Header always; an admin's documents table only when the index changed (any process)."""
        try:
            generation = assistant.current_store().generation
        except Exception:  # noqa: BLE001 - the header says what is wrong
            generation = seen
        user = who(request)
        if generation == seen:
            return status_line(indexing, assistant, user), gr.skip(), gr.skip(), generation, gr.skip()
        offered_examples = gr.Chatbot(examples=examples_for(user))  # a document came or went
        if not user.is_admin:
            return status_line(indexing, assistant, user), gr.skip(), gr.skip(), generation, offered_examples
        rows, dropdown, _, header = documents_view(choice=choice)
        return header, rows, dropdown, generation, offered_examples

    def examples_for(user: User) -> list[dict] | None:
        """The example questions of the indexed documents ``user`` may read (None: none)."""
        allowed = user.may_read(assistant.collections())
        store = assistant.current_store()
        return [{"text": q} for source, questions in EXAMPLES.items()
                if collection_of(source) in allowed and store.has_file(source) for q in questions] or None

    def load(request: gr.Request = None) -> tuple:
        """A page (re)load: the user's own things only."""
        user = who(request)
        rows, dropdown, _, header = documents_view(choice=None) if user.is_admin else ([], gr.skip(), "", None)
        allowed = user.may_read(assistant.collections())
        history, panels = conversations.load(user.name) if conversations else ([], [])
        signed = (f"Signed in as **{user.name}** ({user.role}) · [Sign out](/logout)" if users else "")
        return (header or status_line(indexing, assistant, user), rows, dropdown, assistant.current_store().generation,
                gr.Tab(visible=user.is_admin), gr.CheckboxGroup(choices=allowed, value=allowed,
                                                                 visible=len(allowed) > 1),
                allowed, gr.Chatbot(value=history, examples=examples_for(user)), panels, _panel(panels), signed)

    with gr.Blocks(title="tpdqa — questions on your documents") as demo:
        gr.Markdown("## tpdqa — ask your documents\nAnswers quote the documents and cite them; "
                    "when the documents do not hold the answer, it says so.")
        status = gr.Markdown(elem_id="index-status")
        signed_in = gr.Markdown(elem_id="signed-in")
        seen = gr.State(None)  # the index generation this page shows
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                panels = gr.State([])
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
                            elem_id="chatbot", height=560, label="Conversation",
                            placeholder="Ask a question about the documents, in French or English.",
                            latex_delimiters=[],  # a '$' in a quoted passage is a dollar, not math
                        )
                        with gr.Row():
                            box = gr.Textbox(elem_id="question", show_label=False, scale=6, lines=1, max_lines=4,
                                             placeholder="Votre question / your question…", autofocus=True)
                            send = gr.Button("Send", elem_id="send", variant="primary", scale=1)
                    with gr.Column(scale=2):
                        gr.Markdown("### Sources")
                        sources = gr.HTML(NO_SOURCES, elem_id="sources", max_height=620, container=True)
                picker = gr.CheckboxGroup([], label="Collections", elem_id="collections", visible=False,
                                          info="answer from these collections only")
                offered = gr.State([])  # the collections the picker shows
                with gr.Accordion("Settings", open=False, elem_id="settings"):
                    choices = list(dict.fromkeys(["extractive", assistant.settings.llm]))
                    llm = gr.Dropdown(choices, value=assistant.settings.llm, label="Answerer", elem_id="answerer",
                                      info="extractive quotes the documents; an LLM (TPDQA_LLM) writes answers "
                                           "whose citations are checked")
                outputs = [box, chatbot, panels, sources]
                inputs = [box, chatbot, panels, llm, picker, offered]
                box.submit(respond, inputs, outputs, api_visibility="private")
                send.click(respond, inputs, outputs, api_visibility="private")
                chatbot.example_select(pick_example, None, box, api_visibility="private").then(
                    respond, inputs, outputs, api_visibility="private"
                )
            with gr.Tab("Documents", id="documents", visible=users is None) as documents_tab:
                table = gr.Dataframe(headers=["Document", "Status", "Passages", "Indexed at"],
                                     elem_id="documents-table", interactive=False, wrap=True)
                with gr.Row():
                    files = gr.File(label=f"Add documents ({', '.join(SUPPORTED_SUFFIXES)}; "
                                          f"up to {assistant.settings.max_upload_mb} MB)",
                                    file_count="multiple", file_types=list(SUPPORTED_SUFFIXES), elem_id="upload")
                    with gr.Column():
                        # any value reaches the handler, which checks the role and the path itself
                        choice = gr.Dropdown([], value=None, label="Document", elem_id="delete-choice",
                                             allow_custom_value=True)
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
                for button, how in ((replace, "replace"), (keep, "keep_both"), (skip, "cancel")):
                    button.click(resolver(how), pending, [*view, *prompt], **private)
                remove.click(ask_delete, choice, [to_delete, delete_row, delete_text, notes], **private)
                delete_yes.click(confirm_delete, to_delete, [*view, to_delete, delete_row], **private)
                delete_no.click(lambda: (None, gr.Row(visible=False)), None, [to_delete, delete_row], **private)
                again.click(reindex, None, view, **private)
        timer = gr.Timer(2.0)
        timer.tick(tick, [seen, choice], [status, table, choice, seen, chatbot], show_progress="hidden",
                   concurrency_limit=None, **private)
        demo.load(load, None, [status, table, choice, seen, documents_tab, picker, offered, chatbot, panels,
                               sources, signed_in], **private)
        gr.api(ask_api, api_name="ask")
    return demo


def _panel(panels: list[str]) -> str:
    return "".join(panels) or NO_SOURCES


def _plain(content: Any) -> str:
    """A bubble's text as it was answered: marker links back to [n], escapes undone."""
    text = content if isinstance(content, str) else str(content)
    text = re.sub(r"\[\\\[(\d+)\\\]\]\([^)]*\)", r"[\1]", text)
    text = re.sub(r"</?strong>", "", text)  # bold_span's; a document's own tags were escaped
    return _ESCAPED.sub(r"\1", text)
