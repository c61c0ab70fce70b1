"""Typed settings: one model per ``params.yaml`` section, the only home of defaults.

``load_settings`` reads ``params.yaml`` (and a profile laid over it), then checks every
section against its model: an unknown key, a value of the wrong type or out of range stops
with an error that names the key, e.g. ``params.yaml: retrieval.embedding_dim must be an
integer greater than 0 (got -3)``. The defaults below are the shipped ``params.yaml``'s
values (a test keeps the two equal), so a section or key left out of ``params.yaml`` takes
them, and code and tests build settings with ``RetrievalSettings()`` rather than copying
numbers.

Search spaces, ablation rows and profile overlays are collections, not settings: they are
checked for shape here and read by the stages that use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from movierec.errors import ParamsError
from movierec.paths import PARAMS_FILE

PositiveInt = Annotated[int, Field(gt=0)]
# numbers keep the type params.yaml gives them (50 stays 50, 0.5 stays 0.5), so reports and
# labels read as the file does
PositiveFloat = Annotated[int | float, Field(gt=0)]
NonNegativeFloat = Annotated[int | float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class Section(BaseModel):
    """A settings block: unknown keys are errors, values are not coerced (``"3"`` is not 3)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merged(base.get(key) or {}, value)
            if isinstance(value, dict) and isinstance(base.get(key), dict)
            else value
        )
    return out


# --- data, split, features ------------------------------------------------------------


class DataSettings(Section):
    """``data``: what to fetch (``ml-100k``, ``grouplens/<name>`` or a local folder)."""

    source: str = "ml-100k"


class UserTemporalSettings(Section):
    """Per user: the last ``test_frac`` of their events for test, ``valid_frac`` before that."""

    valid_frac: Fraction = 0.1
    test_frac: Fraction = 0.2
    min_events: PositiveInt = 5


class TemporalSettings(Section):
    """Global cut points in time."""

    valid_frac: Fraction = 0.1
    test_frac: Fraction = 0.1


class LeaveLastNSettings(Section):
    """Each user's last ``n`` events for test, the ``n`` before for validation."""

    n: PositiveInt = 1


class SplitSettings(Section):
    """``split``: the protocol's method and each method's own settings."""

    method: Literal["user_temporal", "temporal", "leave_last_n"] = "user_temporal"
    user_temporal: UserTemporalSettings = Field(default_factory=UserTemporalSettings)
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    leave_last_n: LeaveLastNSettings = Field(default_factory=LeaveLastNSettings)


class FeaturesSettings(Section):
    """``features``: histories, recent-popularity window, tags kept per item."""

    history_max_len: PositiveInt = 50
    recent_days: PositiveFloat = 30
    max_tags: PositiveInt = 20


# --- baselines --------------------------------------------------------------------------


class MostPopularSettings(Section):
    window_days: list[PositiveInt | None] = Field(default=[None, 7, 14, 30, 60, 120], min_length=1)


class ItemKNNSettings(Section):
    neighbours: list[PositiveInt] = Field(default=[20, 50, 100, 200, 400], min_length=1)
    shrink: list[NonNegativeFloat] = Field(default=[0, 10, 50], min_length=1)


class EASESettings(Section):
    l2: list[PositiveFloat] = Field(default=[50, 100, 200, 500, 1000, 2000], min_length=1)
    max_items: PositiveInt = 20000


class EASERecencySettings(EASESettings):
    recency_tau: list[PositiveFloat] = Field(default=[3, 10, 30, 100], min_length=1)


class BiasesSettings(Section):
    reg: list[NonNegativeFloat] = Field(default=[1, 3, 5, 10, 25, 50], min_length=1)


class BaselinesSettings(Section):
    """``baselines``: each baseline's grid, chosen on validation by ``tune_metric``."""

    tune_metric: str = "ndcg@10"
    tune_users: PositiveInt | None = None
    most_popular: MostPopularSettings = Field(default_factory=MostPopularSettings)
    item_knn: ItemKNNSettings = Field(default_factory=ItemKNNSettings)
    ease: EASESettings = Field(default_factory=EASESettings)
    ease_recency: EASERecencySettings = Field(default_factory=EASERecencySettings)
    biases: BiasesSettings = Field(default_factory=BiasesSettings)


# --- training -----------------------------------------------------------------------------


class TrainSettings(Section):
    """``train``: the seeds every model is trained with (the first is served)."""

    seeds: list[int] = Field(default=[42, 7, 2024], min_length=1)
    final_fit_all: bool = True
    valid_users: PositiveInt | None = None

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"the seeds must be distinct, got {seeds}")
        return seeds


