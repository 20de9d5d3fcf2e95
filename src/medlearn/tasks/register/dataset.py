"""The task's data: every pair of a layout read and checked once, its fingerprint, and training loaders.

:func:`load_registration_data` reads a Learn2Reg dataset (training: its training pairs plus
``registration_val`` as the validation split; evaluation: ``registration_val``, or ``--split``), a CSV of
pairs (its ``split`` column, when present, is the split) or atlas mode (``--atlas FIXED`` over a folder
or CSV of images), and checks every pair with :func:`~.data.load_pair` (one line per problem, see
:mod:`.data`) before anything is written. Pairs are read again when needed (training, evaluation),
from a memory cache when the whole set is small.

Loaders: one training epoch is ``train.steps_per_epoch`` batches of pairs drawn with replacement
(each pair in either direction with ``train.swap_pairs``: a moving image registered to a fixed one and
the reverse are both valid problems); validation runs every validation pair once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from medlearn.errors import InputError
from medlearn.tasks.register.data import (
    PairSource,
    RegistrationPair,
    find_learn2reg_json,
    load_pair,
    read_learn2reg,
    read_registration_data,
)
from medlearn.tasks.register.plan import RegistrationFingerprint

__all__ = ["PairSummary", "RegistrationData", "load_registration_data", "train_loader", "val_loader"]

#: pairs are kept in memory after the first read when all of them together are smaller than this
CACHE_BYTES = 1 << 30


@dataclass
class PairSummary:
    """What the first read of a pair found (for the fingerprint, the report and ``seen_in_training``)."""

    name: str
    ndim: int
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    label_ids: list[int]
    labels: bool
    keypoints: bool
    known_field: bool
    resampled: bool
    notes: list[str]
    fixed_modality: str | None
    moving_modality: str | None
    digest: str

    @property
    def multimodal(self) -> bool:
        return bool(self.fixed_modality and self.moving_modality and self.fixed_modality != self.moving_modality)


@dataclass
class RegistrationData:
    """Pairs (paths), what their first read found, the layout's own split and the evaluation options."""

    source: str
    layout: str
    pairs: list[PairSource]
    summaries: list[PairSummary]
    assignment: list[str] | None = None
    label_names: dict[int, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    _cache: dict[int, RegistrationPair] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.pairs]

    @property
    def ndim(self) -> int:
        return self.summaries[0].ndim

    def load(self, index: int) -> RegistrationPair:
        """Pair ``index`` read (from the cache when the set is small)."""
        if index in self._cache:
            return self._cache[index]
        pair = load_pair(self.pairs[index])
        if self._cacheable():
            self._cache[index] = pair
        return pair

    def _cacheable(self) -> bool:
        per_pair = [int(np.prod(s.shape)) * 4 * (2 + 2 * s.labels + s.ndim * s.known_field) for s in self.summaries]
        return sum(per_pair) <= CACHE_BYTES

    def fingerprint(self, indices: Sequence[int]) -> RegistrationFingerprint:
        """The fingerprint of the pairs at ``indices`` (the training split)."""
        chosen = [self.summaries[i] for i in indices] or self.summaries
        shapes = np.asarray([s.shape for s in chosen], float)
        spacings = np.asarray([s.spacing for s in chosen], float)
        modalities = sorted({m for s in chosen for m in (s.fixed_modality, s.moving_modality) if m})
        labelled = all(s.labels for s in chosen)
        ids = sorted({i for s in chosen for i in s.label_ids}) if labelled else []
        size = tuple(int(round(v)) for v in np.median(shapes, 0))
        return RegistrationFingerprint(ndim=chosen[0].ndim, image_size=size,
                                       spacing=tuple(float(v) for v in np.median(spacings, 0)),
                                       same_modality=not any(s.multimodal for s in chosen),
                                       labels_present=labelled and bool(ids), n_pairs=len(chosen),
                                       modalities=tuple(modalities), label_ids=tuple(ids))

    def resampled_notes(self) -> list[str]:
        """One line per pair whose moving image was resampled onto the fixed grid."""
        return [f"{s.name}: {n}" for s in self.summaries for n in s.notes if "resampled" in n]


def _has_pairs(json_path: Path, key: str) -> bool:
    try:
        data = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # read_learn2reg names the problem
    return isinstance(data, dict) and bool(data.get(key))


def _digest(pair: RegistrationPair) -> str:
    h = hashlib.sha1()
    for array in (pair.fixed, pair.moving):
        h.update(str(array.shape).encode())
        h.update(np.ascontiguousarray(array, np.float32).tobytes())
    return h.hexdigest()


def _summary(pair: RegistrationPair) -> PairSummary:
    return PairSummary(name=pair.name, ndim=pair.ndim, shape=pair.spatial_shape, spacing=pair.spacing,
                       label_ids=pair.label_ids, labels=pair.fixed_label is not None,
                       keypoints=pair.fixed_keypoints is not None, known_field=pair.known_ddf is not None,
                       resampled=pair.resampled, notes=list(pair.notes), fixed_modality=pair.fixed_modality,
                       moving_modality=pair.moving_modality, digest=_digest(pair))


