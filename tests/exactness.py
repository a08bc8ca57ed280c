"""Exactness by enumeration: the target's exact joint of the first K generated tokens, computed
independently of our sampling code (straight from mlx-lm's processors and filters), and a
chi-square comparison with many draws from the speculative loop."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import mlx.core as mx
import numpy as np
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_logits_processors
from scipy.stats import chisquare

# name -> (sampler kwargs, logits processor kwargs)
CONFIGS: Dict[str, Tuple[dict, dict]] = {
    "T1": (dict(temp=1.0), {}),
    "T0.7_top_p0.9": (dict(temp=0.7, top_p=0.9), {}),
    "top_k5": (dict(temp=1.0, top_k=5), {}),
    "min_p0.1": (dict(temp=1.0, min_p=0.1), {}),
    "repetition_penalty1.3": (dict(temp=1.0), dict(repetition_penalty=1.3)),
}


def next_token_probs(logits_row: mx.array, history: Sequence[int], sampler_kw: dict, proc_kw: dict) -> np.ndarray:
    """p(. | history) as mlx-lm would sample it: processors on raw logits, log-softmax, top-p,
    min-p, top-k on the untempered log-probs, then softmax(filtered / temp)."""
    logits = logits_row[None].astype(mx.float32)
    for proc in make_logits_processors(**proc_kw):
        logits = proc(mx.array(list(history)), logits)
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    if 0 < sampler_kw.get("top_p", 0) < 1:
        logprobs = apply_top_p(logprobs, sampler_kw["top_p"])
    if sampler_kw.get("min_p", 0):
        logprobs = apply_min_p(logprobs, sampler_kw["min_p"])
    if sampler_kw.get("top_k", 0):
        logprobs = apply_top_k(logprobs, sampler_kw["top_k"])
    return np.array(mx.softmax(logprobs / sampler_kw["temp"], axis=-1)[0], dtype=np.float64)


def exact_joint(model, prompt: List[int], k: int, vocab: int, sampler_kw: dict, proc_kw: dict) -> Dict[tuple, float]:
    """The exact probability of every k-token continuation (no cache: full forwards)."""
    joint = {}
    for seq in itertools.product(range(vocab), repeat=k - 1):
        logits = model(mx.array([prompt + list(seq)]))[0]
        prob, prefix = 1.0, []
        rows = []
        for j in range(k):
            rows.append(next_token_probs(logits[len(prompt) - 1 + j], prompt + prefix, sampler_kw, proc_kw))
            if j < k - 1:
                prob *= rows[-1][seq[j]]
                prefix.append(seq[j])
        for last in range(vocab):
            joint[tuple(seq) + (last,)] = prob * rows[-1][last]
    return joint


def chi_square_pvalue(samples: Sequence[tuple], joint: Dict[tuple, float], min_expected: float = 5.0) -> float:
    """Chi-square goodness of fit; cells with expected count < min_expected are pooled."""
    n = len(samples)
    counts = Counter(samples)
    obs, exp = [], []
    pooled_o = pooled_e = 0.0
    for cell, p in joint.items():
        if p * n < min_expected:
            pooled_o += counts.get(cell, 0)
            pooled_e += p * n
        else:
            obs.append(counts.get(cell, 0))
            exp.append(p * n)
    unknown = n - sum(counts.get(c, 0) for c in joint)  # outside the support
    pooled_o += unknown
    if pooled_e > 0 or pooled_o > 0:
        obs.append(pooled_o)
        exp.append(max(pooled_e, 1e-9))
    exp = np.array(exp) * (n / np.sum(exp))
    return float(chisquare(obs, exp).pvalue)
