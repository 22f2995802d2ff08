"""Timer function: a thin adapter to shared.poll. Timer triggers run as a singleton on Azure."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.poll import poll_imports
from shared.runtime import current_pipeline

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("fec_status_timer")
@bp.timer_trigger(arg_name="timer", schedule="%STATUS_POLL_SCHEDULE%", run_on_startup=False, use_monitor=True)
def fec_status_timer(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("status poll is running late")
    summary = poll_imports(current_pipeline())
    log.log(logging.INFO if summary.outcomes else logging.DEBUG, "status poll: %s", summary)
