"""Status polling: a timer that schedules what is due, and a queue worker that checks one import;
and the retention's daily purge.

Thin adapters to shared.flows.poll. The timer runs as a singleton on Azure (one tick at a time across
instances); the queue worker scales out with the queue, bounded by host.json's `queues` settings.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.flows.poll import check_import, row_of_message, schedule_due_checks
from shared.flows.retention import purge
from shared.flows.runtime import current_pipeline

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("fec_status_timer")
@bp.timer_trigger(arg_name="timer", schedule="%STATUS_POLL_SCHEDULE%", run_on_startup=False, use_monitor=True)
def fec_status_timer(timer: func.TimerRequest) -> None:
    """Enqueue one status check per due import (bounded by a time and a count budget), then
    retry the reports still owed (bounded too)."""
    if timer.past_due:
        log.warning("status poll is running late")
    pipeline = current_pipeline()
    summary = schedule_due_checks(pipeline, pipeline.status_queue.send_message)
    log.log(logging.INFO if summary.outcomes else logging.DEBUG, "status poll: %s", summary)
    reports = pipeline.verdict_reports.retry_owed()  # the reports next to the files that could not be written
    if reports:
        log.info("reports retried: %s", dict(reports))


@bp.function_name("fec_status_check")
@bp.queue_trigger(arg_name="message", queue_name="%STATUS_CHECK_QUEUE%", connection="AzureWebJobsStorage")
def fec_status_check(message: func.QueueMessage) -> None:
    """Check one import. An exception fails the message: the queue retries it, then poisons it."""
    row = row_of_message(message.get_body().decode("utf-8"))
    outcome = check_import(current_pipeline(), row)
    log.debug("status check %s: %s", row, outcome)


@bp.function_name("fec_ledger_purge")
@bp.timer_trigger(arg_name="timer", schedule="%LEDGER_PURGE_SCHEDULE%", run_on_startup=False, use_monitor=True)
def fec_ledger_purge(timer: func.TimerRequest) -> None:
    """Remove the final imports past LEDGER_RETENTION_DAYS (bounded by a time and a count budget;
    the rest waits for the next run), logged as one `ledger.purged` event."""
    if timer.past_due:
        log.warning("ledger purge is running late")
    purge(current_pipeline())
