"""Agent metrics, small and exact (each checked on hand-made cases in the tests).

Selection: top-k accuracy, MRR (mean of 1/rank of the right tool, 0 if absent),
recall@k (one right tool per item, so recall@k = top-k accuracy; kept under its
own name because multi-tool items would differ). Planning: step accuracy
(position-wise matches / gold length), sequence match (exact), plan success
(the gold steps appear in order in the plan — longest common subsequence = gold
length — with at most one extra step). Timing: accuracy, precision, recall, F1
of "call a tool" as the positive class.
"""

from __future__ import annotations


def reciprocal_rank(ranking: list[str], gold: str) -> float:
    try:
        return 1.0 / (ranking.index(gold) + 1)
    except ValueError:
        return 0.0


def top_k(ranking: list[str], gold: str, k: int) -> bool:
    return gold in ranking[:k]


def lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def step_accuracy(plan: list[str], gold: list[str]) -> float:
    return sum(p == g for p, g in zip(plan, gold, strict=False)) / len(gold)


def plan_success(plan: list[str], gold: list[str]) -> bool:
    return lcs(plan, gold) == len(gold) and len(plan) <= len(gold) + 1


def binary_scores(predicted: list[bool], actual: list[bool]) -> dict[str, float]:
    tp = sum(p and a for p, a in zip(predicted, actual, strict=True))
    fp = sum(p and not a for p, a in zip(predicted, actual, strict=True))
    fn = sum(a and not p for p, a in zip(predicted, actual, strict=True))
    tn = len(actual) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / len(actual), "precision": precision, "recall": recall,
            "f1": f1}
