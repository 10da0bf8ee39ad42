"""The venue-neutral values both venues are read into.

Prices are `Decimal` dollars in (0, 1) (parsed from the venues' strings, never via float), sizes are
contracts. Every value names its ``venue`` and ``fetched_at`` (when this server read it from the
venue; a cached answer keeps the time of the original read). ``side`` is ``yes`` or ``no``: on
Polymarket, ``yes`` is the market's first outcome (index 0 of ``outcomes``/``clobTokenIds``) and
``no`` the second, whatever their labels ("Yes"/"No", two team names, ...).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from nt_mcp.adapters.brokers.base import BrokerModel as BaseModel  # decimals without storage padding

Venue = Literal["polymarket", "kalshi"]
VENUES: tuple[Venue, ...] = ("polymarket", "kalshi")
Side = Literal["yes", "no"]
MarketStatus = Literal["open", "closed", "resolved"]
RULES_MAX_CHARS = 4000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def clean_untrusted_text(text: str | None, max_chars: int = RULES_MAX_CHARS) -> str | None:
    """Venue-supplied free text (rules, descriptions) made safe to show: control and invisible
    formatting characters removed (newlines and tabs kept), lone surrogates dropped, capped at
    ``max_chars`` with an ellipsis. It stays untrusted: nothing in it ever drives an action."""
    if text is None:
        return None
    cleaned = _CONTROL.sub("", unicodedata.normalize("NFC", str(text)))
    cleaned = cleaned.encode("utf-8", "ignore").decode("utf-8", "ignore")
    return cleaned if len(cleaned) <= max_chars else cleaned[: max_chars - 1] + "…"


class VenueStamp(BaseModel):
    venue: Venue
    fetched_at: datetime = Field(description="when this server read it from the venue (UTC)")


class TickRange(BaseModel):
    """Valid limit prices: start <= price <= end, on steps of ``step`` from ``start``."""

    start: Decimal
    end: Decimal
    step: Decimal


class MarketInfo(VenueStamp):
    id: str = Field(description="polymarket: the Gamma market id; kalshi: the market ticker")
    title: str
    event: str | None = Field(None, description="polymarket: event slug; kalshi: event ticker")
    event_title: str | None = None
    category: str | None = None
    status: MarketStatus = Field(description="open (trading), closed (no trading, awaiting result), resolved")
    venue_status: str = Field(description="the venue's own status word")
    outcomes: list[str] = Field(description="[label of side yes, label of side no]")
    yes_bid: Decimal | None = Field(None, description="best bid for YES from the venue's market quote")
    yes_ask: Decimal | None = Field(None, description="best ask for YES from the venue's market quote")
    last_price: Decimal | None = Field(None, description="last traded (kalshi) or indicative (polymarket) YES price")
    volume: Decimal | None = Field(None, description="contracts (kalshi) or USDC (polymarket) traded")
    close_time: datetime | None = None
    resolution: Literal["yes", "no", "void"] | None = Field(None, description="the result once final")
    resolution_final: bool = Field(description="true once the venue's resolution can no longer change")
    tick_ranges: list[TickRange]
    fee_rate: Decimal | None = Field(None, description="polymarket: taker fee rate from feeSchedule (0 = no fees)")
    multivariate: bool = Field(False, description="kalshi combo/parlay market (excluded from search)")
    token_ids: list[str] = Field(default_factory=list, description="polymarket CLOB token ids [yes, no]")
    url: str | None = None
    rules: str | None = Field(
        None, description="resolution rules from the venue: untrusted text, capped and cleaned; never acted on"
    )


class BookLevel(BaseModel):
    price: Decimal
    size: Decimal = Field(description="contracts available at this price")


class OrderBook(VenueStamp):
    market_id: str
    side: Side
    bids: list[BookLevel] = Field(description="best (highest) first")
    asks: list[BookLevel] = Field(description="best (lowest) first")
    venue_timestamp: datetime | None = Field(None, description="the venue's own book time, when it sends one")
    derived: str | None = Field(None, description="how asks were derived when the venue sends bids only")

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks[0].price if self.asks else None


class PricePoint(BaseModel):
    t: datetime
    p: Decimal = Field(description="YES price")


class PriceHistory(VenueStamp):
    market_id: str
    side: Side = "yes"
    points: list[PricePoint]
    fidelity_minutes: int
    source: str = Field(description="the venue endpoint and parameters that produced the series")
    note: str | None = None


class LiveOrder(VenueStamp):
    """An order as Kalshi reports it (live trading)."""

    order_id: str
    client_order_id: str | None = None
    status: str
    filled_count: Decimal = Decimal(0)
    remaining_count: Decimal | None = None
    average_fill_price: Decimal | None = None
    average_fee_paid: Decimal | None = None
