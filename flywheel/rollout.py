"""The local endpoint's canary rollout: what SageMaker's deployment guardrails do, on the local figures.

When a new version is approved while the team's endpoint serves one (``deploy_target: realtime``),
the deploy Lambda updates the endpoint blue/green with a canary and auto-rollback on the endpoint's
CloudWatch alarms (:func:`lambdas.deploy.actions.deployment_config`). The local runtime does the same
with the same settings:

* the settings are a :class:`lambdas.deploy.config.DeployConfig` — the type the deploy handler
  validates — filled from the team's config (``deploy_target``, ``instances.endpoint``, the
  environment's ``endpoint_min_instances``) and its ``deployment`` settings (:func:`local_rollout`: the
  deployed canary share, the bake capped at 5 s; :data:`LOCAL_ROLLOUT` when a team has none, canary
  20 %); the canary share, bake and alarm names are read back from the ``DeploymentConfig`` the
  Lambda would send to ``UpdateEndpoint`` (:meth:`RolloutSettings.from_deploy_config`);
* each alarm named in ``AutoRollbackConfiguration`` has a local rule (:class:`AlarmRule`) on the
  canary's own figures: ``<endpoint>-5xx`` — its ``Invocation5XXErrors`` sum above 0;
  ``<endpoint>-latency`` — its ``ModelLatency`` p99 above :data:`LATENCY_THRESHOLD_MS` (once it has
  :data:`LATENCY_DATAPOINTS` successful invocations);
* :class:`CanaryRouter` sends the canary share of requests to the new version (deterministically:
  exactly ``percent`` of every 100 requests, evenly spaced — every 5th at 20 %) and the rest to the
  champion; an alarm during the bake rolls back at once (all traffic to the champion); a bake that
  ends without alarm shifts all traffic to the new version. SageMaker retries nothing, so a request
  the canary failed stays failed: at most the canary share of requests fails during the bake.

``serverless`` and ``batch`` teams are updated all at once, as the Lambda does (guardrails do not
apply to serverless endpoints).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from flywheel.serving import Router, Target, percentile

#: The local deployment settings, as the deploy Lambda's environment would carry them.
LOCAL_ROLLOUT: Final[Mapping[str, str]] = {
    "CANARY_SIZE_TYPE": "CAPACITY_PERCENT",
    "CANARY_SIZE": "20",
    "BAKE_SECONDS": "3",
    "TERMINATION_WAIT_SECONDS": "0",
    "MAX_EXECUTION_SECONDS": "600",
}
#: The longest bake the local endpoint waits (a demo cannot wait the deployed 10 minutes); the team's
#: canary share, serverless settings and alarms are the deployed ones (:func:`local_rollout`).
LOCAL_MAX_BAKE_SECONDS: Final = 3
#: The local latency alarm: canary ModelLatency p99 above this (CloudWatch's is in microseconds).
LATENCY_THRESHOLD_MS: Final = 1000.0
#: Successful canary invocations the latency alarm needs before it can fire (one slow first call is no alarm).
LATENCY_DATAPOINTS: Final = 10
#: Local stand-ins for the identifiers a Lambda's environment holds (validated by DeployConfig).
_LOCAL_IDS: Final[Mapping[str, str]] = {
    "MODEL_EXECUTION_ROLE_ARN": "arn:aws:iam::{account}:role/flywheel/local/model/{team}",
    "SUBNET_IDS": "subnet-00000000000000001",
    "SECURITY_GROUP_IDS": "sg-00000000000000001",
    "IDEMPOTENCY_TABLE": "flywheel-local-lifecycle",
}


def local_rollout(deployment: Any) -> dict[str, str]:
    """The deploy Lambda's rollout variables of a team's ``deployment`` settings, as the local endpoint runs
    them: the same canary (percent, or an instance count — simulated on the smallest fleet it fits, twice
    its size, i.e. the largest share SageMaker allows: 50 %), serverless memory and concurrency; the bake
    capped at :data:`LOCAL_MAX_BAKE_SECONDS`, no termination wait (no old fleet to keep)."""
    from lambdas.deploy.config import rollout_environ

    size_type, size = deployment.canary
    environ = rollout_environ(
        canary_size_type=size_type,
        canary_size=size,
        bake_seconds=min(int(deployment.bake_seconds), LOCAL_MAX_BAKE_SECONDS),
        termination_wait_seconds=0,
        max_execution_seconds=int(LOCAL_ROLLOUT["MAX_EXECUTION_SECONDS"]),
        serverless_memory_mb=int(deployment.serverless_memory_mb),
        serverless_max_concurrency=int(deployment.serverless_max_concurrency),
    )
    if size_type == "INSTANCE_COUNT":
        environ["MIN_INSTANCES"] = str(2 * size)
    return environ


def deploy_config(
    *,
    team: str,
    group: str,
    endpoint: str,
    account: str,
    deploy_target: str,
    instance_type: str,
    min_instances: int,
    volume_key: str,
    capture_bucket: str,
    capture_key: str,
    overrides: Mapping[str, str] | None = None,
    deployment: Any = None,
) -> Any:
    """The team's :class:`lambdas.deploy.config.DeployConfig`, validated as the deploy handler validates it.

    ``deployment``: the team's ``teams[].deployment`` settings (:func:`local_rollout`); ``overrides``
    (deploy-Lambda variables) win over both them and :data:`LOCAL_ROLLOUT`."""
    from lambdas.deploy.config import DeployConfig

    environ = {
        "TEAM": team,
        "MODEL_PACKAGE_GROUP": group,
        "ENDPOINT_NAME": endpoint,
        "ACCOUNT_ID": account,
        "DEPLOY_TARGET": deploy_target,
        "VOLUME_KMS_KEY_ID": volume_key,
        "CAPTURE_BUCKET": capture_bucket,
        "CAPTURE_KMS_KEY_ID": capture_key,
        "INSTANCE_TYPE": instance_type,
        "MIN_INSTANCES": str(min_instances),
        "ROLLBACK_ALARMS": ",".join(alarm_names(endpoint)),
        **{name: value.format(account=account, team=team) for name, value in _LOCAL_IDS.items()},
        **LOCAL_ROLLOUT,
        **(local_rollout(deployment) if deployment is not None else {}),
        **(overrides or {}),
    }
    return DeployConfig.from_environ(environ)


def alarm_names(endpoint: str) -> tuple[str, str]:
    """The endpoint's rollback alarms: ``<endpoint>-5xx``, ``<endpoint>-latency``."""
    return f"{endpoint}-5xx", f"{endpoint}-latency"