def _unique_names(pairs: list[PairSource]) -> list[PairSource]:
    import dataclasses

    seen: dict[str, int] = {}
    out = []
    for p in pairs:
        k = seen.get(p.name, 0)
        seen[p.name] = k + 1
        out.append(p if k == 0 else dataclasses.replace(p, name=f"{p.name}#{k}"))
    return out


def load_registration_data(source: str | Path, options: dict[str, Any] | None = None, training: bool = True,
                           model_plan: Any = None) -> RegistrationData:
    """Read and check every pair of ``source``; see the module docstring.

    ``options``: ``atlas``/``atlas_label`` (atlas mode), ``split`` (Learn2Reg split to evaluate),
    ``method``/``refine`` (kept for the evaluation). ``model_plan``: a trained model's plan the pairs
    must fit (dimensionality; a stated second modality needs a multi-modal model).
    """
    options = dict(options or {})
    src = Path(source)
    if not src.exists():
        raise InputError(src, "dataset not found", "give a Learn2Reg dataset folder (or its json), a CSV of pairs, "
                         "or a folder of images with --atlas")
    atlas = options.get("atlas")
    assignment: list[str] | None = None
    if atlas is None and src.suffix.lower() != ".csv":  # Learn2Reg
        json_path = find_learn2reg_json(src)
        if training:
            train = read_learn2reg(json_path, "train", seed=int(options.get("seed") or 0))
            pairs, assignment = list(train.pairs), ["train"] * len(train.pairs)
            if _has_pairs(json_path, "registration_val"):
                val = read_learn2reg(json_path, "val")
                pairs += val.pairs
                assignment += ["val"] * len(val.pairs)
            dataset = train
        else:
            dataset = read_learn2reg(json_path, str(options.get("split") or "val"))
            pairs = list(dataset.pairs)
    else:
        dataset = read_registration_data(src, atlas=atlas, atlas_label=options.get("atlas_label"))
        pairs = list(dataset.pairs)
        assignment = dataset.splits if training else None
    if not pairs:
        raise InputError(src, "no pairs to register", "list pairs in the dataset")
    pairs = _unique_names(pairs)
    data = RegistrationData(str(src), dataset.layout, pairs, [], assignment, dict(dataset.label_names), options)
    loaded: list[RegistrationPair] | None = []
    for source_pair in pairs:
        pair = load_pair(source_pair)
        summary = _summary(pair)
        if data.summaries and summary.ndim != data.summaries[0].ndim:
            raise InputError(source_pair.fixed, f"pair '{summary.name}' is {summary.ndim}D but pair "
                             f"'{data.summaries[0].name}' is {data.summaries[0].ndim}D",
                             "register pairs of one dimensionality per dataset")
        if model_plan is not None:
            check_pair_fits(summary, model_plan, source_pair.fixed, options.get("method"))
        data.summaries.append(summary)
        if loaded is not None:
            loaded.append(pair)
            if not data._cacheable():  # too large to keep: read again when needed
                loaded = None
    data._cache = dict(enumerate(loaded or []))
    return data


def check_pair_fits(summary: PairSummary, plan: Any, where: Any, method: str | None = None) -> None:
    """A pair the trained model cannot register says so (dimensionality; a second modality with a
    one-modality similarity)."""
    if summary.ndim != plan.ndim:
        raise InputError(where, f"pair '{summary.name}' is {summary.ndim}D; the model registers {plan.ndim}D images",
                         "give pairs like the training pairs")
    learned = (method or plan.inference.method) == "network" and plan.learned
    if summary.multimodal and learned and plan.loss.similarity != "mi":
        raise InputError(where, f"pair '{summary.name}' is multi-modal ({summary.fixed_modality} -> "
                         f"{summary.moving_modality}) but the model learnt {plan.loss.similarity}, a similarity of "
                         "one modality", "train with loss.similarity=mi on multi-modal pairs, or use --method "
                         "classical (Mattes mutual information)")


# -- loaders ----------------------------------------------------------------------------------------------
class PairDataset(Dataset):
    """Working-grid pairs (dicts of ``(1, *W)`` arrays, :func:`~.preprocess.working_pair`); with ``swap``
    each draw registers the pair in a random direction."""

    def __init__(self, pairs: list[dict[str, np.ndarray]], swap: bool = False, seed: int = 0) -> None:
        self.pairs = pairs
        self.swap = swap
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pair = self.pairs[index]
        flip = self.swap and bool(self.rng.integers(2))
        out = {}
        for key, value in pair.items():
            if flip:
                key = key.replace("fixed", "@").replace("moving", "fixed").replace("@", "moving")
            tensor = torch.from_numpy(np.asarray(value))
            out[key] = tensor.long() if "label" in key else tensor.float()
        return out


def train_loader(pairs: list[dict[str, np.ndarray]], batch_size: int, steps: int, swap: bool, seed: int) -> DataLoader:
    """``steps`` batches of ``batch_size`` pairs drawn with replacement (one epoch)."""
    dataset = PairDataset(pairs, swap, seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=steps * batch_size,
                            generator=torch.Generator().manual_seed(seed))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=0, drop_last=True)


def val_loader(pairs: list[dict[str, np.ndarray]]) -> DataLoader:
    return DataLoader(PairDataset(pairs), batch_size=1, shuffle=False, num_workers=0)
