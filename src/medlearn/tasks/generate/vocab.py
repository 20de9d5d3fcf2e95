"""Token vocabularies for sequence generators.

SELFIES (Krenn et al., Mach. Learn.: Sci. Technol. 2020) make every token string decode to a valid
molecule; SMILES are tokenised per atom/bond with the usual regular expression (bracket atoms, Cl,
Br and ring-bond labels as single tokens).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
_SMILES_TOKEN = re.compile(r"(\[[^\]]+\]|Br|Cl|%\d{2}|[BCNOPSFIbcnops]|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|\d)")


def tokenize(text: str, kind: str) -> list[str]:
    """Split one SELFIES or SMILES string into tokens."""
    if kind == "selfies":
        import selfies

        return list(selfies.split_selfies(text))
    return _SMILES_TOKEN.findall(text)


def to_sequence(smiles: str, kind: str) -> str | None:
    """SMILES -> the string the generator learns (SELFIES or the SMILES itself); None when impossible."""
    if kind == "smiles":
        return smiles
    import selfies

    try:
        return selfies.encoder(smiles)
    except Exception:  # selfies raises its own EncoderError and sometimes ValueError/KeyError
        return None


def from_tokens(tokens: Sequence[str], kind: str) -> str:
    """Tokens -> SMILES ('' when SELFIES decoding fails)."""
    text = "".join(tokens)
    if kind == "smiles":
        return text
    import selfies

    try:
        return selfies.decoder(text) or ""
    except Exception:
        return ""


@dataclass
class Vocabulary:
    """Token <-> index map. Index 0 is padding, 1 begin-of-sequence, 2 end-of-sequence."""

    tokens: list[str] = field(default_factory=lambda: [PAD, BOS, EOS])

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]]) -> Vocabulary:
        seen = sorted({t for toks in token_lists for t in toks})
        return cls([PAD, BOS, EOS, *seen])

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        if not hasattr(self, "_index"):
            self._index = {t: i for i, t in enumerate(self.tokens)}
        return self._index

    def encode(self, tokens: Sequence[str], max_len: int) -> np.ndarray:
        """``(max_len + 2,)`` int64: BOS, token ids (unknown tokens dropped), EOS, padding."""
        ids = [self.index[t] for t in tokens if t in self.index][:max_len]
        out = np.zeros(max_len + 2, dtype=np.int64)
        out[0] = 1
        out[1:len(ids) + 1] = ids
        out[len(ids) + 1] = 2
        return out

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Token ids (without BOS) up to the first EOS/PAD."""
        out = []
        for i in ids:
            i = int(i)
            if i in (0, 2):
                break
            if i != 1:
                out.append(self.tokens[i])
        return out
