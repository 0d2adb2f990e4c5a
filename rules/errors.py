"""Errors of the rules layer, each with a stable code (only the API maps codes to HTTP statuses)."""

from __future__ import annotations


class RulesError(Exception):
    code = "rules_error"


class RuleFileError(RulesError):
    """A rule file cannot be read, parsed or typed; the message names the file, table and rule."""

    code = "rule_file_invalid"

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


class InputError(RulesError):
    """The values handed to the evaluator do not fit the vocabulary (missing, null or wrongly typed)."""

    code = "rules_input_invalid"


class HitPolicyViolation(RulesError):
    """A UNIQUE table matched several rules, or an ANY table matched rules with different outputs."""

    code = "hit_policy_violation"

    def __init__(self, table: str, policy: str, rules: list[str]) -> None:
        self.table = table
        self.rules = rules
        super().__init__(f"table {table}: hit policy {policy} violated by rules {', '.join(rules)}")


class VersionNotFoundError(RulesError):
    code = "ruleset_version_not_found"

    def __init__(self, version: str) -> None:
        super().__init__(f"no submitted ruleset version {version!r}; `crm rules history` lists them")


class ApprovalRefusedError(RulesError):
    """Maker-checker: what was asked is not allowed for this version or this person."""

    code = "approval_refused"


class ActivationRefusedError(RulesError):
    code = "activation_refused"


class NoActiveRulesetError(RulesError):
    code = "no_active_ruleset"

    def __init__(self) -> None:
        super().__init__("no ruleset version is active; submit, approve and activate one (`crm rules --help`)")


class HistoryTamperedError(RulesError):
    """The append-only history no longer verifies: an entry or a stored version was changed."""

    code = "rule_history_tampered"
