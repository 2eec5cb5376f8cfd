"""tpdqa's command line: ``tpdqa index``, ``tpdqa ask``, ``tpdqa serve``, ``tpdqa mcp``, ``tpdqa user``, ``tpdqa eval``.

Run ``tpdqa --help`` and ``tpdqa COMMAND --help``: that is the documentation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

EPILOG = """settings: every option also reads TPDQA_<NAME> from the environment and
<name> from ./tpdqa.toml (options > environment > tpdqa.toml > defaults)."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--documents-dir", type=Path, help="folder of documents (default ./documents)")
    parser.add_argument("--index-dir", type=Path, help="folder of the index (default ./index)")
    parser.add_argument("--chroma-url", help="use a Chroma server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--embedding-models", help="comma-separated embedding models")
    parser.add_argument("--llm", help="answerer: extractive (default), openai:MODEL, ollama:MODEL, llamacpp:PATH")
    parser.add_argument("--llm-base-url", help="base URL of an OpenAI-compatible or Ollama server")
    parser.add_argument("--reader", help="the extractive answerer's reader: auto (default, the shipped one), off, "
                                         "or a reader.pt path (docs/reader.md)")
    parser.add_argument("--reader-languages", help="comma-separated languages of the questions the reader reads "
                                                   "(default en,fr; en: English only)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what happens (model loading bars included) on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tpdqa",
        description="Ask questions about a folder of documents; every answer cites its passages.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_index = sub.add_parser("index", help="bring the index up to date with the documents folder (incremental)",
                             description="Read the documents folder, embed new or changed passages only, drop deleted ones. "
                                         "Two phases: 'searchable' (BM25, sentences, the fastest encoder: files can be "
                                         "asked about from then on, by any process) and 'complete' (the slower encoders). "
                                         "--json reports searchable_s and complete_s.",
                             epilog=EPILOG)
    _common(p_index)
    p_index.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p_index.add_argument("--searchable-only", action="store_true",
                         help="stop once every file is searchable; a later `tpdqa index` (or the server) completes it")
    p_index.add_argument("--watch", action="store_true",
                         help="then keep watching the documents folder and re-index on every change (Ctrl+C stops)")
    p_index.add_argument("--ray", metavar="ADDRESS",
                         help="parse and encode on a Ray cluster (auto: the one this machine runs; or HOST:PORT); "
                              "this process still writes the index. Needs pip install 'tpdqa[ray]'")

    p_ask = sub.add_parser("ask", help="answer a question, with numbered sources",
                           description="Answer QUESTION from the documents (indexing them first if needed).",
                           epilog=EPILOG)
    p_ask.add_argument("question", help="the question, in French or English")
    _common(p_ask)
    p_ask.add_argument("--json", action="store_true", help="print the whole Answer as JSON")
    p_ask.add_argument("--collection", dest="collections", action="append",
                       help="answer from this collection only (a top-level folder of documents/, or 'default'); "
                            "repeat for several")

    p_serve = sub.add_parser("serve", help="start the chat web UI and the APIs (indexes the documents first)",
                             description="Serve the chat at /, the REST API at /api/v1 (docs: /api/v1/docs), the "
                                         "OpenAI-compatible API at /v1 and MCP at /mcp, on one port; brings the "
                                         "index up to date first.",
                             epilog=EPILOG)
    p_serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p_serve.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p_serve.add_argument("--watch", action="store_true",
                         help="re-index when files in the documents folder are added, changed or removed "
                              "(progress in the page's header)")
    p_serve.add_argument("--users", dest="users_file", type=Path,
                         help="users file (tpdqa user add): sign-in, roles and collections; without it the "
                              "server binds 127.0.0.1 only")
    p_serve.add_argument("--insecure", action="store_true",
                         help="allow --host other than 127.0.0.1 without a users file (anyone is admin)")

    p_mcp = sub.add_parser("mcp", help="serve the documents as MCP tools over stdio (for desktop assistants)",
                           description="An MCP server on stdin/stdout: tools search_documents, ask, list_documents. "
                                       "Configure your assistant to start `tpdqa mcp --documents-dir DIR "
                                       "--index-dir DIR`; `tpdqa serve` serves the same tools at /mcp.",
                           epilog=EPILOG)
    _common(p_mcp)

    p_user = sub.add_parser("user", help="manage the users of `tpdqa serve --users FILE`, and their API keys",
                            description="Add, remove or list the users who may sign in. Passwords are asked "
                                        "without echo (or read from stdin's first line) and stored as argon2 hashes. "
                                        "`key NAME` prints a new API key for NAME once (only its SHA-256 is "
                                        "stored); `key NAME --revoke [ID]` revokes one key, or all of NAME's.",
                            epilog=EPILOG)
    p_user.add_argument("action", choices=["add", "remove", "list", "key"])
    p_user.add_argument("name", nargs="?", help="user name (add, remove, key)")
    p_user.add_argument("--revoke", nargs="?", const="", metavar="ID",
                        help="key: revoke the key ID (as `user list` shows it), or all of NAME's keys")
    p_user.add_argument("--users", dest="users_file", type=Path, help="users file (default: setting users_file, "
                                                                        "else ./users.toml)")
    p_user.add_argument("--role", choices=["reader", "admin"], default="reader",
                        help="reader: asks; admin: also uploads, deletes, re-indexes (default reader)")
    p_user.add_argument("--collections", default="",
                        help="comma-separated collections the user may read: top-level folders of documents/, "
                             "'default' for its top-level files, '*' for all (admins default to '*')")
    _common(p_serve)

    p_eval = sub.add_parser(
        "eval", help="score an evaluation set, or retrieval on a BEIR folder",
        description="--dataset: run every question of a JSON Lines set through the chat's own path and write "
                    "report.json, report.md, report.png. --beir: index a BEIR folder (corpus.jsonl, queries.jsonl, "
                    "qrels/NAME.tsv) into its own store and score retrieval (nDCG@10, recall, MRR, hit@1, speed).",
        epilog=EPILOG + "\n\nPIAF subset used in docs/evaluation.md: --beir ../shared/data/piaf-v1.1/beir "
                        "--qrels all --every 7 --limit 1000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p_eval.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", type=Path, help="questions, JSON Lines (format: docs/eval-format.md)")
    source.add_argument("--beir", type=Path, help="a folder in BEIR layout, for retrieval-only scores")
    p_eval.add_argument("--out", type=Path, default=Path("eval-out"), help="folder for the reports (default ./eval-out)")
    p_eval.add_argument("--qrels", default="test", help="BEIR: qrels file name under qrels/ (default test)")
    p_eval.add_argument("--every", type=int, default=1, help="BEIR: keep every Nth query (sorted ids)")
    p_eval.add_argument("--offset", type=int, default=0, help="BEIR: first query kept")
    p_eval.add_argument("--limit", type=int, help="BEIR: at most this many queries")
    p_eval.add_argument("--work", type=Path, help="BEIR: folder for the documents and index, reused between runs "
                                                    "(default: a new temporary folder)")
    _common(p_eval)
    return parser


