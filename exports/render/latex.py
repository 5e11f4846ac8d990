"""LaTeX: a booktabs `tabular` inside a `table` float; no packages beyond booktabs."""

from __future__ import annotations

from exports.stats import Estimate
from exports.table import Table, fmt_cell

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "×": r"$\times$", "–": "--", "√": r"$\surd$", "⁶": r"$^{6}$",
    "≤": r"$\leq$", "≥": r"$\geq$", "·": r"$\cdot$", "<": r"$<$", ">": r"$>$", "→": r"$\to$",
}


WIDE = 8  # more columns than this: a two-column-wide float in a smaller font


def escape(text: str) -> str:
    """Text safe for pdflatex: specials escaped, the few symbols we emit mapped to math."""
    out = []
    for ch in text:
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ord(ch) > 127:
            raise ValueError(f"no LaTeX mapping for {ch!r} in {text!r}")
        else:
            out.append(ch)
    return "".join(out)


def render(table: Table) -> str:
    numeric = [any(isinstance(r.get(c.key), int | float | Estimate) and not isinstance(r.get(c.key), bool)
                   for r in table.rows) for c in table.columns]
    spec = "".join("r" if n else "l" for n in numeric)
    lines = [
        f"% sagetui export: table {table.name}, runs {_ids(table.run_ids)}",
        r"\begin{table*}[t]" if len(table.columns) > WIDE else r"\begin{table}[t]", r"\centering",
        r"\caption{" + escape(table.full_caption()) + "}",
        r"\label{tab:" + table.name + "}",
        *([r"\small", r"\setlength{\tabcolsep}{4pt}"] if len(table.columns) > WIDE else []),
        r"\begin{tabular}{" + spec + "}", r"\toprule",
        *_header(table), r"\midrule",
    ]
    for row in table.rows:
        lines.append(" & ".join(escape(fmt_cell(row.get(c.key), c)) for c in table.columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for i, note in enumerate(table.footnotes, 1):
        lines.append(r"\par\smallskip{\footnotesize " + f"({i}) " + escape(note) + "}")
    lines.append(r"\end{table*}" if len(table.columns) > WIDE else r"\end{table}")
    return "\n".join(lines) + "\n"


def _header(table: Table) -> list[str]:
    """One header row, or two when columns are grouped (spanning header + cmidrule + sub-headers)."""
    cols = table.columns
    if not any(c.group for c in cols):
        return [" & ".join(escape(c.header) for c in cols) + r" \\"]
    top, rules, i = [], [], 0
    while i < len(cols):
        j = i
        while j + 1 < len(cols) and cols[i].group and cols[j + 1].group == cols[i].group:
            j += 1
        if cols[i].group:
            top.append(r"\multicolumn{" + str(j - i + 1) + "}{c}{" + escape(cols[i].group or "") + "}")
            rules.append(r"\cmidrule(lr){" + f"{i + 1}-{j + 1}" + "}")
        else:
            top.append("")
        i = j + 1
    bottom = [escape(c.sub if c.group and c.sub else c.header) for c in cols]
    return [" & ".join(top) + r" \\", " ".join(rules), " & ".join(bottom) + r" \\"]


def _ids(ids: list[int]) -> str:
    return ",".join(map(str, ids))
