"""Which negative pairs the Negative transfer page lists by default, and how its table reads."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

CLEAR = "clearly harmful (2+ standard errors below 0)"
STRONGEST = "the strongest 40"
EVERY = "every negative pair"
STRONGEST_N = 40
Z_CLEAR = -2.0


def pick_pairs(table: pd.DataFrame, mode: str, *, threshold: float, target: str | None,
               n: int) -> tuple[pd.DataFrame, str]:
    """The pairs to list (worst first) and a one-line headline saying what they are out of what."""
    total = len(table)
    rows = table
    if target is not None:
        rows = rows[rows["target"] == target]
    if threshold > 0:
        rows = rows[rows["transfer"] < -threshold]
    if mode == CLEAR:
        rows = rows[rows["z"] <= Z_CLEAR]
    elif mode == STRONGEST:
        rows = rows.head(STRONGEST_N)
    rows = rows.assign(harm=-rows["transfer"]).reset_index(drop=True)
    what = {CLEAR: "clearly harmful pairs (harm at least 2 standard errors)",
            STRONGEST: f"strongest harms (of at most {STRONGEST_N})",
            EVERY: "negative pairs"}[mode]
    where = f" that hurt **{target}**" if target is not None else ""
    return rows, (f"**{len(rows)}** {what}{where} · {total} of the {n * (n - 1)} off-diagonal pairs are below 0 "
                  "at all (most small ones are within noise).")


def negative_columns(rows: pd.DataFrame) -> tuple[list[str], dict[str, Any]]:
    """Columns to show (uncertainty and counts only where the matrix has them) and their headings."""
    config = {"source": st.column_config.TextColumn("source (trained with)"),
              "target": st.column_config.TextColumn("target (hurt)"),
              "transfer": st.column_config.NumberColumn("T[source, target]"),
              "harm": st.column_config.NumberColumn("harm (−T)"),
              "uncertainty": st.column_config.NumberColumn("std. error"),
              "z": st.column_config.NumberColumn("z = T / s.e.",
                                                 help="Standard errors below 0: the confidence of the harm."),
              "count": st.column_config.NumberColumn("observations (seeds/subsets)")}
    cols = ["source", "target", "transfer", "harm"]
    cols += [c for c in ("uncertainty", "z", "count") if c in rows and rows[c].notna().any()]
    return cols, config


def styled(rows: pd.DataFrame) -> Any:
    """Numbers formatted alike, a missing value shown blank (not "None"); sorting stays numeric."""
    fmt = {"transfer": "{:.4g}", "harm": "{:.4g}", "uncertainty": "{:.3g}", "z": "{:.2f}", "count": "{:.0f}"}
    return rows.style.format({k: v for k, v in fmt.items() if k in rows}, na_rep="")
