"""Every question and every registered figure, in report order; importing it does not import torch."""

from __future__ import annotations

import dlatoms.atlas.figures  # noqa: F401
import dlatoms.finetune.figures  # noqa: F401
import dlatoms.mlp.figures  # noqa: F401  (importing a question's figures registers them)
from dlatoms.core.figures import FigureSpec, figure_spec, registered_figures

# Every question, in the report's order, with its label: 1-3 on the MLP (dlatoms.mlp), 4 fine-tuning
# (dlatoms.finetune).
QUESTION_LABELS = {
    "init": "Question 1",
    "layers": "Question 2",
    "regularization": "Question 3",
    "finetune": "Question 4",
}
QUESTIONS = tuple(QUESTION_LABELS)


def _in_report_order() -> dict[str, FigureSpec]:
    figures = registered_figures()
    unknown = sorted({spec.question for spec in figures.values()} - set(QUESTIONS))
    if unknown:
        raise ValueError(f"figures registered for unknown question(s) {unknown}; known: {QUESTIONS}")
    return {
        name: spec for question in QUESTIONS for name, spec in figures.items() if spec.question == question
    }


# Figure name -> FigureSpec (.name .question .tables .title .caption .analysis .params(config)).
FIGURES: dict[str, FigureSpec] = _in_report_order()

__all__ = ["FIGURES", "QUESTIONS", "QUESTION_LABELS", "FigureSpec", "figure_spec"]
