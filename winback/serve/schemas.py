"""Request models of ``POST /v1/decide``, built from a policy card so they check what its policy reads.

Every user of a request comes in one of two forms:

- ``{"features": {name: value, ...}}``: every observation feature of the card by name, each a finite
  number within the feature's ``[low, high]``;
- ``{"state": {...}, "activity": [{...}, ...], "features": {...}}``: the user's stored state
  (:class:`winback.export.runtime.state.UserStates`, as the previous answer returned it), the periods lived
  since (oldest first: event counts by type, spend, contacts received by kind), and the contact-side
  features the platform records (fatigue, opt-out, coupon validity, periods since each contact). The
  state-derived features (interest, recency, frequency, monetary value, tenure, new user) are computed
  with ``state_update.onnx``.

A request may also give ``limits``: for a contact action, how many of the batch's users it may go to
this period (the coupons the budget has left, the care messages the team can write); the decisions
then fit them (:mod:`winback.allocation`). Or ``prices``: for a contact action, its price this period
(for a policy trained under prices, in currency per contact, as its card's ``observation.prices``;
otherwise in units of its scores), which each user's choice pays.

Numbers are strict (``"0.5"`` and ``true`` are not numbers), NaN and infinities are refused, unknown
keys are refused; a refusal is a 422 naming the field (``users.0.features.interest``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model, model_validator

from winback.export.runtime.state import DERIVED_FEATURES

MAX_USERS = 10_000
"""Users per request."""
MAX_PERIODS = 520
"""Periods of activity per user and request."""
FORMS = ("features", "activity")
"""The two forms of a user, as named in error locations (and dropped from the field names reported)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _number(low: float, high: float) -> Any:
    return (float, Field(ge=low, le=high, allow_inf_nan=False))


def _features_model(name: str, features: list[dict[str, Any]]) -> type[BaseModel]:
    fields = {f["name"]: _number(f["low"], f["high"]) for f in features}
    return create_model(name, __base__=Strict, **fields)


def request_model(card: dict[str, Any]) -> type[BaseModel]:
    """The body of ``POST /v1/decide`` for the policy the card describes (module docstring)."""
    features = card["observation"]["features"]
    state_card = card["state_update"]
    hidden = state_card["hidden_size"]
    features_model = _features_model("Features", features)
    contact_model = _features_model(
        "ContactFeatures", [f for f in features if f["name"] not in DERIVED_FEATURES]
    )
    vector = Annotated[
        list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=hidden, max_length=hidden)
    ]

    class StoredState(Strict):
        hidden: vector  # type: ignore[valid-type]
        cell: vector  # type: ignore[valid-type]
        period: int = Field(ge=0)
        first_period: int = Field(ge=0)
        last_purchase: int = Field(ge=0)
        frequency: float = Field(ge=0, allow_inf_nan=False)
        spend_total: float = Field(ge=0, allow_inf_nan=False)

        @model_validator(mode="after")
        def ordered(self) -> StoredState:
            if not self.first_period <= self.last_purchase <= self.period:
                raise ValueError("needs first_period <= last_purchase <= period")
            return self

    count = Annotated[int, Field(ge=0)]
    counts_model = create_model(
        "EventCounts", __base__=Strict, **{t: (count, ...) for t in state_card["event_types"]}
    )
    contacts_model = create_model(
        "Contacts", __base__=Strict, **{k: (count, 0) for k in state_card["contact_kinds"]}
    )

    class Period(Strict):
        counts: counts_model  # type: ignore[valid-type]
        spend: float = Field(ge=0, allow_inf_nan=False)
        contacts: contacts_model = Field(default_factory=contacts_model)  # type: ignore[valid-type]

    class FeaturesUser(Strict):
        features: features_model  # type: ignore[valid-type]

    class ActivityUser(Strict):
        state: StoredState
        activity: list[Period] = Field(min_length=1, max_length=MAX_PERIODS)
        features: contact_model  # type: ignore[valid-type]

    def form(user: Any) -> Literal["features", "activity"]:
        has_state = "state" in user if isinstance(user, dict) else isinstance(user, ActivityUser)
        return "activity" if has_state else "features"

    user = Annotated[
        Annotated[FeaturesUser, Tag("features")] | Annotated[ActivityUser, Tag("activity")],
        Discriminator(form),
    ]

    limits_model = create_model(
        "Limits", __base__=Strict, **{a: (int | None, Field(None, ge=0)) for a in card["actions"][1:]}
    )

    prices_model = create_model(
        "Prices",
        __base__=Strict,
        **{a: (float | None, Field(None, ge=0, allow_inf_nan=False)) for a in card["actions"][1:]},
    )

    class DecideRequest(Strict):
        users: list[user] = Field(min_length=1, max_length=MAX_USERS)  # type: ignore[valid-type]
        limits: limits_model | None = None  # type: ignore[valid-type]
        prices: prices_model | None = None  # type: ignore[valid-type]

        @model_validator(mode="after")
        def one_of_limits_or_prices(self) -> DecideRequest:
            if self.limits is not None and self.prices is not None:
                raise ValueError("give limits or prices, not both (limits: the allocation finds the prices)")
            return self

    return DecideRequest
