"""Rule inputs from indicators and model scores: the one mapping from the vocabulary's sources to values.

Every vocabulary term names its source (``indicator:VIEW:NAME`` or ``model:OUTPUT``); this module reads those
sources and converts each value to the term's type, for one client (the API) or for the whole population.
"""

from __future__ import annotations

import pandas as pd

from rules.vocabulary import Term, Vocabulary


def indicator_references(vocabulary: Vocabulary) -> list[str]:
    """The ``view:indicator`` references the rules read."""
    return list(dict.fromkeys(vocabulary.indicator_sources().values()))


def _column(term: Term) -> str:
    return term.source.rsplit(":", 1)[1]


def population_inputs(vocabulary: Vocabulary, features: pd.DataFrame, scores: pd.DataFrame) -> list[dict]:
    """One input dict per row; ``features`` holds indicator columns by name, ``scores`` the model outputs,
    both indexed by client id in the same order."""
    names, columns = [], []
    for name, term in vocabulary.terms.items():
        source = scores if term.source.startswith("model:") else features
        column = source[_column(term)]
        if term.type == "string":
            values = column.astype(str).tolist()
        elif term.type == "boolean":
            values = column.astype(bool).tolist()
        elif term.type == "integer":
            values = column.fillna(term.default).round().astype("int64").tolist()
        else:
            values = column.astype("float64").fillna(float(term.default)).tolist()
        names.append(name)
        columns.append(values)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
