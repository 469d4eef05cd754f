"""``lolo/timer-trigger``: starts a chain on a schedule (``every: 30s`` or ``cron:``).

Each tick sends ``{"scheduledAt", "firedAt", "sessionId", "nodeId", "catchUp"}`` out of
``out``: the two times in ISO 8601 with the offset of ``timezone``, a fresh session id
per tick. Fire times come from :mod:`lolo_runtime.schedule` (pure), the sleeping from
:mod:`.timer_loop`, and what makes a cluster of processes fire each tick once from
:mod:`.timer_leases`. It serves no URL, so a flow of timers alone opens no port.
See docs/timers.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lolo_runtime.context import SetupContext
from lolo_runtime.engine import Engine
from lolo_runtime.node import NodeConfig, Trigger, TriggerHost
from lolo_runtime.nodes.timer_leases import LATE_LIMIT, TimerLeases
from lolo_runtime.nodes.timer_loop import Clock, Due, Sleep, TimerLoop
from lolo_runtime.schedule import (
    Cron,
    Every,
    Schedule,
    iso_time,
    parse_cron,
    parse_every,
    parse_zone,
)
from lolo_runtime.state import StateBackend, StateError

log = logging.getLogger("lolo.timer")


class TimerParams(BaseModel):
    # The JSON Schema tells editors what the validator below enforces: one of the two.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["every"]}, {"required": ["cron"]}]},
    )

    every: str | None = Field(
        None,
        description="Fire every this long: '30s', '5m', '1h', '1h30m'. Ticks fall on the "
        "multiples of the period since 1970-01-01T00:00Z, the same in every process.",
        examples=["30s", "5m", "1h"],
        json_schema_extra={"pattern": r"^\s*(\d+h)?(\d+m)?(\d+s)?\s*$"},
    )
    cron: str | None = Field(
        None,
        description="Fire when this five-field cron expression matches "
        "(minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'; or @hourly, "
        "@daily, @weekly, @monthly, @yearly), evaluated in `timezone`.",
        examples=["*/5 * * * *", "30 2 * * *"],
    )
    timezone: str = Field(
        "UTC",
        description="IANA time zone of the cron expression and of the times in events.",
        examples=["UTC", "Europe/Berlin"],
    )
    allow_overlap: bool = Field(
        False,
        description="Fire even while the previous tick's chain still runs (in any process "
        "of the app); by default such a tick is skipped with a warning.",
    )
    catch_up: Literal["none", "latest"] = Field(
        "none",
        description="Ticks missed while the app was down: 'none' fires none of them; "
        "'latest' fires the latest one, once, when the app starts.",
    )

    @field_validator("every", mode="before")
    @classmethod
    def _every_has_a_unit(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f"give a unit: '{value}s', '{value}m' or '{value}h'")
        if isinstance(value, str):
            parse_every(value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cron(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        parse_zone(value)
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> TimerParams:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' and 'cron'")
        return self


class TimerTrigger(Trigger):
    """Fires ``out`` at each tick of its schedule; see the module docstring."""

    Params = TimerParams
    outputs: ClassVar[tuple[str, ...]] = ("out",)

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.params: TimerParams = config.params  # type: ignore[assignment]
        zone = parse_zone(self.params.timezone)
        self.schedule: Schedule
        if self.params.every is not None:
            every = self.params.every.strip()
            self.schedule = Every(parse_every(every), zone, every)
        else:
            assert self.params.cron is not None
            self.schedule = Cron(self.params.cron, zone)
        self.clock: Clock = time.time
        """The wall clock and the sleep the timer uses; tests put a fake pair here."""
        self.sleep: Sleep = asyncio.sleep
        self._tags: dict[str, Any] = {"node": self.id}
        self._leases: TimerLeases | None = None
        self._engine: Engine | None = None
        self._task: asyncio.Task[None] | None = None

    async def setup(self, ctx: SetupContext) -> None:
        backend = ctx.state_backend
        if not isinstance(backend, StateBackend):
            raise RuntimeError("lolo/timer-trigger needs the state store (for its leases)")
        self._tags = {"app": ctx.app, "node": self.id}
        self._leases = TimerLeases(backend, ctx.app, self.id)

    async def start(self, host: TriggerHost) -> None:
        self._engine = host.engine
        now = self.clock()
        upcoming = self.schedule.upcoming(now, 3)
        log.info(
            "timer: %s; next fires at %s",
            self.schedule.describe(),
            ", ".join(self._iso(t) for t in upcoming) or "(never)",
            extra=self._tags,
        )
        self._task = asyncio.get_running_loop().create_task(self._run(now))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, now: float) -> None:
        try:
            if self.params.catch_up == "latest":
                await self._catch_up(now)
            await TimerLoop(self.schedule, self._on_due, self.clock, self.sleep).run(now)
            log.warning("timer: the schedule has no more fire times", extra=self._tags)
        except Exception:
            log.exception("timer stopped by an unexpected error", extra=self._tags)

    async def _on_due(self, due: Due) -> None:
        if due.passed_over is not None:
            log.warning(
                "timer: ticks from %s to before %s were not fired (the process was "
                "suspended, or its event loop blocked)",
                self._iso(due.passed_over),
                self._iso(due.scheduled),
                extra=self._tags,
            )
        if due.lateness <= LATE_LIMIT:
            await self._fire(due.scheduled, catch_up=False)
        elif self.params.catch_up == "latest":
            await self._catch_up(due.now)
        else:
            log.warning(
                "timer: the tick of %s came %.0fs late; not fired (catch_up: none)",
                self._iso(due.scheduled),
                due.lateness,
                extra=self._tags,
            )

    async def _catch_up(self, now: float) -> None:
        """Fire the latest tick since the last one handled, if one was missed. Nothing is
        caught up before a first tick was ever handled: there is no telling what was."""
        assert self._leases is not None
        try:
            last = await self._leases.last_handled()
        except StateError as exc:
            log.error("timer: cannot tell which ticks were missed: %s", exc, extra=self._tags)
            return
        missed = None if last is None else self.schedule.latest_between(last, now)
        if missed is not None:
            log.info("timer: catching up the tick of %s", self._iso(missed), extra=self._tags)
            await self._fire(missed, catch_up=True)

    async def _fire(self, scheduled: float, catch_up: bool) -> None:
        """Claim the tick for this process and start its chain, unless another process
        has it or (without ``allow_overlap``) the previous chain still runs."""
        assert self._leases is not None and self._engine is not None
        when = self._iso(scheduled)
        try:
            if not await self._leases.claim_tick(scheduled):
                log.debug("timer: the tick of %s is another process's", when, extra=self._tags)
                return
            if self.params.catch_up == "latest":
                await self._leases.remember(scheduled)
            if not self.params.allow_overlap and not await self._leases.claim_busy(scheduled):
                log.warning(
                    "timer: the tick of %s skipped: the previous tick's chain is still "
                    "running (allow_overlap: false)",
                    when,
                    extra=self._tags,
                )
                return
        except StateError as exc:
            log.error("timer: the tick of %s not fired: %s", when, exc, extra=self._tags)
            return
        self._engine.spawn(self._chain(scheduled, catch_up))

    async def _chain(self, scheduled: float, catch_up: bool) -> None:
        assert self._leases is not None and self._engine is not None
        tick = TimerTick(str(uuid.uuid4()), self._tags)
        ev = {
            "scheduledAt": self._iso(scheduled),
            "firedAt": self._iso(self.clock(), "milliseconds"),
            "sessionId": tick.session_id,
            "nodeId": self.id,
            "catchUp": catch_up,
        }
        if self.params.allow_overlap:
            await self._engine.fire(self, "out", ev, tick)
            return
        async with self._leases.holding_busy(scheduled):
            await self._engine.fire(self, "out", ev, tick)

    def _iso(self, t: float, timespec: str = "seconds") -> str:
        return iso_time(t, self.schedule.zone, timespec)


class TimerTick:
    """The invocation of one tick's chain. Nobody waits for an answer: emits are dropped."""

    __slots__ = ("_tags", "session_id")

    def __init__(self, session_id: str, tags: dict[str, Any]):
        self.session_id = session_id
        self._tags = tags

    def emit(self, name: str, payload: Any) -> None:
        log.debug(
            "emit(%r) in a timer's chain: there is no client to answer; dropped",
            name,
            extra={**self._tags, "session": self.session_id},
        )

    def fail(self, node_id: str, error: BaseException) -> None:
        """The engine has logged it; a tick has nobody else to tell."""
