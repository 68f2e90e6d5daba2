"""Building the incident store and the notifier from settings (the entry point's job)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from logwarden.alerts import MODEL_RULE_ID
from logwarden.errors import ConfigError
from logwarden.incidents.backend import MemoryBackend
from logwarden.incidents.dispatch import DispatchPolicy
from logwarden.incidents.store import IncidentPolicy, IncidentStore, NoiseBudget
from logwarden.notify.base import Notifier
from logwarden.settings import Settings

if TYPE_CHECKING:
    from logwarden.rules.loader import RuleSet

def noise_budget(settings: Settings, rules: RuleSet | None) -> NoiseBudget:
    """Each rule's own ``budget:`` (None: no limit), the model's, and the default for the rest."""
    own: dict[str, int | None] = {}
    for rule in rules.rules if rules is not None else []:
        budget = rule.meta.budget
        if budget is None or isinstance(budget, int):  # not "default"
            own[rule.meta.id] = budget
    return NoiseBudget(default=settings.rule_budget, rules={MODEL_RULE_ID: settings.model_budget, **own})


def build_store(settings: Settings, rules: RuleSet | None = None, *, require_redis: bool = False) -> IncidentStore:
    """The incident store; ``rules`` (the rule set in force) gives each rule its noise budget."""
    policy = IncidentPolicy(settings.incident_resolve_after, settings.incident_repeat_interval,
                            settings.incident_retention, budget=noise_budget(settings, rules),
                            group_by=settings.incident_group_by, group_window=settings.incident_group_window)
    if settings.redis_url is None:
        if require_redis:
            raise ConfigError("incident commands need LOGWARDEN_REDIS_URL (without it, incidents live in "
                              "memory for one run only)")
        return IncidentStore(MemoryBackend(settings.redis_prefix), policy)
    from logwarden.incidents.redis_backend import RedisBackend

    return IncidentStore(RedisBackend.from_url(settings.redis_url.get_secret_value(), settings.redis_prefix),
                         policy)


def build_notifier(settings: Settings) -> Notifier | None:
    from logwarden.notify.slack import SlackBot, SlackWebhook

    timeout = settings.slack_timeout.total_seconds()
    if settings.slack_token is not None:
        if not settings.slack_channel and not settings.slack_routes:
            raise ConfigError("LOGWARDEN_SLACK_TOKEN needs LOGWARDEN_SLACK_CHANNEL (or LOGWARDEN_SLACK_ROUTES)")
        return SlackBot(settings.slack_token.get_secret_value(), settings.slack_channel or "",
                        settings.slack_api_url, timeout, interactive=settings.slack_signing_secret is not None)
    if settings.slack_webhook_url is not None:
        return SlackWebhook(settings.slack_webhook_url.get_secret_value(), timeout)
    return None


def dispatch_policy(settings: Settings) -> DispatchPolicy:
    return DispatchPolicy(min_severity=settings.slack_min_severity, routes=dict(settings.slack_routes),
                          digest_threshold=settings.slack_digest_threshold,
                          min_interval=settings.slack_min_interval.total_seconds(),
                          lease_ms=int(settings.notify_lease.total_seconds() * 1000))
