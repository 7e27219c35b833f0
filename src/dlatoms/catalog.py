"""Every question and every registered figure, in report order; importing it does not import torch.

The questions are plain data. The figures are registered by importing each question's figures module
(matplotlib and seaborn, ~1.5 s): that happens on the first use of `FIGURES`, `figure_spec` or
`FigureSpec`, so that a job which needs only the questions (collect_claims) starts without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlatoms.core.figures import FigureSpec

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
    import dlatoms.atlas.figures  # noqa: F401
    import dlatoms.finetune.figures  # noqa: F401
    import dlatoms.mlp.figures  # noqa: F401  (importing a question's figures registers them)
    from dlatoms.core.figures import registered_figures

    figures = registered_figures()
    unknown = sorted({spec.question for spec in figures.values()} - set(QUESTIONS))
    if unknown:
        raise ValueError(f"figures registered for unknown question(s) {unknown}; known: {QUESTIONS}")
    return {
        name: spec for question in QUESTIONS for name, spec in figures.items() if spec.question == question
    }


def load_figures() -> dict[str, FigureSpec]:
    """Register every question's figures (once) and return FIGURES; the figure jobs call it first."""
    if "FIGURES" not in globals():
        from dlatoms.core.figures import FigureSpec, figure_spec

        figures = _in_report_order()
        globals().update(FIGURES=figures, FigureSpec=FigureSpec, figure_spec=figure_spec)
    return globals()["FIGURES"]


def __getattr__(name: str) -> Any:
    # FIGURES: figure name -> FigureSpec (.name .question .tables .title .caption .analysis .params(config)).
    if name in ("FIGURES", "FigureSpec", "figure_spec"):
        load_figures()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# FIGURES and figure_spec are module attributes on first use (__getattr__ above).
__all__ = ["FIGURES", "QUESTIONS", "QUESTION_LABELS", "FigureSpec", "figure_spec", "load_figures"]  # noqa: F822
