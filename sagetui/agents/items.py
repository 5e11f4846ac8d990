"""What the agent suite evaluates: tools, items and the dev/test split.

Every dataset (BFCL, the template smoke set) is turned into these shapes, so
strategies, scoring and the runner never look at a file format:

- `Tool`: a callable function (name, description, parameter names and docs);
- `Item`: one question in one category with its candidate tools and gold answer:
  - `selection`: the one function to call among the item's candidates
    (`gold` = [name], `answer` = BFCL's allowed argument values, when known);
  - `selection_pool`: the same questions ranked against the pool of every
    tool of the dataset (retrieval at scale);
  - `timing`: whether any candidate should be called (`call` True/False);
  - `planning`: the several calls a request needs (`gold` = their names;
    `ordered` when their order is part of the answer).
- the split: an item's group id hashed (sha256) into dev (tuning) or test
  (reporting), so it never changes when files are added or reordered.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

CATEGORIES = ("selection", "selection_pool", "timing", "planning")
SPLITS = ("dev", "test")
DEV_FRACTION = 0.3  # of each category's groups; tuning needs few, the reported CIs many


class DatasetError(ValueError):
    """A dataset file that cannot be read; the message names the file, line and field."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    params: tuple[tuple[str, str], ...] = ()  # (name, description)
    schema: dict | None = field(default=None, compare=False, hash=False)  # the JSON schema

    @property
    def key(self) -> str:
        """Identity in the pool: the same name may come with different descriptions."""
        return self.name + "\x00" + self.description

    def text(self) -> str:
        """What retrieval indexes: the name split into words, its description, its parameters."""
        words = " ".join(split_identifier(self.name))
        params = ", ".join(n for n, _ in self.params)
        return f"{words}: {self.description}" + (f" Parameters: {params}." if params else "")


@dataclass
class Item:
    id: str
    category: str
    query: str
    tools: list[Tool]  # the candidates shown with the item
    gold: list[str] = field(default_factory=list)  # function names
    call: bool = True  # timing: should a function be called at all
    answer: list[dict] | None = None  # BFCL possible answers, [{name: {param: [allowed]}}]
    ordered: bool = False
    system: str = ""  # a system message that came with the question
    source: str = ""  # file (or generator) it came from
    group: str = ""  # split unit (a multi-turn conversation keeps its turns together)

    @property
    def split(self) -> str:
        return split_of(self.group or self.id)


@dataclass
class Dataset:
    name: str
    items: list[Item]
    pool: list[Tool]  # every distinct tool (selection_pool ranks against it)
    info: dict  # version, licence, file hashes: stored with every run

    def select(self, category: str, split: str) -> list[Item]:
        return [i for i in self.items if i.category == category and i.split == split]

    def counts(self) -> dict[str, dict[str, int]]:
        return {c: {s: len(self.select(c, s)) for s in SPLITS} for c in CATEGORIES}


def split_of(key: str) -> str:
    """dev for DEV_FRACTION of keys, test for the rest (sha256 of the key: stable)."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "dev" if h < DEV_FRACTION else "test"


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def split_identifier(name: str) -> list[str]:
    """`ChaDri.change_drink` -> ['cha', 'dri', 'change', 'drink']."""
    return [w.lower() for part in re.split(r"[._\-/ ]+", name) for w in _CAMEL.findall(part)]


def pool_of(items: list[Item]) -> list[Tool]:
    """Distinct tools of `items` (by name and description), first seen first."""
    seen: dict[str, Tool] = {}
    for item in items:
        for t in item.tools:
            seen.setdefault(t.key, t)
    return list(seen.values())


def template_dataset() -> Dataset:
    """The template-generated smoke set (sagetui/agents/data) in the same shapes."""
    from . import dataset

    data = dataset.load()
    tools = [Tool(t["name"], t["description"]) for t in data["tools"]]
    items: list[Item] = []
    for s in data["selection"]:
        items.append(Item(s["id"], "selection_pool", s["query"], tools, [s["tool"]],
                          source="template"))
    for p in data["planning"]:
        items.append(Item(p["id"], "planning", p["task"], tools, list(p["steps"]), ordered=True,
                          source="template"))
    for t in data["timing"]:
        items.append(Item(t["id"], "timing", t["utterance"], tools, call=t["call_tool"],
                          source="template"))
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(dataset.DATA_DIR.glob("*.jsonl"))}
    return Dataset("template", items, tools,
                   {"name": "template smoke set", "version": f"seed {dataset.SEED}",
                    "licence": "Apache-2.0", "files": files, "source": "sagetui/agents/data"})