@dataclass(frozen=True)
class AlarmRule:
    """A CloudWatch alarm on the canary variant, evaluated on the local endpoint's figures."""

    name: str
    metric: str  # Invocation5XXErrors (Sum) or ModelLatency (p99, ms)
    threshold: float
    datapoints: int = 1

    @classmethod
    def for_alarm(cls, name: str, latency_threshold_ms: float = LATENCY_THRESHOLD_MS) -> AlarmRule:
        """The rule of a rollback alarm named ``<endpoint>-5xx`` or ``<endpoint>-latency``."""
        if name.endswith("-5xx"):
            return cls(name, "Invocation5XXErrors", 0.0)
        if name.endswith("-latency"):
            return cls(name, "ModelLatency", latency_threshold_ms, LATENCY_DATAPOINTS)
        raise ValueError(f"rollback alarm {name!r}: the local endpoint knows <endpoint>-5xx and <endpoint>-latency")

    def breach(self, figures: VariantFigures) -> str | None:
        """Why the alarm is in ALARM on ``figures``, or None (OK, or not enough data)."""
        if self.metric == "Invocation5XXErrors":
            if figures.errors_5xx > self.threshold:
                return (
                    f"{self.name}: Invocation5XXErrors {figures.errors_5xx} > {self.threshold:g} "
                    f"({figures.errors_5xx}/{figures.requests} canary requests failed)"
                )
            return None
        if len(figures.latencies_ms) < self.datapoints:
            return None
        p99 = percentile(sorted(figures.latencies_ms), 0.99)
        if p99 > self.threshold:
            return f"{self.name}: ModelLatency p99 {p99:.1f} ms > {self.threshold:g} ms"
        return None


