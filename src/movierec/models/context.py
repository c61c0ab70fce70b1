"""Loading what a training stage needs: split parts, catalogues per cut, demographics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from movierec.data.parts import read_parts
from movierec.data.schema import ITEMS_FILE, TAGS_FILE, USERS_FILE
from movierec.errors import DataError
from movierec.features import item_features
from movierec.models.inputs import Catalogue, UserDirectory


@dataclass
class Periods:
    """The split parts and the catalogues as known at each cut.

    ``catalogue_valid`` describes the items as of the validation start (training events
    only), ``catalogue_test`` as of the test start, ``catalogue_all`` as of the end of
    the data (for the served bundle).
    """

    train: pa.Table
    valid: pa.Table
    test: pa.Table
    users: UserDirectory | None
    catalogue_valid: Catalogue
    catalogue_test: Catalogue
    catalogue_all: Catalogue
    valid_start: int
    test_start: int
    end: int
    valid_sample: pa.Table | None = None

    @property
    def valid_labels(self) -> pa.Table:
        """The validation events that choose epochs and settings and label the ranker's
        window: every user's, or a seeded sample of the users' (``train.valid_users``)."""
        return self.valid if self.valid_sample is None else self.valid_sample

    @property
    def train_valid(self) -> pa.Table:
        """Everything before the test period."""
        return pa.concat_tables([self.train, self.valid])

    @property
    def everything(self) -> pa.Table:
        """Every event (what the served bundle is fitted on)."""
        return pa.concat_tables([self.train, self.valid, self.test])


def period_cut(known: pa.Table, target: pa.Table) -> int:
    """The time the known past is described as of: the target's first event, or just after
    the known past's last one when the periods overlap in time (per-user splits)."""
    known_end = int(pc.max(known.column("timestamp")).as_py()) + 1
    if target.num_rows == 0:
        return known_end
    return max(int(pc.min(target.column("timestamp")).as_py()), known_end)


def load_periods(
    prepared_dir: Path,
    split_dir: Path,
    features_dir: Path,
    widths: dict[str, int],
    features_params: dict[str, Any],
    valid_users: int | None = None,
) -> Periods:
    """Read the split and feature outputs into a :class:`Periods` (``valid_users``: the size of
    the seeded sample of validation users in :attr:`Periods.valid_labels`; None: all)."""
    train, valid, test = (read_parts(split_dir, p) for p in ("train", "valid", "test"))
    users_path = Path(prepared_dir) / USERS_FILE
    users = UserDirectory.from_table(pq.read_table(users_path)) if users_path.exists() else None
    if users is not None and not users.columns:
        users = None

    def catalogue(period: str) -> Catalogue:
        path = Path(features_dir) / period / "items.parquet"
        if not path.exists():
            raise DataError("item features not found; run `movierec features` first", path=path)
        return Catalogue.from_table(pq.read_table(path), widths)

    everything = pa.concat_tables([train, valid, test])
    end = int(pc.max(everything.column("timestamp")).as_py()) + 1
    items_path = Path(prepared_dir) / ITEMS_FILE
    tags_path = Path(prepared_dir) / TAGS_FILE
    tags = pq.read_table(tags_path) if tags_path.exists() else None
    all_items = item_features(
        everything,
        pq.read_table(items_path),
        tags,
        end,
        float(features_params["recent_days"]),
        int(features_params["max_tags"]),
    )
    return Periods(
        train=train,
        valid=valid,
        test=test,
        users=users,
        catalogue_valid=catalogue("valid"),
        catalogue_test=catalogue("test"),
        catalogue_all=Catalogue.from_table(all_items, widths),
        valid_start=period_cut(train, valid),
        test_start=period_cut(pa.concat_tables([train, valid]), test),
        end=end,
        valid_sample=sample_users(valid, valid_users),
    )


def sample_users(events: pa.Table, n: int | None, seed: int = 0) -> pa.Table | None:
    """The events of a seeded sample of ``n`` of their users; None when ``n`` is None or
    covers every user."""
    users = np.unique(events.column("user_id").to_numpy())
    if n is None or n >= users.size:
        return None
    chosen = np.random.default_rng(seed).choice(users, size=int(n), replace=False)
    return events.filter(pc.is_in(events.column("user_id"), value_set=pa.array(np.sort(chosen), pa.int64())))
