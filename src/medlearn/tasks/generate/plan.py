"""The generator's plan: every choice a field, overridable with ``--set section.field=value``.

There are no data-dependent rules (the task's ``make_plan`` gives the defaults); their evidence is the
default run on Lipophilicity (4,200 ChEMBL molecules; ``benchmarks/generate_selfies_lstm.py``):
SELFIES LSTM, validity 1.000, uniqueness 0.994, novelty 1.000, internal diversity 0.915 from 4 epochs
(~128 steps of 128 molecules) in the 8-minute budget on 2 shared CPU threads; the AAE screening its
samples: 1.000 / 1.000 / 1.000, IntDiv 0.891.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from medlearn.errors import InputError
from medlearn.plan import NetworkSection, Plan, TrainSection, setting

#: steps per member the defaults' evidence trained (4 epochs x ~32 batches of 128 Lipophilicity molecules
#: in the 8-minute budget; the AAE benchmark run got 6 epochs): fewer in the budget is "undertrained"
EVIDENCE_STEPS = 128


@dataclass
class GeneratorNetwork(NetworkSection):
    """The token language model (``RecurrentGenerator``); ``aae`` adds the fingerprint AAE that screens an
    LSTM's samples (Kadurin et al. 2017)."""

    name: Literal["lstm", "gru", "aae"] = setting("lstm", help="lstm | gru | aae (fingerprint AAE screening "
                                                               "LSTM samples)")
    embed_dim: int = setting(64, min=1, help="token embedding size")
    hidden: int = setting(384, min=1, help="recurrent hidden size")
    layers: int = setting(2, min=1, help="recurrent layers")
    dropout: float = setting(0.1, min=0, max=0.9, help="dropout between recurrent layers")


@dataclass
class AAESection:
    """Fingerprint adversarial autoencoder (Kadurin et al. 2017), trained with ``network.name=aae``."""

    n_bits: int = setting(1024, min=8, help="Morgan fingerprint bits (radius 2)")
    latent: int = setting(32, min=1, help="latent code size (Gaussian prior)")
    hidden: int = setting(256, min=2, help="hidden width of encoder, decoder and discriminator")
    epochs: int = setting(30, min=1, help="training epochs of the AAE")
    batch_size: int = setting(128, min=1)
    lr: float = setting(1e-3, min=0, exclusive_min=True)
    candidates_per_sample: int = setting(4, min=1, help="language-model candidates screened per AAE fingerprint")


@dataclass
class GeneratorTrain(TrainSection):
    batch_size: int = setting(128, min=1)
    lr: float = setting(2e-3, min=0, exclusive_min=True)
    max_epochs: int = setting(40, min=1)
    patience: int | None = setting(4, min=1, help="epochs without a lower validation loss before stopping")
    max_minutes: float | None = setting(8.0, min=0, exclusive_min=True,
                                        help="wall-clock budget of the language model's training")
    val_fraction: float = setting(0.05, min=0, max=0.5, exclusive_min=True,
                                  help="molecules held out for early stopping on the next-token loss")
    gradient_clip: float = setting(1.0, min=0, help="gradient norm clipping (0: none)")
    checkpoint: Literal["best_val", "final"] = setting("best_val", help="best_val (lowest validation loss) or "
                                                                        "final (end of training)")


@dataclass
class GeneratorPlan(Plan):
    """What to learn and how. ``representation``: selfies (every token string decodes to a molecule) |
    smiles; ``max_len``: the longest token sequence trained on (longer molecules are skipped) and sampled."""

    representation: Literal["selfies", "smiles"] = setting("selfies", help="selfies | smiles")
    max_len: int = setting(100, min=1, help="longest token sequence trained on and sampled")
    temperature: float = setting(1.0, min=0, exclusive_min=True, help="default sampling temperature")
    eval_samples: int = setting(2000, min=1, help="molecules sampled for the run's metrics")
    network: GeneratorNetwork = field(default_factory=GeneratorNetwork)
    aae: AAESection = field(default_factory=AAESection)
    train: GeneratorTrain = field(default_factory=GeneratorTrain)

    def check(self) -> None:
        if self.train.ensemble != 1:
            raise InputError("train.ensemble", f"a generator is one model, got {self.train.ensemble} members "
                             "(ensembles of generators are not implemented)", "set train.ensemble=1")

    @property
    def cell(self) -> str:
        """The recurrent cell: ``gru`` for the GRU, ``lstm`` otherwise (the AAE screens an LSTM)."""
        return "gru" if self.network.name == "gru" else "lstm"

