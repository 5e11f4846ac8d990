"""BFCL (the Berkeley Function Calling Leaderboard, v4) as agent-suite items.

Source: the data files inside the `bfcl-eval` wheel (Apache 2.0), read from
the installed package without importing it (the wheel is installed without
its dependencies: scripts/setup_venv.sh). Each file is JSON Lines; answers
are in `possible_answer/` beside the questions. What becomes what:

| category        | files                                                  | gold |
|-----------------|--------------------------------------------------------|------|
| selection       | live_multiple, multiple                                | the one function called, and its allowed argument values |
| selection_pool  | the same questions, ranked against every function of the dataset | the function's name |
| timing          | irrelevance, live_irrelevance (no call); live_relevance, live_simple (a call) | call or not |
| planning        | parallel_multiple (the calls, any order); multi_turn_base (each user turn: its calls, in order) | function names |

live_simple's 258 single-function questions are timing's positives besides
live_relevance's 16, so that both answers are measured on hundreds of items.
The dataset's version and every file's sha256 go into each run (`info`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
from pathlib import Path

from .items import Dataset, DatasetError, Item, Tool, pool_of

PACKAGE = "bfcl-eval"
PACKAGE_VERSION = "2026.3.23"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
LICENCE = "Apache-2.0"
SELECTION = ("BFCL_v4_live_multiple", "BFCL_v4_multiple")
TIMING_NO_CALL = ("BFCL_v4_irrelevance", "BFCL_v4_live_irrelevance")
TIMING_CALL = ("BFCL_v4_live_relevance", "BFCL_v4_live_simple")
PARALLEL = ("BFCL_v4_parallel_multiple",)
MULTI_TURN = ("BFCL_v4_multi_turn_base",)
# The multi-turn tasks name API classes; their functions are documented in these files
# (the package's MULTI_TURN_FUNC_DOC_FILE_MAPPING).
FUNC_DOCS = {
    "GorillaFileSystem": "gorilla_file_system.json", "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json", "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json", "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json", "VehicleControlAPI": "vehicle_control.json",
}


def data_dir() -> Path:
    """bfcl_eval/data inside the installed wheel; a clear error when it is missing."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise DatasetError(f"package {PACKAGE} is not installed; it ships the BFCL data "
                           f"({INSTALL_HINT}, or `make setup`)") from None
    path = Path(str(dist.locate_file("bfcl_eval/data")))
    if not path.is_dir():
        raise DatasetError(f"{path}: missing from package {PACKAGE} {dist.version} "
                           f"(reinstall it: {INSTALL_HINT})")
    return path


def version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise DatasetError(f"package {PACKAGE} is not installed ({INSTALL_HINT})") from None


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON Lines file; a bad line is an error naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DatasetError(f"{path}:{n}: not JSON: {exc}") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{n}: not a JSON object")
        rows.append(row)
    return rows


def _field(row: dict, name: str, kind: type, where: str):
    if name not in row:
        raise DatasetError(f"{where}: field {name!r} missing")
    value = row[name]
    if not isinstance(value, kind):
        raise DatasetError(f"{where}: field {name!r} must be a {kind.__name__}, "
                           f"got {type(value).__name__}")
    return value


def tool_of(fn, where: str) -> Tool:
    if not isinstance(fn, dict):
        raise DatasetError(f"{where}: a function must be an object")
    name = _field(fn, "name", str, where)
    desc = fn.get("description", "")
    if not isinstance(desc, str):
        raise DatasetError(f"{where}: function {name!r}: field 'description' must be a string")
    schema = fn.get("parameters") or {}
    if not isinstance(schema, dict):
        raise DatasetError(f"{where}: function {name!r}: field 'parameters' must be an object")
    props = schema.get("properties") or {}
    params = tuple((str(k), str(v.get("description", "")) if isinstance(v, dict) else "")
                   for k, v in props.items()) if isinstance(props, dict) else ()
    return Tool(name, desc, params, schema)


