"""Argument checks shared by the evaluation metrics; each failure is a ValueError naming the argument."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an ``int`` if it is an integer >= 1.

    Args:
        value: The value to check.
        name: The argument name used in the error message.

    Returns:
        The value as a Python ``int``.

    Raises:
        ValueError: If ``value`` is not an integer (bools excluded) or is < 1.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_k(k: object, k_max: int, name: str = "k") -> int:
    """Check a cut-off against the number of columns of ``recommended``.

    Args:
        k: The cut-off.
        k_max: The number of columns of ``recommended``.
        name: The argument name used in the error message.

    Returns:
        ``k`` as a Python ``int``.

    Raises:
        ValueError: If ``k`` is not an integer in ``1..k_max``.
    """
    k = check_positive_int(k, name)
    if k > k_max:
        raise ValueError(
            f"{name}={k} exceeds the {k_max} columns of recommended (K_max); recommend at least {k} items per user"
        )
    return k


def check_ks(ks: Iterable[int], k_max: int) -> list[int]:
    """Check a collection of cut-offs; return them de-duplicated, in their given order.

    Args:
        ks: The cut-offs, e.g. ``(10, 50, 100)``.
        k_max: The number of columns of ``recommended``.

    Returns:
        The distinct cut-offs as Python ``int`` values, first occurrence first.

    Raises:
        ValueError: If ``ks`` is empty or not a collection, or any cut-off is not an
            integer in ``1..k_max``.
    """
    if isinstance(ks, (numbers.Number, str, bytes)) or not isinstance(ks, Iterable):
        raise ValueError(f"ks must be a sequence of integers such as (10, 50), got {ks!r}")
    checked = [check_k(k, k_max, name="ks") for k in ks]
    if not checked:
        raise ValueError("ks must hold at least one cut-off")
    return list(dict.fromkeys(checked))


def check_recommended(recommended: object, n_items: int) -> np.ndarray:
    """Check a matrix of ranked recommendations and return it as an int64 array.

    Each row is one user's list, best first; ``-1`` marks padding, which must come
    after every real item of the row. Items must lie in ``0..n_items-1`` and must not
    repeat within a row.

    Args:
        recommended: Array-like of shape ``(n_users, K_max)`` with integer dtype.
        n_items: The size of the item catalogue.

    Returns:
        The recommendations as a C-contiguous ``int64`` array.

    Raises:
        ValueError: If the shape, dtype, item range, padding position or uniqueness
            is wrong.
    """
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(f"recommended must be 2-D (n_users, K_max), got shape {rec.shape}")
    if rec.shape[0] == 0 or rec.shape[1] == 0:
        raise ValueError(f"recommended must have at least one row and one column, got shape {rec.shape}")
    if rec.dtype == np.bool_ or not np.issubdtype(rec.dtype, np.integer):
        raise ValueError(f"recommended must hold integer item indices, got dtype {rec.dtype}")
    low, high = rec.min(), rec.max()
    if low < -1 or high >= n_items:
        bad = low if low < -1 else high
        raise ValueError(
            f"recommended holds item index {bad}; items must lie in 0..{n_items - 1} "
            f"(n_items={n_items}) and -1 is the only padding value"
        )
    rec = np.ascontiguousarray(rec, dtype=np.int64)
    valid = rec >= 0
    item_after_pad = valid[:, 1:] & ~valid[:, :-1]
    if item_after_pad.any():
        row = int(np.flatnonzero(item_after_pad.any(axis=1))[0])
        raise ValueError(f"recommended row {row} has an item after a -1; padding must come at the end of the row")
    ordered = np.sort(rec, axis=1)
    duplicate = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if duplicate.any():
        rows = np.flatnonzero(duplicate.any(axis=1))
        row = int(rows[0])
        item = int(ordered[row, 1:][duplicate[row]][0])
        raise ValueError(
            f"recommended has duplicate items in {rows.size} row(s); e.g. row {row} lists item {item} twice"
        )
    return rec


def check_relevant(relevant: object, n_users: int) -> sp.csr_array:
    """Check the held-out relevance matrix and return a canonical CSR copy of it.

    The copy has explicit zeros removed, duplicates summed and column indices sorted
    within each row, so the caller's matrix is never modified.

    Args:
        relevant: A scipy sparse matrix of shape ``(n_users, n_items)`` whose nonzeros
            in row ``u`` are user ``u``'s relevant items.
        n_users: The number of rows of ``recommended``.

    Returns:
        The canonical CSR copy.

    Raises:
        ValueError: If ``relevant`` is not sparse or 2-D, its row count differs from
            ``n_users``, it has no columns, or any row has no relevant item.
    """
    if not sp.issparse(relevant):
        raise ValueError(f"relevant must be a scipy.sparse matrix (CSR), got {type(relevant).__name__}")
    if len(relevant.shape) != 2:
        raise ValueError(f"relevant must be 2-D (n_users, n_items), got shape {relevant.shape}")
    if relevant.shape[0] != n_users:
        raise ValueError(f"relevant has {relevant.shape[0]} rows but recommended has {n_users}; rows must align")
    if relevant.shape[1] == 0:
        raise ValueError("relevant has no columns; it must have one column per catalogue item")
    rel = sp.csr_array(relevant, copy=True)
    rel.eliminate_zeros()
    rel.sum_duplicates()
    empty = int(np.count_nonzero(np.diff(rel.indptr) == 0))
    if empty:
        raise ValueError(
            f"relevant has {empty} row(s) with no relevant item; filter those users out "
            "of both recommended and relevant before evaluating"
        )
    return rel