@dataclass(frozen=True)
class RolloutSettings:
    """Canary share, bake and alarm rules of one rollout (stored with it in the state dir)."""

    canary_percent: float
    bake_seconds: float
    alarms: tuple[AlarmRule, ...]

    @classmethod
    def from_deploy_config(
        cls, config: Any, *, latency_threshold_ms: float = LATENCY_THRESHOLD_MS
    ) -> RolloutSettings | None:
        """The settings of the ``DeploymentConfig`` the deploy Lambda would send; None unless ``realtime``
        (serverless endpoints and batch models are updated all at once)."""
        if config.deploy_target != "realtime":
            return None
        from lambdas.deploy.actions import deployment_config

        request = deployment_config(config)
        routing = request["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
        size = routing["CanarySize"]
        if size["Type"] == "CAPACITY_PERCENT":
            percent = float(size["Value"])
        else:  # INSTANCE_COUNT: the canary fleet's share of the endpoint's instances
            percent = 100.0 * int(size["Value"]) / max(1, int(config.min_instances))
        alarms = tuple(
            AlarmRule.for_alarm(alarm["AlarmName"], latency_threshold_ms)
            for alarm in request["AutoRollbackConfiguration"]["Alarms"]
        )
        return cls(percent, float(routing["WaitIntervalInSeconds"]), alarms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "canary_percent": self.canary_percent,
            "bake_seconds": self.bake_seconds,
            "alarms": [asdict(rule) for rule in self.alarms],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutSettings:
        """Inverse of :meth:`to_dict`."""
        return cls(
            float(data["canary_percent"]),
            float(data["bake_seconds"]),
            tuple(AlarmRule(**rule) for rule in data.get("alarms") or ()),
        )


@dataclass
class VariantFigures:
    """What one fleet (champion or canary) answered during the rollout."""

    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts, 5xx rate and ModelLatency percentiles."""
        ordered = sorted(self.latencies_ms)
        return {
            "requests": self.requests,
            "errors_4xx": self.errors_4xx,
            "errors_5xx": self.errors_5xx,
            "rate_5xx": self.errors_5xx / self.requests if self.requests else 0.0,
            "p50_ms": percentile(ordered, 0.5) if ordered else None,
            "p99_ms": percentile(ordered, 0.99) if ordered else None,
        }


class CanaryRouter(Router):
    """Champion + canary during a bake, then one of them: the local endpoint's blue/green rollout.

    ``on_decision`` is called once, with the outcome (:meth:`outcome`), from the thread that decided (a
    request's, or the bake timer's) and outside the router's lock. :meth:`cancel` ends the rollout
    without a verdict on the canary (e.g. it was rejected, or another version superseded it).
    """

    def __init__(
        self,
        champion: Target,
        canary: Target,
        settings: RolloutSettings,
        *,
        rollout_id: str | None = None,
        on_decision: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(champion)
        self.canary: Target | None = canary
        self.settings = settings
        self.rollout_id = rollout_id or uuid.uuid4().hex
        self.on_decision = on_decision
        self._clock = clock
        self._started = clock()
        self._routed = 0
        self.figures = {"champion": VariantFigures(), "canary": VariantFigures()}
        self.decision: dict[str, Any] | None = None
        self.decided = threading.Event()
        self._candidate = canary
        self._champion_before = champion
        self._timer = threading.Timer(settings.bake_seconds, self._bake_over)
        self._timer.daemon = True
        self._timer.start()

    # Router -------------------------------------------------------------------------------------------
    def pick(self) -> Target:
        """Every request: the canary for exactly ``canary_percent`` % of them (evenly spaced), else the champion."""
        with self.lock:
            if self.canary is None:
                return self.champion
            n = self._routed
            self._routed += 1
            share = self.settings.canary_percent / 100.0
            return self.canary if int((n + 1) * share) > int(n * share) else self.champion

    def observe(self, target: Target, status: int, model_ms: float | None) -> None:
        """Count one response of ``target``; an alarm on the canary rolls back at once."""
        decided = None
        with self.lock:
            if self.decision is not None:
                return
            role = "canary" if target is self._candidate else "champion"
            figures = self.figures[role]
            figures.requests += 1
            if 400 <= status < 500:
                figures.errors_4xx += 1
            elif status >= 500:
                figures.errors_5xx += 1
            elif model_ms is not None:
                figures.latencies_ms.append(model_ms)
            if role == "canary":
                reason = self._breach()
                if reason is not None:
                    decided = self._decide("rolled-back", reason)
        self._announce(decided)

    # The bake -----------------------------------------------------------------------------------------
    def _breach(self) -> str | None:
        for rule in self.settings.alarms:
            reason = rule.breach(self.figures["canary"])
            if reason is not None:
                return reason
        return None

    def _bake_over(self) -> None:
        with self.lock:
            if self.decision is not None:
                return
            reason = self._breach()
            if reason is not None:
                decided = self._decide("rolled-back", reason)
            else:
                names = ", ".join(rule.name for rule in self.settings.alarms) or "none"
                reason = f"no alarm during the {self.settings.bake_seconds:g} s bake ({names})"
                decided = self._decide("promoted", reason)
        self._announce(decided)

    def cancel(self, reason: str) -> dict[str, Any] | None:
        """End the rollout on the champion without a verdict (``cancelled``); None if already decided."""
        with self.lock:
            decided = None if self.decision is not None else self._decide("cancelled", reason)
        self._announce(decided)
        return decided

    def _decide(self, outcome: str, reason: str) -> dict[str, Any]:
        """Under the lock: switch traffic and freeze the outcome."""
        self._timer.cancel()
        if outcome == "promoted":
            self.retired.append(self.champion)
            self.champion = self._candidate
        else:
            self.retired.append(self._candidate)
        self.canary = None
        self.decision = {
            "rollout_id": self.rollout_id,
            "outcome": outcome,
            "reason": reason,
            "version": self._candidate.version,
            "champion_version": self._champion_before.version,
            "serving_version": self.champion.version,
            "canary_percent": self.settings.canary_percent,
            "bake_seconds": self.settings.bake_seconds,
            "elapsed_s": round(self._clock() - self._started, 3),
            "figures": {role: figures.summary() for role, figures in self.figures.items()},
        }
        return self.decision

    def _announce(self, decided: dict[str, Any] | None) -> None:
        if decided is None:
            return
        self.decided.set()
        if self.on_decision is not None:
            self.on_decision(decided)

    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The outcome once decided (None if ``timeout`` passes first)."""
        self.decided.wait(timeout)
        return self.decision

    def targets(self) -> list[Target]:
        """Champion, canary (during the bake) and retired targets."""
        return [*super().targets(), *([self.canary] if self.canary is not None else [])]

    def close(self) -> None:
        """Stop the bake timer and close every model."""
        self._timer.cancel()
        super().close()


class EndpointDriver:
    """Keeps a running local endpoint's routing in line with the team's deployment record.

    At start and then every ``poll_s`` seconds (so that ``flywheel approve`` in another terminal reaches
    a running ``flywheel serve``): a ``Rollout`` in the record starts a :class:`CanaryRouter` (champion +
    canary); a rollout withdrawn while it bakes (rejected, superseded, undeployed) is cancelled; another
    champion in the record (an all-at-once update) replaces the served model. Outcomes go to
    ``record_outcome`` (the state store) and then ``notify`` (what the CLI prints).
    """

    def __init__(
        self,
        read_record: Callable[[], dict[str, Any] | None],
        load: Callable[[Mapping[str, Any]], Target],
        record_outcome: Callable[[dict[str, Any]], None],
        notify: Callable[[str, dict[str, Any]], None] | None = None,
        *,
        poll_s: float = 0.5,
    ) -> None:
        self.read_record = read_record
        self.load = load
        self.record_outcome = record_outcome
        self.notify = notify or (lambda kind, data: None)
        self.poll_s = poll_s
        self.routers: list[Router] = []
        self.server: Any = None
        self._handled: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def router(self) -> Router:
        """The router requests use now."""
        return self.routers[-1]

    def start_router(self, record: Mapping[str, Any]) -> Router:
        """The first router: the record's champion, with its rollout's canary if one is in progress."""
        router = self._router_for(record, None)
        self.routers.append(router)
        return router

    def _router_for(self, record: Mapping[str, Any], champion: Target | None) -> Router:
        if champion is None or champion.package_arn != record["ModelPackageArn"]:
            champion = self.load(record)
        rollout = record.get("Rollout")
        if not rollout:
            return Router(champion)
        rollout_id = str(rollout["RolloutId"])
        self._handled.add(rollout_id)
        settings = RolloutSettings.from_dict(rollout["Settings"])
        router = CanaryRouter(champion, self.load(rollout), settings, rollout_id=rollout_id, on_decision=self._decided)
        self.notify("rollout-started", {"rollout": dict(rollout), "settings": settings, "router": router})
        return router

    def _decided(self, decision: dict[str, Any]) -> None:
        self.record_outcome(decision)
        self.notify(str(decision["outcome"]), decision)

    def attach(self, server: Any) -> None:
        """Follow the record for ``server`` (a :class:`flywheel.serving.RunningServer`) until it stops."""
        self.server = server
        server.on_stop.append(self.stop)
        server.on_closed.append(self.close)
        self._thread = threading.Thread(target=self._watch, name="endpoint-driver", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception:  # a corrupt or locked record: keep serving what is served, try again
                import logging

                logging.getLogger("flywheel.rollout").exception("could not follow the deployment record")

    def poll(self) -> None:
        """One look at the record (see the class docstring)."""
        record = self.read_record()
        current = self.router
        rollout = (record or {}).get("Rollout") or {}
        if isinstance(current, CanaryRouter) and current.decision is None:
            if rollout.get("RolloutId") != current.rollout_id:
                current.cancel("the rollout was withdrawn (rejected, superseded or undeployed) during its bake")
            return
        if record is None or (rollout and rollout.get("RolloutId") in self._handled):
            return  # nothing deployed any more (keep answering), or this rollout's outcome is being recorded
        if rollout or record["ModelPackageArn"] != current.champion.package_arn:
            router = self._router_for(record, current.champion)
            self.routers.append(router)
            self.server.set_router(router)
            if not rollout:
                self.notify("replaced", {"version": router.champion.version})

    def stop(self) -> None:
        """Stop following (the server closes the routers' models)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def close(self) -> None:
        """Close every router's models."""
        for router in self.routers:
            router.close()
