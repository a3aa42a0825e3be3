"""The training recipe: every option of a training run, its default, and how it travels.

One recipe for every way training starts, so the laptop and the cloud train the same model:
`dressvision train`, `python -m batch_jobs.train` (a hand-submitted Batch job), the first
training a fresh deployment submits by itself and the retraining `collect` submits. The
defaults are the dataclass's; the deployment's settings (`shared.env`: the image size and the
batch size) replace theirs in `TrainingRecipe.from_settings`; an option given on a command
line replaces both. Submitters carry the whole recipe as job arguments (`to_args`), so a job
never depends on its own defaults.

Torch-free: the Lambdas that submit training import it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Literal

from shared.env import IMAGE_SIZE, TRAIN_BATCH_SIZE
from shared.errors import ConfigurationError

if TYPE_CHECKING:
    from shared.env import Settings

DEFAULT_ARCH = "resnet18"
DEFAULT_IMAGE_SIZE = 128
DEFAULT_BATCH_SIZE = 32
DEFAULT_CROP_MARGIN = 0.1  # the located box widened by 10% per side
DEFAULT_BODICE = 0.3  # the top 30% of the crop gets half the rows: the neckline 1.67x larger
# Training images' hues are rotated by up to this share of the colour wheel (saturation and
# brightness kept): the model cannot tell a product's labels from its colour, and learns the
# shapes (bench/results/train_quality.json). 0 when a facet is about the hue itself.
DEFAULT_HUE = 0.5
# What `review` judges the train split's labels with: the training dynamics by default (free);
# K fold models' out-of-fold predictions replace them with --oof-folds K (K extra trainings on
# (K-1)/K of the data: twice the time at K=2, and worse, bench/results/judge_options.json).
DEFAULT_OOF_FOLDS = 0
# The relabel loop's retrainings hold one fold of the train products out (a different one each
# round, DRESSVISION_LOOP_HOLDOUT_FOLDS): the model's own predictions judge those labels, which
# the training dynamics cannot once a product's photos all carry the same wrong label
# (bench/results/holdout_judge.json). A plain `dressvision train` holds nothing out.
DEFAULT_HOLDOUT_FOLDS = 0

LocatorChoice = Literal["auto", "train", "current", "none"]
LOCATOR_CHOICES: tuple[str, ...] = ("auto", "train", "current", "none")
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")


def facet_list(text: str) -> tuple[str, ...]:
    """`--facets a,b` as a tuple of names."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


@dataclass(frozen=True)
class TrainingRecipe:
    """What one training run does. The defaults meet the training budget on a 2-core CPU
    (bench/train_quality.py)."""

    facets: tuple[str, ...] | None = None  # None: every taxonomy facet
    arch: str = DEFAULT_ARCH
    weights: str | None = None  # torchvision weights name or state dict file; None: random
    stn: bool = False
    image_size: int = DEFAULT_IMAGE_SIZE
    epochs: int = 45
    batch_size: int = DEFAULT_BATCH_SIZE
    optimizer: str = "adamw"
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    ema: float = 0.0
    class_weights: bool = True
    locator: LocatorChoice = "auto"
    crop_margin: float = DEFAULT_CROP_MARGIN
    bodice: float = DEFAULT_BODICE
    hue: float = DEFAULT_HUE
    seed: int = 0
    oof_folds: int = DEFAULT_OOF_FOLDS
    holdout_folds: int = DEFAULT_HOLDOUT_FOLDS
    holdout_fold: int = 0
    dynamics: bool = True
    amp: bool = True
    force: bool = False

    def __post_init__(self) -> None:
        if self.locator not in LOCATOR_CHOICES:
            raise ValueError(f"locator must be one of {', '.join(LOCATOR_CHOICES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be between 0 and 0.5 (of the colour wheel), got {self.hue}")
        if self.holdout_folds == 1 or self.holdout_folds < 0:
            raise ValueError(
                f"holdout folds must be 0 (off) or at least 2, got {self.holdout_folds}"
            )
        if self.holdout_folds and not 0 <= self.holdout_fold < self.holdout_folds:
            raise ValueError(
                f"holdout fold must be between 0 and {self.holdout_folds - 1}, "
                f"got {self.holdout_fold}"
            )
        if self.facets is not None:
            object.__setattr__(self, "facets", tuple(self.facets))

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingRecipe:
        """The deployment's recipe: the defaults with its configured image and batch sizes and
        starting weights (`DRESSVISION_IMAGE_SIZE`, `DRESSVISION_TRAIN_BATCH_SIZE`,
        `DRESSVISION_TRAIN_WEIGHTS`), where it sets them."""
        configured = {
            "image_size": settings.image_size,
            "batch_size": settings.train_batch_size,
            "weights": settings.train_weights,
        }
        return cls(**{name: value for name, value in configured.items() if value is not None})

    @classmethod
    def from_args(cls, args: argparse.Namespace, base: TrainingRecipe) -> TrainingRecipe:
        """`base` with the options `args` holds (parsed with `add_recipe_arguments`: an option
        that was not given is absent, and keeps `base`'s value)."""
        given = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        try:
            return replace(base, **given)
        except ValueError as exc:  # a value out of range: an error to read, not a traceback
            raise ConfigurationError(str(exc)) from exc

    def to_args(self) -> list[str]:
        """Job arguments that give this recipe back through `add_recipe_arguments` over any
        deployment's recipe (`from_settings`): every option is written out, except the two
        whose value None no setting changes (facets: every facet; weights: random init)."""
        args: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + f.name.replace("_", "-"))
            elif value is None:
                continue  # facets: every facet; weights: random init (the parser's None)
            elif isinstance(value, tuple):
                args += [flag, ",".join(value)]
            else:
                args += [flag, repr(value) if isinstance(value, float) else str(value)]
        return args


