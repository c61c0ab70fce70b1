"""Where each dataset comes from, and the checksums that prove a download is intact."""

from __future__ import annotations

from dataclasses import dataclass, field

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class EmbeddedSource:
    """A dataset carried inside a wheel on PyPI, so it installs where only PyPI is reachable.

    ML-100K travels in ``recbole==1.2.1`` as RecBole atomic files whose ``.inter`` rows
    are GroupLens' ``u.data`` rows. We download the wheel without installing it and
    read only those files.
    """

    name: str
    requirement: str
    wheel_name: str
    wheel_sha256: str
    members: dict[str, str] = field(default_factory=dict)  # member path -> sha256


@dataclass(frozen=True)
class GroupLensSource:
    """An official GroupLens zip; ``md5`` is the published checksum when we know it.

    When ``md5`` is None the checksum is read from ``<zip>.md5`` published beside the
    archive (GroupLens refreshes ml-latest-small, so it cannot be pinned here).
    """

    name: str
    md5: str | None

    @property
    def filename(self) -> str:
        """The archive's file name on files.grouplens.org."""
        return f"{self.name}.zip"


_RECBOLE_DIR = "recbole/dataset_example/ml-100k"

EMBEDDED: dict[str, EmbeddedSource] = {
    "ml-100k": EmbeddedSource(
        name="ml-100k",
        requirement="recbole==1.2.1",
        wheel_name="recbole-1.2.1-py3-none-any.whl",
        wheel_sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        members={
            f"{_RECBOLE_DIR}/ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
            f"{_RECBOLE_DIR}/ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
            f"{_RECBOLE_DIR}/ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
        },
    )
}

GROUPLENS: dict[str, GroupLensSource] = {
    "ml-100k": GroupLensSource("ml-100k", "0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": GroupLensSource("ml-1m", "c4d9eecfca2ab87c1945afe126590906"),
    "ml-latest-small": GroupLensSource("ml-latest-small", None),
    "ml-25m": GroupLensSource("ml-25m", "6b51fb2759a8657d3bfcbfc42b592ada"),
    "ml-32m": GroupLensSource("ml-32m", None),
}
