"""Who may assume a team's persona roles (``principals:`` of a team in ``teams.yaml``).

Each persona (``data_scientist``, ``approver``, ``operator``; see ``stacks/components/personas.py``) lists
the principals that may assume it, each one of

* an AWS account id (``"123456789012"``): every IAM principal of that account that its own identity
  policy lets call ``sts:AssumeRole`` on the persona role (delegate the decision to that account's IAM);
* an IAM role ARN pattern, typically an IAM Identity Center permission set's role
  (``arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_ChurnScientist_*``):
  only principals whose ``aws:PrincipalArn`` matches it. The account is 12 digits or ``{account}`` (the
  environment's own account: SSO creates a permission set's role in every account it is assigned to, so
  one pattern serves dev, staging and prod), never a wildcard; the pattern names a role (``role/...``):
  people reach AWS through federation, not IAM users.

A persona with no principals is assumable by its environment's own account (account-id semantics).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

ACCOUNT = re.compile(r"^\d{12}$")
#: ``arn:<partition>:iam::<account>:role/<path and name, wildcards allowed>`` (IAM's name characters).
ROLE_ARN_PATTERN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::(\d{12}|\{account\}):role/[A-Za-z0-9+=,.@_\-/*?]{1,512}$")
#: Stands for the environment's own account in a pattern (SSO roles live in each account they grant).
OWN_ACCOUNT = "{account}"
#: The YAML keys, in the order of :data:`naming.PERSONAS` (``data-scientist``, ``approver``, ``operator``).
PERSONA_FIELDS = ("data_scientist", "approver", "operator")


def principal_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable persona principal, or None."""
    if ACCOUNT.match(value):
        return None
    if ROLE_ARN_PATTERN.match(value):
        name = value.split(":role/", 1)[1]
        if name.strip("*?/") == "":
            return f"{value!r} matches every role of the account: name the role or permission set"
        return None
    if re.match(r"^arn:[^:]+:iam::[^:]*:root$", value):
        return f"{value!r}: write the account id ({value.split(':')[4]!r}) for an account principal"
    if re.match(r"^arn:[^:]+:iam::[^:]*\*", value):
        return f"{value!r}: the account of a principal pattern must be 12 digits, not a wildcard"
    return (
        f"{value!r} is neither an account id (12 digits, quoted) nor an IAM role ARN pattern "
        "(arn:aws:iam::<account>:role/<path/name>, e.g. an SSO permission set's AWSReservedSSO_<name>_* role)"
    )


class PersonaPrincipals(BaseModel):
    """Principals per persona; see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_scientist: tuple[str, ...] = ()
    approver: tuple[str, ...] = ()
    operator: tuple[str, ...] = ()

    @field_validator("data_scientist", "approver", "operator")
    @classmethod
    def _principals(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for value in v:
            problem = principal_problem(value)
            if problem:
                raise ValueError(problem)
        if len(set(v)) != len(v):
            raise ValueError("a principal is listed twice")
        return v

    @model_validator(mode="after")
    def _separation_of_duties(self) -> PersonaPrincipals:
        # Account ids delegate to that account's IAM (which decides per person); a role pattern is a
        # person's role, and one role holding both would let a person approve their own model.
        patterns = {f: {p for p in getattr(self, f) if not ACCOUNT.match(p)} for f in PERSONA_FIELDS}
        both = sorted(patterns["data_scientist"] & patterns["approver"])
        if both:
            raise ValueError(
                f"{both[0]!r} may assume both data_scientist and approver: separation of duties needs "
                "different principals (a person must not approve their own model)"
            )
        return self

    def of(self, persona: str, account: str) -> tuple[str, ...]:
        """The principals of ``persona`` (``data-scientist`` or ``data_scientist``) in the environment of
        ``account`` (``{account}`` replaced by it)."""
        return tuple(p.replace(OWN_ACCOUNT, account) for p in getattr(self, persona.replace("-", "_")))
