"""Every question and every registered figure, in report order (figures: a stub until the registry)."""

from __future__ import annotations

from dataclasses import dataclass

# Every question, in the report's order: 1-3 on the MLP (dlatoms.mlp), 4 fine-tuning (dlatoms.finetune).
QUESTIONS = ("init", "layers", "regularization", "finetune")


@dataclass(frozen=True)
class FigureInfo:
    name: str
    question: str
    title: str
    caption: str


def _figures() -> dict[str, FigureInfo]:
    from dlatoms.finetune.report import FIGURE_CAPTIONS as FT_CAPTIONS
    from dlatoms.finetune.report import FIGURE_TITLES as FT_TITLES
    from dlatoms.mlp.figures import FIGURES as MLP
    from dlatoms.mlp.report import FIGURE_CAPTIONS as MLP_CAPTIONS

    out = {n: FigureInfo(n, f.question, f.title, MLP_CAPTIONS[n]) for n, f in MLP.items()}
    out.update({n: FigureInfo(n, "finetune", t, FT_CAPTIONS[n]) for n, t in FT_TITLES.items()})
    return out


FIGURES = _figures()