def trains_locator(choice: str, current_locator: str | None) -> bool:
    """Whether a run with `--locator choice` trains a locator first: `train` always, `auto`
    when no locator is current (a fresh deployment), `current` and `none` never."""
    return choice == "train" or (choice == "auto" and current_locator is None)


def add_recipe_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the recipe's options to `parser`. An option not given stays absent from the parsed
    namespace (`TrainingRecipe.from_args` fills it in from the settings' recipe), so the help
    shows the defaults while the deployment's settings still apply."""
    d = TrainingRecipe()
    keep = argparse.SUPPRESS
    add = parser.add_argument
    add(
        "--facets",
        type=facet_list,
        default=keep,
        help="comma-separated facets to train (default: every taxonomy facet)",
    )
    add("--arch", default=keep, help=f"torchvision ResNet backbone (default {d.arch})")
    add(
        "--weights",
        default=keep,
        metavar="NAME|FILE",
        help="start the backbone from torchvision's named weights of --arch (IMAGENET1K_V1, "
        "fetched into the torch hub cache) or a torchvision state dict FILE; random without",
    )
    add(
        "--stn",
        action=argparse.BooleanOptionalAction,
        default=keep,
        help="spatial transformer in front of the backbone (identity at start; default off)",
    )
    add(
        "--image-size",
        type=int,
        default=keep,
        help=f"input pixels (default ${IMAGE_SIZE}, else {d.image_size})",
    )
    add("--epochs", type=int, default=keep, help=f"default {d.epochs}")
    add(
        "--batch-size",
        type=int,
        default=keep,
        help=f"images per step (default ${TRAIN_BATCH_SIZE}, else {d.batch_size})",
    )
    add("--optimizer", choices=OPTIMIZERS, default=keep, help=f"default {d.optimizer}")
    add("--lr", type=float, default=keep, help=f"peak learning rate (default {d.lr})")
    add("--momentum", type=float, default=keep, help=f"SGD momentum (default {d.momentum})")
    add("--weight-decay", type=float, default=keep, help=f"default {d.weight_decay}")
    add(
        "--warmup-epochs",
        type=float,
        default=keep,
        help=f"linear warm-up before the cosine decay (default {d.warmup_epochs})",
    )
    add("--label-smoothing", type=float, default=keep, help=f"default {d.label_smoothing}")
    add(
        "--ema",
        type=float,
        default=keep,
        metavar="DECAY",
        help="keep an exponential moving average of the weights with this decay per step "
        "(e.g. 0.998) and save it; 0 = off (default)",
    )
    add(
        "--class-weights",
        action=argparse.BooleanOptionalAction,
        default=keep,
        help="balanced class weights in the loss (default on; --no-class-weights: plain "
        "cross-entropy)",
    )
    add(
        "--locator",
        choices=LOCATOR_CHOICES,
        default=keep,
        help="auto (default): train a locator first when none is current, then crop to the "
        "current locator's box; train: always train one first; current: crop with the "
        "current one only; none: whole images",
    )
    add(
        "--crop-margin",
        type=float,
        default=keep,
        help=f"widen the located box by this share per side (default {d.crop_margin})",
    )
    add(
        "--bodice",
        type=float,
        default=keep,
        help="the top share of the dress crop magnified to the upper half of the input "
        f"(default {d.bodice}; 0.5 = uniform)",
    )
    add(
        "--hue",
        type=float,
        default=keep,
        help="rotate each training image's hue by up to this share of the colour wheel, "
        "saturation and brightness kept, so the model learns shapes, not a product's colour "
        f"(default {d.hue}; 0 when a facet is about the hue itself)",
    )
    add("--seed", type=int, default=keep, help=f"default {d.seed}")
    add(
        "--oof-folds",
        type=int,
        default=keep,
        metavar="K",
        help="judge the train split's labels with out-of-fold predictions of K models, each "
        "trained without one fold of products, instead of the training dynamics (K extra "
        f"trainings on (K-1)/K of the data; default {d.oof_folds} = off)",
    )
    add(
        "--holdout-folds",
        type=int,
        default=keep,
        metavar="N",
        help="deal the train split's products into N folds and leave one out of this training "
        "(--holdout-fold): the model's own predictions judge those labels, the training "
        "dynamics the rest; the relabel loop's retrainings rotate the fold "
        f"(default {d.holdout_folds} = off)",
    )
    add(
        "--holdout-fold",
        type=int,
        default=keep,
        metavar="K",
        help=f"which of the --holdout-folds is left out, 0 to N-1 (default {d.holdout_fold})",
    )
    add(
        "--dynamics",
        action=argparse.BooleanOptionalAction,
        default=keep,
        help="store each train image's probabilities averaged over the first half of the "
        "training (after the warm-up): what review judges the train split's labels with "
        "(default on; --no-dynamics: the train split is not judged unless --oof-folds)",
    )
    add(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=keep,
        help="bf16/fp16 autocast where the device has it (default on; --no-amp: float32)",
    )
    add(
        "--force",
        action=argparse.BooleanOptionalAction,
        default=keep,
        help="promote even if the test macro F1 is worse than the current one's (default off)",
    )
    return parser


def recipe_parser() -> argparse.ArgumentParser:
    """A parser with only the recipe's options, for `argparse`'s `parents=`."""
    return add_recipe_arguments(argparse.ArgumentParser(add_help=False))


def parse_recipe(argv: Sequence[str], base: TrainingRecipe | None = None) -> TrainingRecipe:
    """The recipe that job arguments `argv` describe (over `base`, default the defaults)."""
    args, _ = recipe_parser().parse_known_args(list(argv))
    return TrainingRecipe.from_args(args, base or TrainingRecipe())
