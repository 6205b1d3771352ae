"""Recurrent modules' batches: the state in flat columns, and steps cut into padded sequences.

Sample batches are flat dicts of arrays (they are concatenated, sliced and shipped as such), so
a recurrent state ``{"h": ..., "c": ...}`` travels as columns ``state_in/h``, ``state_in/c``
holding, per step, the state the step was acted with. The learner cuts the env-major steps into
sequences of at most ``max_seq_len`` steps that never cross the end of an episode or of a
fragment piece (``seg_end``), zero-pads them to ``max_seq_len`` and keeps each sequence's
starting state; ``loss_mask`` tells real steps from padding. The ``prev_actions`` /
``prev_rewards`` columns (an LSTM with lstm_use_prev_action / lstm_use_prev_reward) ride along
in every sequence like observations.
"""

from __future__ import annotations

import numpy as np

from solray.rllib.core.columns import Columns

STATE_PREFIX = Columns.STATE_IN + "/"
#: per-step module inputs besides the observation, carried where the batch has them
PREV_COLUMNS = (Columns.PREV_ACTIONS, Columns.PREV_REWARDS)


def state_columns(state: dict) -> dict:
    """``{"h": a}`` -> ``{"state_in/h": a}``."""
    return {STATE_PREFIX + key: value for key, value in state.items()}


def state_from_columns(batch: dict) -> dict:
    """The ``state_in/<key>`` columns of ``batch`` as the state dict a module takes."""
    return {key[len(STATE_PREFIX):]: value for key, value in batch.items() if key.startswith(STATE_PREFIX)}


def sequence_inputs(sequences: dict) -> dict:
    """The forward_train batch of a recurrent module from (a minibatch of) ``build_sequences``."""
    return {Columns.OBS: sequences[Columns.OBS], Columns.STATE_IN: state_from_columns(sequences),
            **{key: sequences[key] for key in PREV_COLUMNS if key in sequences}}


def sequence_starts(batch: dict, max_seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start row, length)`` of each sequence of an env-major batch."""
    ends = batch[Columns.TERMINATEDS].astype(bool) | batch[Columns.TRUNCATEDS].astype(bool) | batch["seg_end"]
    n = len(ends)
    chain_starts = np.flatnonzero(np.r_[True, ends[:-1]])
    chain_ends = np.r_[chain_starts[1:], n]
    starts = np.concatenate([np.arange(s, e, max_seq_len) for s, e in zip(chain_starts, chain_ends, strict=True)])
    lengths = np.minimum(max_seq_len, np.r_[starts[1:], n] - starts)
    return starts, lengths


def build_sequences(batch: dict, max_seq_len: int, columns: tuple[str, ...]) -> dict:
    """``columns`` (and the batch's ``prev_*`` columns) as ``(num_sequences, max_seq_len, ...)``
    zero-padded arrays, the state at each sequence start (``state_in/<key>``: ``(num_sequences,
    ...)``), ``loss_mask`` and ``seq_lens``."""
    starts, lengths = sequence_starts(batch, max_seq_len)
    offsets = np.arange(max_seq_len)
    mask = offsets[None, :] < lengths[:, None]
    rows = np.where(mask, starts[:, None] + offsets[None, :], 0)
    out = {}
    for key in dict.fromkeys(columns + tuple(k for k in PREV_COLUMNS if k in batch)):
        value = batch[key][rows]
        value[~mask] = 0
        out[key] = value
    for key, value in state_columns(state_from_columns(batch)).items():
        out[key] = value[starts]
    out[Columns.LOSS_MASK] = mask
    out["seq_lens"] = lengths.astype(np.int64)
    return out
