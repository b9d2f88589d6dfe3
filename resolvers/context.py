"""The per-request GraphQL context every resolver receives as `info.context`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from delivery.auth import Principal
from delivery.pages import Delivery
from delivery.services import Services, VisitorIdentity


@dataclass(slots=True)
class GraphQLContext:
    """What every resolver receives as `info.context`."""

    services: Services
    visitor: VisitorIdentity
    #: This request's profile reads and page decisions, each done once.
    delivery: Delivery
    #: The request's headers (lower-case names): device, country, referrer.
    headers: Mapping[str, str]
    principal: Principal | None = None