class QuerySettings(Section):
    use_id: bool = True
    use_history: bool = True
    use_features: bool = True
    recent_items: PositiveInt = 5
    sequence: Literal["mean", "gru"] = "mean"


class CandidateSettings(Section):
    use_features: bool = True


class WidthsSettings(Section):
    genres: PositiveInt = 6
    title: PositiveInt = 8
    tags: PositiveInt = 10


class BlendSettings(Section):
    """The first stage's blend of the towers with the history's item neighbours."""

    weight: NonNegativeFloat = 1.0
    tau: PositiveFloat = 10
    max_history: PositiveInt = 50


class RetrievalSettings(Section):
    """``retrieval``: the two-tower model (the searched keys are starting values)."""

    embedding_dim: PositiveInt = 64
    hidden_units: PositiveInt = 128
    normalize: bool = True
    temperature: PositiveFloat | None = 0.05
    logq: bool = True
    history_len: PositiveInt = 50
    batch_size: PositiveInt = 512
    learning_rate: PositiveFloat = 0.003
    epochs: PositiveInt = 6
    epoch_examples: PositiveInt | None = None
    select_metric: str = "recall@100"
    min_token_count: PositiveInt = 2
    widths: WidthsSettings = Field(default_factory=WidthsSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    candidate: CandidateSettings = Field(default_factory=CandidateSettings)
    blend: BlendSettings = Field(default_factory=BlendSettings)
    ablation: dict[str, dict[str, Any]] = Field(default_factory=lambda: _retrieval_ablation())

    @model_validator(mode="after")
    def _ablation_rows_are_settings(self) -> RetrievalSettings:
        """Each ablation row overrides keys of this section: check them as settings."""
        base = self.model_dump(exclude={"ablation"})
        for name, override in self.ablation.items():
            if "ablation" in (override or {}):
                raise ValueError(f"ablation row {name!r} cannot hold ablation rows")
            try:
                RetrievalSettings.model_validate({**_merged(base, override or {}), "ablation": {}})
            except ValidationError as exc:
                raise ValueError(f"ablation row {name!r}: {_first_error(exc, '')}") from None
        return self


class RankingAblationRow(Section):
    drop: list[str] = Field(default_factory=list)


class RankingSettings(Section):
    """``ranking``: the pointwise ranker over the first stage's candidates."""

    hidden_units: list[PositiveInt] = Field(default=[64, 32], min_length=1)
    learning_rate: PositiveFloat = 0.002
    batch_size: PositiveInt = 1024
    epochs: PositiveInt = 5
    rating_weight: NonNegativeFloat = 0.2
    candidates: PositiveInt = 100
    random_negatives: Annotated[int, Field(ge=0)] = 20
    ease_features: bool = True
    ablation: dict[str, RankingAblationRow] = Field(default_factory=lambda: _ranking_ablation())


def _retrieval_ablation() -> dict[str, dict[str, Any]]:
    towers_only = {"blend": {"weight": 0}}
    return {
        "id_only": {
            "logq": False,
            "query": {"use_history": False, "use_features": False},
            "candidate": {"use_features": False},
            **towers_only,
        },
        "plus_features": {"logq": False, "query": {"use_history": False}, **towers_only},
        "plus_history": {"logq": False, **towers_only},
        "plus_logq": dict(towers_only),
        "plus_neighbours": {},
        "plus_gru": {"query": {"sequence": "gru"}},
    }


def _ranking_ablation() -> dict[str, RankingAblationRow]:
    ease = ["ease_score", "ease_recency_score"]
    return {
        "full": RankingAblationRow(),
        "no_ease": RankingAblationRow(drop=ease),
        "no_collaborative": RankingAblationRow(drop=[*ease, "cooccurrence", "cooccurrence_mean"]),
        "no_retrieval_score": RankingAblationRow(
            drop=["retrieval_score", "history_similarity", "history_similarity_max", "recent_similarity"]
        ),
    }


class ScannSettings(Section):
    num_leaves: PositiveInt = 4000  # the most leaves (index.rules.scann_leaves_per_sqrt grows them)
    num_leaves_to_search: PositiveInt = 20
    dimensions_per_block: PositiveInt = 2
    num_reordering_candidates: PositiveInt = 4000  # the most the tuning may re-score
    training_iterations: PositiveInt = 12


class FaissSettings(Section):
    nlist: PositiveInt = 16384  # the most lists (index.rules.faiss_lists_per_sqrt grows them)
    nprobe: PositiveInt = 16


class IndexRulesSettings(Section):
    """``index.rules``: how the indexes' structure grows with the catalogue and which index
    ``auto`` serves, measured with ``movierec bench index`` (see movierec.models.index_rules)."""

    brute_max_items: PositiveInt = 10_000
    approximate: Literal["faiss", "scann"] = "faiss"
    faiss_lists_per_sqrt: PositiveFloat = 4
    faiss_train_points_per_list: PositiveInt = 64
    scann_leaves_per_sqrt: PositiveFloat = 1
    hnsw_m: PositiveInt = 32
    hnsw_ef_construction: PositiveInt = 64


class IndexSettings(Section):
    """``index``: the approximate indexes and their recall check against brute force."""

    k: PositiveInt = 100
    target_recall: Annotated[float, Field(gt=0, le=1)] = 0.95
    scann: ScannSettings = Field(default_factory=ScannSettings)
    faiss: FaissSettings = Field(default_factory=FaissSettings)
    rules: IndexRulesSettings = Field(default_factory=IndexRulesSettings)
    eval_queries: PositiveInt = 1000
    eval_batch_size: PositiveInt = 100
    seed: Annotated[int, Field(ge=0)] = 0


class EvaluateSettings(Section):
    """``evaluate``: the cut-offs and what counts as relevant."""

    ks: list[PositiveInt] = Field(default=[10, 50, 100], min_length=1)
    min_rating: NonNegativeFloat | None = None


# --- tuning ---------------------------------------------------------------------------------


class SpaceEntry(Section):
    """One searched hyperparameter: ``{choices: [...]}`` or ``{low, high, log}``."""

    choices: list[Any] | None = Field(default=None, min_length=1)
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False

    @model_serializer(mode="wrap")
    def _as_written(self, handler: Any) -> dict[str, Any]:
        """The entry in the form it is written in (``choices`` alone, or ``low``/``high``/``log``)."""
        out = handler(self)
        return {"choices": out["choices"]} if self.choices is not None else {k: out[k] for k in ("low", "high", "log")}

    @model_validator(mode="after")
    def _one_form(self) -> SpaceEntry:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low and high, not both")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"needs numbers low < high (or a list of choices), got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low}")
        return self


