"""How one attempt went (`Outcome`), reported to routers that ask for outcomes, and whose fault
a failure was (`Fault`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional


class Fault(Enum):
    """Whose fault a failed attempt was."""

    #: The client: malformed or incomplete body, gone, too slow.
    CLIENT = "client"
    #: The backend: refused, reset, broken response, no response in time.
    BACKEND = "backend"
    #: lbx's own limit: the request's deadline.
    LBX = "lbx"


@dataclass(frozen=True)
class Outcome:
    """How one attempt went, reported after it is over."""

    #: Index of the backend in the list the decision was made on.
    backend: int
    #: The backend's response status; None if it never answered.
    status: Optional[int] = None
    #: Why the attempt failed; None if the exchange completed cleanly.
    fault: Optional[Fault] = None
    #: Microseconds from the attempt's start to the response head; None if none arrived.
    ttfb_us: Optional[int] = None
    #: Microseconds from the attempt's start to the body's first byte; None if none arrived.
    first_byte_us: Optional[int] = None
    #: Microseconds from the attempt's start to its end.
    total_us: int = 0
    #: Request body bytes sent to the backend.
    bytes_up: int = 0
    #: Response body bytes received from the backend.
    bytes_down: int = 0
    #: 0 for the first attempt, 1 for the first retry, and so on.
    attempt: int = 0
    #: The `tag` of the pick; 0 when it had none or the host's fallback chose.
    tag: int = 0
