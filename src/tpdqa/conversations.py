"""Each signed-in user's conversation, kept on the server so it survives a page reload.

One row per user in ``index_dir/conversations.sqlite``: the chat messages and the sources
panel's turns. A user only ever reads their own row (the key is the signed-in name that
Gradio's ``gr.Request`` carries, never something the page sends).

    >>> from tpdqa.conversations import Conversations
    >>> store = Conversations(":memory:")
    >>> store.save("alice", [{"role": "user", "content": "Bonjour"}], ["<div>sources</div>"])
    >>> store.load("alice")[0][0]["content"], store.load("bob")
    ('Bonjour', ([], []))
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any


class Conversations:
    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            from tpdqa.users import private_file

            private_file(Path(path))  # other users' questions and answers: the owner's only
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.execute("CREATE TABLE IF NOT EXISTS conversations (user TEXT PRIMARY KEY, messages TEXT, "
                               "panels TEXT)")

    def save(self, user: str, messages: list[dict[str, Any]], panels: list[str]) -> None:
        with self._lock, self._conn:
            self._conn.execute("INSERT OR REPLACE INTO conversations VALUES (?, ?, ?)",
                               (user, json.dumps(messages, ensure_ascii=False), json.dumps(panels, ensure_ascii=False)))

    def load(self, user: str) -> tuple[list[dict[str, Any]], list[str]]:
        with self._lock:
            row = self._conn.execute("SELECT messages, panels FROM conversations WHERE user = ?", (user,)).fetchone()
        return (json.loads(row[0]), json.loads(row[1])) if row else ([], [])