def _assistant(args: argparse.Namespace):
    from tpdqa import Assistant

    overrides: dict[str, Any] = {}
    for name in ("documents_dir", "index_dir", "chroma_url", "embedding_models", "llm", "llm_base_url", "reader",
                 "reader_languages", "users_file"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Assistant(**overrides)


def _tqdm_progress():
    from tqdm import tqdm

    from tpdqa.store import READING, WAITING

    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if total == 0:  # nothing to do for this index: no bar; a wait is said once
            if stage == WAITING and stage not in bars:
                bars[stage] = None
                print(f"tpdqa: {WAITING}…", file=sys.stderr, flush=True)
            return
        if stage not in bars:
            bars[stage] = tqdm(total=total, desc=stage, unit="file" if stage == READING else "chunk", file=sys.stderr,
                               leave=True)
        bar = bars[stage]
        bar.update(done - bar.n)  # redrawn at most every 0.1 s: a redraw per file took 10 s of 26 at 100k files
        if done >= total:
            bar.close()

    return progress


def cmd_index(args: argparse.Namespace) -> int:
    assistant = _assistant(args)
    cluster = None
    if args.ray:
        from tpdqa.cluster import RayCluster

        cluster = RayCluster(args.ray)

    def run() -> None:
        stats = assistant.index(progress=_tqdm_progress(), searchable_only=args.searchable_only, cluster=cluster)
        if args.json:
            print(json.dumps({**stats.as_dict(), "models_loaded": assistant.store.models_loaded()},
                             ensure_ascii=False), flush=True)
        else:
            _print_stats(stats)

    if not args.watch:
        run()
        return 0
    from tpdqa.watch import watch_documents

    print(f"Watching {assistant.settings.documents_dir} for changes (Ctrl+C stops).", file=sys.stderr, flush=True)
    watch_documents(assistant, run, run_first=True)
    return 0


def _print_stats(stats, file=None) -> None:
    print(
        f"Indexed {stats.chunks} chunks from {stats.added + stats.updated + stats.unchanged} files in {stats.seconds:.1f}s"
        + (f" (searchable after {stats.searchable_s:.1f}s)" if stats.searchable_s else "") + ": "
        f"{stats.added} added, {stats.updated} updated, {stats.deleted} deleted, {stats.unchanged} unchanged, "
        f"{stats.failed} failed; {stats.embedded} chunks embedded, {stats.chunks_deleted} removed.", flush=True,
        file=file or sys.stdout,
    )
    for error in stats.errors:
        print(f"  skipped {error.source}: {error.reason}", file=sys.stderr)


def bold(text: str, span: str | None) -> str:
    """``text`` with the reader's answer words in bold: ANSI on a terminal, ``**`` (Markdown) when piped."""
    if not span or span not in text:
        return text
    on, off = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("**", "**")
    return text.replace(span, f"{on}{span}{off}", 1)


def cmd_ask(args: argparse.Namespace) -> int:
    assistant = _assistant(args)
    assistant.check_question(args.question)
    assistant.check_folder()
    if assistant.store.is_empty() and assistant.check_documents():
        print("No index yet: indexing the documents first.", file=sys.stderr)
        _print_stats(assistant.index(progress=_tqdm_progress()), file=sys.stderr)  # stdout: the answer only
    answer = assistant.ask(args.question, collections=args.collections)
    if args.json:
        print(answer.model_dump_json(indent=2))
    else:
        print(bold(answer.text, answer.span_text))
        for sentence in answer.unsupported:
            print(f"  (not supported by the documents: {sentence})")
        if answer.citations:
            print("\nSources:")
            for c in answer.citations:
                where = c.section or c.source
                where = f"{where}, page {c.page}" if c.page else where
                print(f"  [{c.n}] {where}\n      « {c.quote} »")
    assistant.store.close()
    args.done = True  # everything written and closed: run() may skip the interpreter's teardown
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from tpdqa.server import serve

    serve(_assistant(args), host=args.host, port=args.port, watch=args.watch, insecure=args.insecure)
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from tpdqa.mcp_server import build_mcp

    build_mcp(_assistant(args)).run("stdio")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    import getpass

    from tpdqa.settings import Settings
    from tpdqa.users import Users

    users = Users(args.users_file or Settings().users_file or Path("users.toml"))
    if args.action in ("list", "remove") and not users.path.exists():
        raise FileNotFoundError(f"Users file {users.path} does not exist: create it with "
                                f"`tpdqa user add NAME --role admin --users {users.path}`.")
    if args.action == "list":
        for name in users.names():
            user = users.get(name)
            print(f"{name}\t{user.role}\t{','.join(user.collections)}\tkeys: {','.join(users.key_ids(name)) or '-'}")
        return 0
    if not args.name:
        raise ValueError(f"tpdqa user {args.action} needs a NAME.")
    if args.action == "key":
        if args.revoke is not None:
            count = users.revoke_keys(args.name, args.revoke or None)
            if args.revoke and not count:
                raise ValueError(f"{args.name} has no key {args.revoke!r}; `tpdqa user list` shows their keys.")
            print(f"revoked {count} key(s) of {args.name}")
            return 0
        print(users.create_key(args.name))
        print(f"The API key of {args.name} (shown once; send it as `Authorization: Bearer <key>`).", file=sys.stderr)
        return 0
    if args.action == "remove":
        if not users.remove(args.name):
            raise ValueError(f"No user {args.name!r} in {users.path}.")
        print(f"removed {args.name} from {users.path}")
        return 0
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            raise ValueError("The two passwords differ; nothing written.")
    else:
        password = sys.stdin.readline().rstrip("\n")
    collections = [c.strip() for c in args.collections.split(",") if c.strip()]
    users.add(args.name, password, role=args.role, collections=collections)
    print(f"{args.name} ({args.role}; collections: {', '.join(users.get(args.name).collections) or 'none'}) "
          f"written to {users.path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from tpdqa.evaluation import evaluate, read_dataset, write_reports

    if args.beir:
        return _eval_beir(args)
    questions = read_dataset(args.dataset)
    assistant = _assistant(args)
    assistant.index(progress=_tqdm_progress())
    report = evaluate(assistant, questions)
    written = write_reports(report, args.out, str(args.dataset))
    summary = {k: v for k, v in report.items() if k not in ("per_question", "by_lang")}
    print(json.dumps(summary, indent=2))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _eval_beir(args: argparse.Namespace) -> int:
    import tempfile

    from tpdqa.evaluation import evaluate_beir

    overrides = {n: getattr(args, n) for n in ("chroma_url", "embedding_models", "llm", "llm_base_url", "reader",
                                               "reader_languages") if getattr(args, n, None)}
    work = args.work or Path(tempfile.mkdtemp(prefix="tpdqa-beir-"))
    report = evaluate_beir(args.beir, qrels=args.qrels, work=work, every=args.every, offset=args.offset,
                           limit=args.limit, **overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))
    print(f"wrote {args.out / 'report.json'}")
    return 0


def run() -> None:
    """The console script. After a command that closed everything it opened (``ask``),
    the process ends at once: tearing down torch, Chroma and the encoders' native
    libraries takes over a second on 2 cores after the answer is printed."""
    args = build_parser().parse_args()
    code = main(args=args)
    if getattr(args, "done", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None, args: argparse.Namespace | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = args or build_parser().parse_args(argv)
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        logging.getLogger("tpdqa").setLevel(logging.DEBUG)
    import sqlite3

    from tpdqa.assistant import QuestionError, explain

    try:
        commands = {"index": cmd_index, "ask": cmd_ask, "serve": cmd_serve, "mcp": cmd_mcp, "eval": cmd_eval,
                    "user": cmd_user}
        return commands[args.command](args)
    except QuestionError as exc:
        print(f"tpdqa: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError, sqlite3.DatabaseError) as exc:
        print(f"tpdqa: error: {explain(exc, getattr(args, 'index_dir', None) or 'index')}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    run()