def _question(row: dict, where: str) -> tuple[list[list[dict]], str]:
    """The turns (each a list of messages) and the first system message."""
    turns = _field(row, "question", list, where)
    if not turns or not all(isinstance(t, list) for t in turns):
        raise DatasetError(f"{where}: field 'question' must be a non-empty list of turns")
    system = ""
    for turn in turns:
        for m in turn:
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                raise DatasetError(f"{where}: field 'question': every message needs a "
                                   "string 'content'")
            if m.get("role") == "system" and not system:
                system = m["content"]
    return turns, system


def _user_text(turn: list[dict]) -> str:
    return "\n".join(m["content"] for m in turn if m.get("role") == "user").strip()


class _Reader:
    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, str] = {}  # relative path -> sha256

    def rows(self, rel: str) -> list[dict]:
        path = self.root / rel
        try:
            self.files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            raise DatasetError(f"{path}: file not found (package {PACKAGE} "
                               f"{PACKAGE_VERSION} ships it; {INSTALL_HINT})") from None
        return read_jsonl(path)

    def questions(self, stem: str, with_answers: bool = True) -> list[tuple[dict, dict | None]]:
        rows = self.rows(f"{stem}.json")
        if not with_answers:
            return [(r, None) for r in rows]
        answers = {}
        for n, a in enumerate(self.rows(f"possible_answer/{stem}.json"), 1):
            where = f"{self.root / 'possible_answer' / (stem + '.json')}:{n}"
            answers[_field(a, "id", str, where)] = a
        out = []
        for n, r in enumerate(rows, 1):
            where = f"{self.root / (stem + '.json')}:{n}"
            rid = _field(r, "id", str, where)
            if rid not in answers:
                raise DatasetError(f"{where}: id {rid!r} has no entry in "
                                   f"possible_answer/{stem}.json")
            out.append((r, answers[rid]))
        return out


def _calls(answer: dict, where: str) -> list[dict]:
    gt = _field(answer, "ground_truth", list, where)
    for call in gt:
        if not isinstance(call, dict) or len(call) != 1:
            raise DatasetError(f"{where}: field 'ground_truth': each call must be an object "
                               "{function name: {parameter: [allowed values]}}")
    return gt


def call_name(code: str, where: str) -> str:
    """`mv(source='a', destination='b')` -> 'mv' (multi-turn answers are Python calls)."""
    try:
        node = ast.parse(code.strip(), mode="eval").body
    except SyntaxError:
        raise DatasetError(f"{where}: field 'ground_truth': {code!r} is not a call") from None
    if not isinstance(node, ast.Call):
        raise DatasetError(f"{where}: field 'ground_truth': {code!r} is not a call")
    return ast.unparse(node.func)


