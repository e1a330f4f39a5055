"""What clients may send the scheduler's HTTP API: a job in Flask-APScheduler's format."""

import inspect
import unicodedata
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.util import ref_to_obj
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from backend.scheduler.config_jobs import TRIGGERS
from backend.scheduler.models import JOB_ID_LENGTH

# Each trigger's fields, as Flask-APScheduler reads them from a definition.
INTERVAL_UNITS = ("weeks", "days", "hours", "minutes", "seconds")
TRIGGER_FIELDS = {
    "date": {"run_date", "timezone"},
    "interval": {*INTERVAL_UNITS, "start_date", "end_date", "timezone"},
    "cron": {*CronTrigger.FIELD_NAMES, "start_date", "end_date", "timezone"},
}
# Within these, computing run times cannot overflow Python's datetime.
MAX_INTERVAL = timedelta(days=100 * 366)
YEARS = range(1970, 9000)
MAX_SECONDS = 2**31 - 1
# Deeper args and kwargs buy nothing but risk (recursion when pickled or answered).
MAX_DEPTH = 20
# A job id must be named in paths: no "/", no spaces, nothing to escape.
JOB_ID = r"[A-Za-z0-9_.:-]+\Z"


def _years(moment: datetime) -> None:
    if moment.year not in YEARS:
        raise ValidationError(f"Must be between the years {YEARS.start} and {YEARS[-1]}.")


def _printable(text: str) -> None:
    if any(unicodedata.category(character)[0] == "C" for character in text):
        raise ValidationError("Must not contain control characters.")


def _shallow(value: list | dict) -> None:
    if _nested_deeper_than(value, MAX_DEPTH):
        raise ValidationError(f"Must not be nested more than {MAX_DEPTH} deep.")


def _nested_deeper_than(value: object, limit: int) -> bool:
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        return False
    return limit == 0 or any(_nested_deeper_than(child, limit - 1) for child in value)


class CronExpression(fields.Field):
    """One field of a cron trigger: a number, or an expression such as "*/5" or "mon-fri"."""

    default_error_messages = {"invalid": "Not a valid cron expression for this field."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | str:
        if isinstance(value, bool) or not isinstance(value, int | str) or len(str(value)) > 100:
            raise self.make_error("invalid")
        try:
            CronTrigger(**{str(attr): value}, timezone="UTC")
        except ValueError as error:
            raise self.make_error("invalid") from error
        return value


class TimeZone(fields.Field[ZoneInfo]):
    """An IANA time zone name, such as "Europe/Paris"; loaded as a ZoneInfo."""

    default_error_messages = {"invalid": "Not a known time zone."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> ZoneInfo:
        if not isinstance(value, str) or len(value) > 100:
            raise self.make_error("invalid")
        try:
            return ZoneInfo(value)
        # A name that is no zone can also be a directory or a path that cannot be read.
        except (ZoneInfoNotFoundError, ValueError, OSError) as error:
            raise self.make_error("invalid") from error


def _date() -> fields.DateTime:
    return fields.DateTime(validate=_years)


def _amount() -> fields.Float:
    return fields.Float(allow_nan=False, validate=validate.Range(min=0))


class CreateJobSchema(Schema):
    """A new job: its id, the function it calls with which arguments, and its trigger."""

    id = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=JOB_ID_LENGTH),
            validate.Regexp(JOB_ID, error="Only letters, digits, '_', '-', '.' and ':'."),
        ],
    )
    func = fields.String(required=True)
    args = fields.List(fields.Raw(), validate=_shallow)
    kwargs = fields.Dict(keys=fields.String(), validate=_shallow)
    name = fields.String(validate=[validate.Length(min=1, max=JOB_ID_LENGTH), _printable])
    trigger = fields.String(required=True, validate=validate.OneOf(sorted(TRIGGER_FIELDS)))
    misfire_grace_time = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=MAX_SECONDS)
    )
    coalesce = fields.Boolean()
    max_instances = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000))
    # The trigger's fields, which depend on the trigger (TRIGGER_FIELDS).
    run_date = _date()
    start_date = _date()
    end_date = _date()
    timezone = TimeZone()
    weeks = _amount()
    days = _amount()
    hours = _amount()
    minutes = _amount()
    seconds = _amount()
    year = CronExpression()
    month = CronExpression()
    day = CronExpression()
    week = CronExpression()
    day_of_week = CronExpression()
    hour = CronExpression()
    minute = CronExpression()
    second = CronExpression()

    @validates_schema
    def _fields_fit_the_trigger(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = data.keys() & set().union(*TRIGGER_FIELDS.values())
        trigger = data.get("trigger")
        if trigger is None:
            wrong, problem = given, 'Send "trigger" with it: a trigger is replaced whole.'
        else:
            wrong, problem = given - TRIGGER_FIELDS[trigger], f"Not a field of a {trigger} trigger."
        if wrong:
            raise ValidationError(dict.fromkeys(sorted(wrong), problem))


class UpdateJobSchema(CreateJobSchema):
    """Any fields of a job but its id. A trigger sent replaces the job's trigger whole."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(partial=True, exclude=("id",), **kwargs)


def make_trigger(definition: dict[str, Any], default_timezone: tzinfo) -> BaseTrigger:
    """Take the trigger and its fields out of a loaded definition, and build it.

    Raises ValidationError naming the field when the trigger could not run.
    """
    name = definition.pop("trigger")
    options = {field: definition.pop(field) for field in TRIGGER_FIELDS[name] & definition.keys()}
    options.setdefault("timezone", default_timezone)
    if name == "interval":
        _check_interval(options)
    now = datetime.now(options["timezone"])
    try:
        trigger = TRIGGERS[name](**options)
        first_run = trigger.get_next_fire_time(None, now)
    except (ValueError, OverflowError) as error:
        raise ValidationError(
            {"trigger": "These trigger fields do not make a schedule."}
        ) from error
    if first_run is None:
        raise ValidationError({"trigger": "This trigger would never fire."})
    if name == "date" and first_run < now:
        raise ValidationError({"run_date": "In the past. Leave it out to run the job once, now."})
    return trigger


def _check_interval(options: dict[str, Any]) -> None:
    try:
        interval = timedelta(**{unit: options.get(unit, 0) for unit in INTERVAL_UNITS})
    except OverflowError:
        interval = timedelta.max
    if not timedelta(0) < interval <= MAX_INTERVAL:
        raise ValidationError(
            {
                "trigger": "The weeks, days, hours, minutes and seconds must add up to "
                "more than 0 and at most 100 years."
            }
        )


def check_allowed(func: str, allowed: set[str]) -> None:
    if func not in allowed:
        allowed_list = ", ".join(sorted(allowed))
        raise ValidationError({"func": f"May not be scheduled over HTTP. Allowed: {allowed_list}."})


def check_arguments(func: str, args: list | tuple, kwargs: dict[str, Any]) -> None:
    """Refuse arguments the function does not take, before the job is stored."""
    try:
        signature = inspect.signature(ref_to_obj(func))
    except (LookupError, TypeError, ValueError) as error:
        raise ValidationError({"func": "This function cannot be imported."}) from error
    parameters = f"{func}{signature.replace(return_annotation=inspect.Signature.empty)}"
    try:
        signature.bind_partial(**kwargs)
    except TypeError:
        raise ValidationError({"kwargs": f"Must name parameters of {parameters}."}) from None
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        raise ValidationError({"args": f"Must fit the parameters of {parameters}."}) from None
