"""What a model family is and what it can do, without torch.

Each family's package declares its families in its `spec.py` (no torch there either); the
registry (`inference/registry.py`) collects them. Everything outside a family's package asks a
`Family` what it can do and never compares model names: the Model panel fills its two roles from
the capabilities, the command line its `--model` choices, the engine loads through `load` /
`load_click`, which name the module that builds the model ("module:function", imported only when
a model is loaded, so listing families imports no torch).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

# what a family can do (the words `segstudio models` prints)
CLICK = "click"  # answers point prompts with candidate masks (the promptable protocol)
BOX = "box"  # answers a box prompt
PRELABEL_CLASSES = "pre-label classes"  # a class for every pixel of an image
PRELABEL_INSTANCES = "pre-label instances"  # each object of an image, with its class
TRAIN = "train"  # trains on the project's done images (segstudio train, the Train panel)
LEARN_LIVE = "learn live"  # updates while the person annotates (Learn as I annotate)
CAPABILITIES = (CLICK, BOX, PRELABEL_CLASSES, PRELABEL_INSTANCES, TRAIN, LEARN_LIVE)

# the two roles in the window (DESIGN.md "Two roles in the window")
CLICK_ROLE = "click"
PRELABEL_ROLE = "pre-label"


@dataclass(frozen=True)
class WeightsFile:
    """A file a family needs: where it is (or would be) and whether it is there."""
    name: str
    path: str | None
    here: bool
    note: str = ""


@dataclass(frozen=True)
class Family:
    key: str  # the --model choice and ModelSpec.arch
    title: str  # what the Model panel shows
    package: str  # the family's package (segstudio.inference.<name>)
    capabilities: frozenset[str]
    load: str | None = None  # "module:function" (ModelSpec, DeviceInfo, Project | None) -> Segmenter
    load_click: str | None = None  # "module:function" (ModelSpec, DeviceInfo, Project | None) -> Promptable
    checkpoint_kind: str | None = None  # the kind its trained checkpoints are stored as ("unet", "maskrcnn")
    trainer: dict[str, Any] = field(default_factory=dict)  # trainer settings its first fine-tuning starts from
    variants: tuple[tuple[str, str], ...] = ()  # (variant, title); the first is the default
    weights: str | None = None  # "module:function" () -> list[WeightsFile]: the files it needs
    packages: tuple[str, ...] = ()  # import names it needs beyond torch and torchvision
    install_hint: str = ""
    options: tuple[str, ...] = ()  # the Model panel's options that apply ("score", "mask", "per_component", "tta")
    note: str = ""  # one line for `segstudio models`
    # read by the Model panel: what it loads with no checkpoint chosen ("": it needs one), and the
    # models it offers by name ("module:function" () -> list[(title, ModelSpec.options)])
    pretrained: str = ""
    presets: str | None = None
    # the rest are read by the command line, the training code and the runtime (never by the window):
    cli_options: tuple[str, ...] = ()  # `segstudio predict` flags of its own, by dest (= ModelSpec.options keys)
    cli_args: str | None = None  # "module:function" (argparse parser) -> {dest: flag}: adds those flags
    cluster: bool = False  # has a Ray path (`segstudio predict/train --ray`)
    train: str | None = None  # "module:function" (project, out, config, **kw) -> TrainResult
    train_config: str | None = None  # "module:Class": the config `train` takes
    catalog: str | None = None  # "module:function" () -> list[weights_catalog.Offer]: files `segstudio weights` lists
    reads_state_dict: str | None = None  # "module:function" (dict, Path) -> Checkpoint | None: a plain state dict

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    @property
    def roles(self) -> tuple[str, ...]:
        """The window roles it can fill: the click model, the pre-label model, or both."""
        out = []
        if self.load_click is not None:  # a model of its own for clicks (a pre-label model answers with its prediction)
            out.append(CLICK_ROLE)
        if (self.can(PRELABEL_CLASSES) or self.can(PRELABEL_INSTANCES)) and self.can(TRAIN):
            out.append(PRELABEL_ROLE)  # the window's pre-label model is the one its learner trains
        return tuple(out)

    @property
    def semantic(self) -> bool:
        """A class for every pixel (its click answer is the class area under the click)."""
        return self.can(PRELABEL_CLASSES)


def resolve(ref: str) -> Any:
    """The object a "module:function" reference names, imported now."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)