class BlendGrid(Section):
    weight: list[NonNegativeFloat] = Field(default=[0, 0.25, 0.5, 1, 2, 4], min_length=1)
    tau: list[PositiveFloat] = Field(default=[3, 10, 30], min_length=1)


def _retrieval_space() -> dict[str, SpaceEntry]:
    return {
        "embedding_dim": SpaceEntry(choices=[32, 64, 128]),
        "temperature": SpaceEntry(low=0.02, high=0.2, log=True),
        "learning_rate": SpaceEntry(low=0.001, high=0.01, log=True),
        "epochs": SpaceEntry(low=3, high=8),
        "history_len": SpaceEntry(choices=[10, 25, 50, 100]),
        "batch_size": SpaceEntry(choices=[256, 512, 1024]),
    }


def _ranking_space() -> dict[str, SpaceEntry]:
    return {
        "hidden_units": SpaceEntry(choices=[[32], [64, 32], [128, 64]]),
        "learning_rate": SpaceEntry(low=0.0005, high=0.005, log=True),
        "epochs": SpaceEntry(low=2, high=8),
        "random_negatives": SpaceEntry(choices=[5, 20, 50]),
    }


class RetrievalSearch(Section):
    trials: PositiveInt = 6
    space: dict[str, SpaceEntry] = Field(default_factory=_retrieval_space, min_length=1)
    blend: BlendGrid | None = Field(default_factory=BlendGrid)

    @field_validator("space")
    @classmethod
    def _known_keys(cls, space: dict[str, SpaceEntry]) -> dict[str, SpaceEntry]:
        return _searchable(space, RetrievalSettings, "retrieval")


class RankingSearch(Section):
    trials: PositiveInt = 5
    space: dict[str, SpaceEntry] = Field(default_factory=_ranking_space, min_length=1)

    @field_validator("space")
    @classmethod
    def _known_keys(cls, space: dict[str, SpaceEntry]) -> dict[str, SpaceEntry]:
        return _searchable(space, RankingSettings, "ranking")


class TuneSettings(Section):
    """``tune``: the Optuna search of both models (budget and space)."""

    seed: Annotated[int, Field(ge=0)] = 0
    retrieval: RetrievalSearch = Field(default_factory=RetrievalSearch)
    ranking: RankingSearch = Field(default_factory=RankingSearch)