def load(root: Path | None = None) -> Dataset:
    """Every BFCL category the suite uses, from `root` (default: the installed package).

    One function past a screen on purpose: each BFCL file maps to items by a few
    lines of its own (the nested helpers), and the list of files is read here top to
    bottom, in one place, as the dataset's table of contents.
    """
    root = Path(root) if root is not None else data_dir()
    rd = _Reader(root)
    items: list[Item] = []

    def tools(row: dict, where: str) -> list[Tool]:
        fns = row.get("function", [])
        if not isinstance(fns, list):
            raise DatasetError(f"{where}: field 'function' must be a list")
        return [tool_of(f, where) for f in fns]

    for stem in SELECTION:
        for n, (row, ans) in enumerate(rd.questions(stem), 1):
            where = f"{root / (stem + '.json')}:{n}"
            turns, system = _question(row, where)
            calls = _calls(ans, where)
            cands = tools(row, where)
            gold = next(iter(calls[0]))
            if gold not in {t.name for t in cands}:
                raise DatasetError(f"{where}: the answer's function {gold!r} is not among the "
                                   "item's functions")
            q = _user_text(turns[0])
            items.append(Item(row["id"], "selection", q, cands, [gold], answer=calls,
                              system=system, source=stem))
            items.append(Item(row["id"] + "@pool", "selection_pool", q, cands, [gold],
                              answer=calls, system=system, source=stem, group=row["id"]))
    for stems, call, answered in ((TIMING_NO_CALL, False, False), (TIMING_CALL, True, None)):
        for stem in stems:
            with_answers = answered is None and stem != "BFCL_v4_live_relevance"
            for n, (row, ans) in enumerate(rd.questions(stem, with_answers), 1):
                where = f"{root / (stem + '.json')}:{n}"
                turns, system = _question(row, where)
                cands = tools(row, where)
                if call and not cands:
                    raise DatasetError(f"{where}: a relevance item needs functions")
                gold = [next(iter(_calls(ans, where)[0]))] if ans else []
                items.append(Item(_field(row, "id", str, where), "timing",
                                  _user_text(turns[0]), cands, gold, call=call,
                                  answer=_calls(ans, where) if ans else None,
                                  system=system, source=stem))
    for stem in PARALLEL:
        for n, (row, ans) in enumerate(rd.questions(stem), 1):
            where = f"{root / (stem + '.json')}:{n}"
            turns, system = _question(row, where)
            calls = _calls(ans, where)
            items.append(Item(row["id"], "planning", _user_text(turns[0]), tools(row, where),
                              [next(iter(c)) for c in calls], answer=calls, system=system,
                              source=stem))
    docs: dict[str, list[Tool]] = {}
    for cls, fname in FUNC_DOCS.items():
        rel = f"multi_turn_func_doc/{fname}"
        docs[cls] = [tool_of(f, f"{root / rel}:{n}") for n, f in enumerate(rd.rows(rel), 1)]
    for stem in MULTI_TURN:
        for n, (row, ans) in enumerate(rd.questions(stem), 1):
            where = f"{root / (stem + '.json')}:{n}"
            turns, _ = _question(row, where)
            classes = _field(row, "involved_classes", list, where)
            unknown = [c for c in classes if c not in docs]
            if unknown:
                raise DatasetError(f"{where}: field 'involved_classes': no function docs "
                                   f"for {unknown}")
            excluded = set(row.get("excluded_function") or [])
            cands = [t for c in classes for t in docs[c] if t.name not in excluded]
            gt = _field(ans, "ground_truth", list, where)
            if len(gt) != len(turns):
                raise DatasetError(f"{where}: {len(turns)} turns but {len(gt)} ground-truth "
                                   "turns in possible_answer")
            for k, (turn, calls) in enumerate(zip(turns, gt, strict=True)):
                if not isinstance(calls, list):
                    raise DatasetError(f"{where}: field 'ground_truth': turn {k} must be a list")
                names = [call_name(c, where) for c in calls]
                text = _user_text(turn)
                if not names or not text:  # a turn that needs no call is not a plan
                    continue
                items.append(Item(f"{row['id']}/turn{k}", "planning", text, cands, names,
                                  ordered=True, source=stem, group=row["id"]))
    pool = pool_of([i for i in items if i.category != "selection_pool"])
    names = {t.name for t in pool}
    for item in items:  # every pool question's answer is in the pool
        if item.category == "selection_pool" and item.gold[0] not in names:
            raise DatasetError(f"{item.source}: {item.id}: gold {item.gold[0]!r} not in pool")
    info = {"name": "BFCL v4", "package": PACKAGE, "version": version() if root is None
            or _installed_root(root) else "unknown (files outside the package)",
            "licence": LICENCE, "source": str(root), "files": dict(sorted(rd.files.items()))}
    return Dataset("bfcl", items, pool, info)


def _installed_root(root: Path) -> bool:
    try:
        return root.resolve() == data_dir().resolve()
    except DatasetError:
        return False
