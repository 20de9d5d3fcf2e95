"""The generator's plan: every choice is a field overridable with ``--set section.field=value``."""

from __future__ import annotations

from dataclasses import dataclass, field

from medlearn.plan import Plan

MODELS = ("lstm", "gru", "aae")
REPRESENTATIONS = ("selfies", "smiles")


@dataclass
class RNNSettings:
    """Token language model (``RecurrentGenerator``)."""

    embed_dim: int = 64
    hidden: int = 384
    layers: int = 2
    dropout: float = 0.1


@dataclass
class AAESettings:
    """Fingerprint adversarial autoencoder (Kadurin et al. 2017), used with ``model=aae``."""

    n_bits: int = 1024
    latent: int = 32
    hidden: int = 256
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    candidates_per_sample: int = 4  # SMILES-generator candidates screened per AAE fingerprint


@dataclass
class GeneratorTrainSettings:
    batch_size: int = 128
    lr: float = 2e-3
    max_epochs: int = 40
    patience: int = 4
    max_time_minutes: float = 8.0
    val_fraction: float = 0.05
    gradient_clip: float = 1.0


@dataclass
class GeneratorPlan(Plan):
    """What to learn and how. ``model``: lstm | gru | aae (aae = fingerprint AAE screening an LSTM's
    samples); ``representation``: selfies (always valid) | smiles; ``max_len``: longest token
    sequence kept for training (longer molecules are skipped) and sampled."""

    model: str = "lstm"
    representation: str = "selfies"
    max_len: int = 100
    temperature: float = 1.0
    eval_samples: int = 2000
    net: RNNSettings = field(default_factory=RNNSettings)
    aae: AAESettings = field(default_factory=AAESettings)
    train: GeneratorTrainSettings = field(default_factory=GeneratorTrainSettings)

    def __post_init__(self) -> None:
        from medlearn.errors import InputError

        if self.model not in MODELS:
            raise InputError("--model", f"unknown generator '{self.model}'", f"choose one of {', '.join(MODELS)}")
        if self.representation not in REPRESENTATIONS:
            raise InputError("--set representation", f"unknown representation '{self.representation}'",
                             f"choose one of {', '.join(REPRESENTATIONS)}")
        if self.temperature <= 0:
            raise InputError("--temperature", f"must be > 0, got {self.temperature}")
