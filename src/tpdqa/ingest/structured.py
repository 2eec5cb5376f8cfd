"""Structured data: .json, .jsonl and .ndjson (the standard ``json`` module), .xml (defusedxml).

A tree is read by the path of its keys, which become section headings (``trees.json ›
plots``). A list of records — objects whose values are all short — is a table, one keyed
row per record as a sheet's (``Oak — planted: 120; survival: 92%``), and so is an object
whose values are all such records, keyed by their names. Any other object gives its short
values as ``key: value`` lines and its long texts as paragraphs, and its nested objects
sections of their own (a record holding prose, an RSS item, is one section under its
title). XML is first read into the same tree: an element's attributes and children are
its fields, its text a field too; text with inline markup (``<p>…<b>…</b>…</p>``) is
prose. JSON Lines are a list of records, one per line.
"""

from __future__ import annotations

import json
import re
from typing import Any

from defusedxml import ElementTree

from tpdqa.ingest.base import Section, UnusableFile, decode_text, keyed_rows, reads

SHORT = 120  # characters: a longer string (or one that holds a sentence's end and a space) is prose
MAX_DEPTH = 64  # nesting read as sections; deeper, a file is data for a program, not a document
LABELS = ("name", "title", "label", "id", "nom", "titre")  # the field that names a record, if any
_SENTENCE = re.compile(r"[.!?…]\s+\S")


@reads(".json")
def read_json(data: bytes):
    try:
        tree = json.loads(decode_text(data))
    except json.JSONDecodeError as exc:
        raise UnusableFile(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    except RecursionError as exc:
        raise UnusableFile(f"JSON nested too deep to read (over {MAX_DEPTH} levels)") from exc
    return tree_sections(tree)


@reads(".jsonl", ".ndjson")
def read_json_lines(data: bytes):
    records = []
    for number, line in enumerate(decode_text(data).splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UnusableFile(f"line {number} is not valid JSON ({exc.msg}, column {exc.colno})") from exc
            except RecursionError as exc:
                raise UnusableFile(f"line {number}: JSON nested too deep to read") from exc
    return tree_sections(records)


@reads(".xml")
def read_xml(data: bytes):
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        line, column = exc.position
        raise UnusableFile(f"not well-formed XML (line {line}, column {column + 1})") from exc
    except ValueError as exc:  # defusedxml: a DTD's entities (an expansion bomb, or a file read from the disk)
        raise UnusableFile(f"the XML declares entities ({exc.__class__.__name__}), which are not read for safety: "
                           "remove its <!DOCTYPE> declarations") from exc
    return tree_sections({_tag(root): xml_value(root)})


def xml_value(element: Any, depth: int = 0) -> Any:
    """An element as the JSON reader's tree: a string for text alone (or text with inline
    markup, read as prose), else a dict of its attributes, children (repeated tags: a list)
    and text (``text``)."""
    if depth > MAX_DEPTH:
        raise UnusableFile(f"XML nested too deep to read (over {MAX_DEPTH} levels)")
    children = list(element)
    text = " ".join((element.text or "").split())
    if children and (text or any((child.tail or "").strip() for child in children)):
        text, children = " ".join("".join(element.itertext()).split()), []  # mixed content: prose
    fields: dict[str, Any] = {_tag(name): value for name, value in element.attrib.items()}
    if not children:  # a value, its attributes beside it: "12 (currency: EUR)"
        if text and fields:
            return f"{text} ({'; '.join(f'{name}: {value}' for name, value in fields.items())})"
        return text or fields
    tags = [_tag(child) for child in children]
    repeated = {tag for tag in tags if tags.count(tag) > 1}
    for name, child in zip(tags, children):
        value = xml_value(child, depth + 1)
        if name in repeated or name in fields:  # a list, also where an attribute has the child's name
            held = fields.setdefault(name, [])
            if not isinstance(held, list):
                held = fields[name] = [held]
            held.append(value)
        else:
            fields[name] = value
    if text:
        fields["text"] = text
    return fields


def _tag(name: Any) -> str:
    """A tag or attribute name without its namespace (``{http://…}item`` -> ``item``)."""
    name = name.tag if hasattr(name, "tag") else name
    return str(name).rsplit("}", 1)[-1].split(":")[-1]


def tree_sections(tree: Any) -> tuple[list[Section], str | None]:
    """Sections of a JSON-like tree, and its title (a top-level name or title)."""
    sections: list[Section] = []
    walk(tree, (), sections)
    top, title = tree, None
    while isinstance(top, dict) and (title := label_of(top)) is None:
        inner = [v for v in top.values() if isinstance(v, dict)]
        if len(inner) != 1:
            break
        top = inner[0]  # <rss><channel><title>: the title is inside the wrappers
    return sections, title


def walk(value: Any, path: tuple[str, ...], sections: list[Section], depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise UnusableFile(f"nested too deep to read (over {MAX_DEPTH} levels)")
    if isinstance(value, list):
        if records := as_records(value):
            sections.append(Section(path, "\n\n".join(keyed_rows(records))))
            return
        scalars = [shown(v) for v in value if is_scalar(v)]
        if scalars:
            sections.append(Section(path, "\n\n".join(s for s in scalars if s)))
        for number, item in enumerate((v for v in value if not is_scalar(v)), 1):
            walk(item, path + (label_of(item) or str(number),), sections, depth + 1)
        return
    if not isinstance(value, dict):
        if text := shown(value):
            sections.append(Section(path, text))
        return
    keyed = [{**item, "": key} for key, item in value.items() if isinstance(item, dict)]
    if len(keyed) == len(value) and (records := as_records(keyed)):  # {"Oak": {...}, "Beech": {...}}: the key names each
        sections.append(Section(path, "\n\n".join(keyed_rows(records))))
        return
    lines, prose, nested = [], [], []
    for key, item in value.items():
        if is_scalar(item):
            text = shown(item)
            if is_prose(text):
                prose.append(text)
            elif text and not (path and key in LABELS and text == path[-1]):  # the heading says it already
                lines.append(f"{key}: {text}")
        elif isinstance(item, list) and item and all(map(is_short, item)):
            lines.append(f"{key}: {', '.join(shown(v) for v in item)}")
        else:
            nested.append((key, item))
    if lines or prose:
        sections.append(Section(path, "\n\n".join(["\n".join(lines)] * bool(lines) + prose)))
    for key, item in nested:
        walk(item, path + (str(key),), sections, depth + 1)


def as_records(items: list[Any]) -> list[list[str]] | None:
    """``items`` as a table (header row first, the naming field as first column) when they are
    at least two objects whose values are all short scalars; else None."""
    if len(items) < 2 or not all(isinstance(item, dict) and item for item in items):
        return None
    if not all(is_short(v) for item in items for v in item.values()):
        return None
    columns = list(dict.fromkeys(key for item in items for key in item))
    label = next((c for c in ("", *LABELS) if c in columns), columns[0])
    columns = [label] + [c for c in columns if c != label]
    return [columns] + [[shown(item.get(c)) for c in columns] for item in items]


def label_of(item: Any) -> str | None:
    """What names an object: its name, title, label or id field (a short string or number)."""
    if not isinstance(item, dict):
        return None
    for key in LABELS:
        value = item.get(key)
        if value not in (None, "") and is_short(value):
            return shown(value)
    return None


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def is_short(value: Any) -> bool:
    """A value that reads as a field, not as text: a scalar, shown in a few words."""
    return is_scalar(value) and not is_prose(shown(value))


def is_prose(text: str) -> bool:
    return len(text) > SHORT or bool(_SENTENCE.search(text))


def shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())
