"""The agent benchmark, generated deterministically from the templates below.

Provenance: every item is produced by this file with seed 0 — tools are
object × action pairs (20 objects × 6 actions = 120 tools), queries fill
per-action phrasings with object synonyms and slot values, so a query rarely
repeats its tool's description word for word (that is what separates keyword
from embedding retrieval). Planning tasks chain 2–4 tool queries; timing items
mix tool-needing requests with small talk that needs no tool. The JSONL files
in data/ are this generator's output (`python -m sagetui.agents.dataset`
rewrites them; a test checks they are unchanged).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
SEED = 0

# object id, display name, synonyms used in queries, slot values
OBJECTS = [
    ("email", "email message", ["mail", "message", "e-mail"], ["the quarterly report", "the offsite", "my landlord"]),
    ("calendar", "calendar event", ["meeting", "appointment", "event"], ["the design review", "lunch with Sam", "the dentist"]),
    ("file", "file in cloud storage", ["document", "doc", "spreadsheet"], ["budget 2026", "the thesis draft", "tax forms"]),
    ("contact", "address-book contact", ["person in my contacts", "phone number", "contact card"], ["Maria Lopez", "the plumber", "my manager"]),
    ("note", "personal note", ["memo", "jotting", "notebook entry"], ["gift ideas", "book quotes", "trip packing"]),
    ("reminder", "reminder", ["alert", "nudge", "to-do alarm"], ["call mom", "pay rent", "water the plants"]),
    ("invoice", "customer invoice", ["bill", "payment request", "receipt"], ["ACME Corp", "order 4411", "the March consulting"]),
    ("flight", "flight booking", ["plane ticket", "airline reservation", "flight"], ["Lisbon", "Tokyo on Friday", "the red-eye to Boston"]),
    ("hotel", "hotel reservation", ["room booking", "place to stay", "accommodation"], ["Rome", "the conference hotel", "two nights in Oslo"]),
    ("restaurant", "restaurant table reservation", ["dinner booking", "table", "restaurant booking"], ["an Italian place", "Friday at 8", "four people"]),
    ("ticket", "support ticket", ["helpdesk case", "issue report", "bug report"], ["the login outage", "VPN access", "printer on floor 3"]),
    ("record", "database record", ["row", "table entry", "DB entry"], ["customer 1182", "the orders table", "stale sessions"]),
    ("repo", "git repository", ["codebase", "project repo", "source repository"], ["the billing service", "our docs site", "the ML pipeline"]),
    ("playlist", "music playlist", ["song list", "mix", "queue of tracks"], ["running songs", "jazz for focus", "road trip"]),
    ("album", "photo album", ["picture collection", "photos", "gallery"], ["the wedding", "Iceland 2025", "the kids' birthday"]),
    ("cart", "shopping cart", ["basket", "checkout list", "order in progress"], ["running shoes", "a coffee grinder", "printer ink"]),
    ("expense", "expense report", ["reimbursement claim", "travel expenses", "cost report"], ["the Berlin trip", "client dinner", "taxi rides"]),
    ("task", "project task", ["work item", "ticket on the board", "to-do item"], ["the API migration", "onboarding docs", "sprint 14"]),
    ("post", "social media post", ["tweet", "status update", "announcement"], ["our launch", "the hiring news", "the meetup"]),
    ("forecast", "weather forecast", ["weather", "temperature outlook", "rain prediction"], ["Paris tomorrow", "the weekend", "Seattle next week"]),
]

# action id, description verb phrase, query phrasings ({syn} object synonym, {slot} value)
ACTIONS = [
    ("search", "Search and retrieve existing {name}s matching a query",
     ["Can you find the {syn} about {slot}?", "Look up my {syn} regarding {slot}", "Where is that {syn} on {slot}?"]),
    ("create", "Create a new {name}",
     ["Make a new {syn} for {slot}", "Please set up a {syn} about {slot}", "I need a fresh {syn} for {slot}"]),
    ("delete", "Delete an existing {name} permanently",
     ["Get rid of the {syn} about {slot}", "Remove that {syn} for {slot}", "Trash the {syn} concerning {slot}"]),
    ("update", "Update or edit the fields of an existing {name}",
     ["Change the {syn} for {slot}", "Edit the details of the {syn} on {slot}", "Modify my {syn} about {slot}"]),
    ("list", "List all {name}s, optionally filtered",
     ["Show me every {syn} I have", "Give me an overview of all my {syn}s", "What {syn}s are there right now?"]),
    ("summarize", "Summarize the content of a {name}",
     ["Give me the gist of the {syn} about {slot}", "TL;DR of the {syn} on {slot}, please", "Briefly recap the {syn} for {slot}"]),
]

# How planning tasks join their steps (the planner segments on them).
PLAN_JOINS = (", then ", " and after that ", ". Next, ")

SMALL_TALK = [
    "Thanks, that's all for now!", "Good morning, how are you?", "You're really helpful.",
    "Tell me a joke about penguins.", "What's your favourite colour?", "Never mind, forget it.",
    "Haha, that's funny.", "Can you explain what a metaphor is?", "I'm just thinking out loud.",
    "Ok, great, bye!", "How do you say hello in French?", "What is two plus two?",
    "Write a haiku about autumn.", "Who wrote Hamlet?", "I appreciate it, cheers.",
    "Let's chat about movies.", "Why is the sky blue?", "Sorry, wrong window.",
    "Give me a synonym for happy.", "That makes sense, thank you.", "Hmm, interesting.",
    "What does CPU stand for?", "Nice talking to you.", "Could you rephrase your last answer?",
    "Is a tomato a fruit?",
]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str


def tools() -> list[Tool]:
    return [Tool(f"{obj}.{act}", desc.format(name=name))
            for obj, name, _, _ in OBJECTS for act, desc, _ in ACTIONS]


def _query(rng: random.Random, obj: tuple, act: tuple, k: int) -> str:
    _, _, syns, slots = obj
    return act[2][k].format(syn=rng.choice(syns), slot=rng.choice(slots))


def selection_items() -> list[dict]:
    """One item per tool × phrasing (360): query → the one right tool."""
    rng = random.Random(SEED)
    items = []
    for obj in OBJECTS:
        for act in ACTIONS:
            for k in range(len(act[2])):
                items.append({"id": f"sel-{len(items):03d}", "query": _query(rng, obj, act, k),
                              "tool": f"{obj[0]}.{act[0]}"})
    return items


def planning_items(n: int = 100) -> list[dict]:
    """Tasks of 2–4 steps, each step one tool, joined as a user would write them."""
    rng = random.Random(SEED + 1)
    joins = list(PLAN_JOINS)
    out = []
    for i in range(n):
        steps = []
        for _ in range(rng.randint(2, 4)):
            obj, act = rng.choice(OBJECTS), rng.choice(ACTIONS)
            steps.append((f"{obj[0]}.{act[0]}", _query(rng, obj, act, rng.randrange(3))))
        text = steps[0][1].rstrip("?.!")
        for _, q in steps[1:]:
            j = rng.choice(joins)
            q = q.rstrip("?.!")
            text += j + (q[0].lower() + q[1:] if j != ". Next, " else q)
        out.append({"id": f"plan-{i:03d}", "task": text + ".", "steps": [s for s, _ in steps]})
    return out


def timing_items(n: int = 100) -> list[dict]:
    """Half need a tool (a request from the selection phrasings), half are small talk."""
    rng = random.Random(SEED + 2)
    out = []
    for i in range(n):
        if i % 2 == 0:
            obj, act = rng.choice(OBJECTS), rng.choice(ACTIONS)
            out.append({"id": f"time-{i:03d}", "utterance": _query(rng, obj, act, rng.randrange(3)),
                        "call_tool": True})
        else:
            out.append({"id": f"time-{i:03d}", "utterance": rng.choice(SMALL_TALK),
                        "call_tool": False})
    return out


def generate() -> dict[str, list[dict]]:
    return {"tools": [asdict(t) for t in tools()], "selection": selection_items(),
            "planning": planning_items(), "timing": timing_items()}


def load() -> dict[str, list[dict]]:
    """The shipped dataset (data/*.jsonl)."""
    out = {}
    for name in ("tools", "selection", "planning", "timing"):
        path = DATA_DIR / f"{name}.jsonl"
        out[name] = [json.loads(line) for line in path.read_text().splitlines() if line]
    return out


def write(directory: Path = DATA_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in generate().items():
        (directory / f"{name}.jsonl").write_text(
            "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


if __name__ == "__main__":
    write()
    print(f"wrote {DATA_DIR}")
