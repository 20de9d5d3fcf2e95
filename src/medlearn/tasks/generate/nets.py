"""Networks for molecule generation.

* ``RecurrentGenerator``: a character/token-level LSTM or GRU language model over SMILES/SELFIES
  (Segler et al., ACS Cent. Sci. 2018; Gupta et al., Mol. Inf. 2018), sampled token by token.
* ``FingerprintAAE``: the adversarial autoencoder over fingerprints of Kadurin et al. (Oncotarget
  2017, "The cornucopia of meaningful leads"): an encoder maps a binary fingerprint to a latent code,
  a decoder reconstructs the bits, and a discriminator pushes the codes towards a Gaussian prior so
  that decoding prior samples gives plausible new fingerprints.
"""

from __future__ import annotations

import torch
from torch import nn


class RecurrentGenerator(nn.Module):
    """Token language model.

    Input ``(B, L)`` token ids -> logits ``(B, L, V)`` for the next token.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden: int = 256, layers: int = 2,
                 dropout: float = 0.1, cell: str = "lstm") -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(embed_dim, hidden, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, ids: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        out, state = self.rnn(self.embed(ids), state)
        return self.head(out), state

    @torch.no_grad()
    def sample(self, n: int, max_len: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, max_len)`` sampled token ids (after BOS; 2 = EOS, 0 = padding after EOS)."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        was_training = self.training
        self.eval()
        ids = torch.ones(n, 1, dtype=torch.long)
        out = torch.zeros(n, max_len, dtype=torch.long)
        done = torch.zeros(n, dtype=torch.bool)
        state = None
        for t in range(max_len):
            logits, state = self(ids, state)
            probs = torch.softmax(logits[:, -1] / temperature, dim=-1)
            probs[:, 0] = 0.0  # never emit padding or BOS
            probs[:, 1] = 0.0
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            nxt = torch.where(done, torch.zeros_like(nxt), nxt)
            out[:, t] = nxt
            done |= nxt == 2
            if bool(done.all()):
                break
            ids = nxt.unsqueeze(1)
        self.train(was_training)
        return out


def _mlp(sizes: list[int], dropout: float = 0.0, last_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_act:
            layers += [nn.LeakyReLU(0.2), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class FingerprintAAE(nn.Module):
    """Adversarial autoencoder over ``(B, n_bits)`` binary fingerprints (Kadurin et al. 2017).

    ``encode``: ``(B, n_bits)`` -> ``(B, latent)``; ``decode``: ``(B, latent)`` -> ``(B, n_bits)``
    logits; ``discriminate``: ``(B, latent)`` -> ``(B,)`` logit "drawn from the prior".
    """

    def __init__(self, n_bits: int = 2048, latent: int = 32, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.latent = latent
        self.encoder = _mlp([n_bits, hidden * 2, hidden, latent], dropout)
        self.decoder = _mlp([latent, hidden, hidden * 2, n_bits], dropout)
        self.discriminator = _mlp([latent, hidden, hidden // 2, 1], 0.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def discriminate(self, z: torch.Tensor) -> torch.Tensor:
        return self.discriminator(z).squeeze(-1)