def _searchable(space: dict[str, SpaceEntry], model: type[Section], section: str) -> dict[str, SpaceEntry]:
    unknown = sorted(set(space) - set(model.model_fields) - {"ablation"})
    if unknown:
        raise ValueError(f"{', '.join(unknown)} are not settings of the {section} section")
    return space


# --- the model registry ----------------------------------------------------------------------


class RegistrySettings(Section):
    """``registry``: the MLflow run and model version every pipeline run records, and the
    promote-if-better rule (``MLFLOW_TRACKING_URI`` picks a server; default: ``mlflow/``)."""

    experiment: str = Field(default="movierec", min_length=1)
    model_name: str = Field(default="movierec", min_length=1)
    promote: bool = True
    tolerance: Annotated[float, Field(ge=0, le=1)] = 0.005


# --- synthetic data ---------------------------------------------------------------------------


class SynthShape(Section):
    """A named size of synthetic dataset (``movierec data synth --shape NAME``)."""

    users: PositiveInt
    items: PositiveInt
    events: PositiveInt
    all_items: bool = False


def _synth_shapes() -> dict[str, SynthShape]:
    return {
        "ml-25m": SynthShape(users=160_000, items=60_000, events=25_000_000),
        "catalogue-1m": SynthShape(users=200_000, items=1_000_000, events=25_000_000, all_items=True),
    }


class SynthSettings(Section):
    """``synth``: the default size of ``movierec data synth`` (SYNTHETIC data) and named shapes."""

    users: PositiveInt = 2000
    items: PositiveInt = 16820
    events: PositiveInt = 200_000
    seed: Annotated[int, Field(ge=0)] = 0
    shapes: dict[str, SynthShape] = Field(default_factory=_synth_shapes)


# --- the whole file --------------------------------------------------------------------------


class Settings(Section):
    """Every section of ``params.yaml``."""

    data: DataSettings = Field(default_factory=DataSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    features: FeaturesSettings = Field(default_factory=FeaturesSettings)
    baselines: BaselinesSettings = Field(default_factory=BaselinesSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    ranking: RankingSettings = Field(default_factory=RankingSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    tune: TuneSettings = Field(default_factory=TuneSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    synth: SynthSettings = Field(default_factory=SynthSettings)

    def as_params(self) -> dict[str, Any]:
        """The checked settings as plain mappings (every key present, defaults filled in),
        for the stage functions that take a section as a dict."""
        return self.model_dump(mode="python", exclude_none=False)


def validate_params(params: dict[str, Any], source: str = "params.yaml") -> Settings:
    """Check a parsed ``params.yaml`` against :class:`Settings`.

    Raises:
        ParamsError: naming the first key that is unknown, of the wrong type or out of range.
    """
    try:
        return Settings.model_validate(params)
    except ValidationError as exc:
        raise ParamsError(f"{source}: {_first_error(exc, '')}") from None


def load_settings(path: str | Path = PARAMS_FILE, profile: str | None = None) -> Settings:
    """Read ``params.yaml`` (with ``profiles/<profile>.yaml`` laid over it) into checked settings."""
    from movierec.params import load_params

    return validate_params(load_params(path, profile), str(path) + (f" with profile {profile}" if profile else ""))


def _first_error(exc: ValidationError, prefix: str) -> str:
    """One readable line per problem: the dotted key, what is wrong, and the value given."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = f"{prefix}{where}" if where else prefix.rstrip(".") or "(top level)"
        kind = error["type"]
        if kind == "extra_forbidden":
            lines.append(f"{where} is not a setting (a typo?)")
            continue
        message = error["msg"]
        message = message[0].lower() + message[1:] if message else message
        for prefix_text in ("value error, ", "assertion failed, "):
            message = message.removeprefix(prefix_text)
        given = error.get("input")
        shown = "" if kind in ("missing", "value_error") else f" (got {given!r})"
        lines.append(f"{where}: {message}{shown}")
    return "; ".join(dict.fromkeys(lines))


def override(settings: Settings, changes: dict[str, Any]) -> Settings:
    """``settings`` with dotted keys replaced (``{"retrieval.epochs": 3}``), checked again;
    a value of None leaves its key as it is (a notebook's "not set" knob).

    Raises:
        ParamsError: a key is unknown, or a value is of the wrong type or out of range.
    """
    params = settings.as_params()
    for dotted, value in changes.items():
        if value is None:
            continue
        *parents, last = dotted.split(".")
        node = params
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ParamsError(f"'{dotted}' is not a setting")
            node = node[part]
        if last not in node:
            raise ParamsError(f"'{dotted}' is not a setting")
        node[last] = value
    return validate_params(params, "the overrides")
