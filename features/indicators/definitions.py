"""What an indicator is: one definition per indicator, from which the catalog and the Feast schema are made."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Family(StrEnum):
    """The six indicator families of brokerage CRM, branch indicators, and the risk preference assessment."""

    BROKER_MANAGEMENT = "broker_management"
    CLIENT_CATEGORY = "client_category"
    CLIENT_VALUE = "client_value"
    ACCOUNT_INFO = "account_info"
    CLIENT_FEEDBACK = "client_feedback"
    CLIENT_FLOW = "client_flow"
    BRANCH = "branch"
    RISK_PREFERENCE = "risk_preference"


FAMILY_ZH = {
    Family.BROKER_MANAGEMENT: "经纪人管理",
    Family.CLIENT_CATEGORY: "客户类别",
    Family.CLIENT_VALUE: "客户价值",
    Family.ACCOUNT_INFO: "客户帐户信息",
    Family.CLIENT_FEEDBACK: "客户反馈",
    Family.CLIENT_FLOW: "客户流动性",
    Family.BRANCH: "营业部",
    Family.RISK_PREFERENCE: "风险偏好评估",
}

Entity = Literal["client", "broker", "branch"]
ValueType = Literal["float64", "int64", "string", "bool"]

ENTITY_KEY: dict[str, str] = {"client": "client_id", "broker": "broker_id", "branch": "branch_id"}


class Indicator(BaseModel):
    """One indicator: its name in code, its family and entity, and what it means for people."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    family: Family
    entity: Entity
    formula: str
    window: str
    unit: str
    zh: str
    type: ValueType
    missing: str = ""

    def as_row(self) -> dict[str, str]:
        return {
            "name": self.name,
            "family": self.family.value,
            "family_zh": FAMILY_ZH[self.family],
            "entity": self.entity,
            "formula": self.formula,
            "window": self.window,
            "unit": self.unit,
            "zh": self.zh,
            "type": self.type,
            "missing": self.missing,
        }


def indicator(name: str, family: Family, entity: Entity, formula: str, window: str, unit: str, zh: str,
              type: ValueType = "float64", missing: str = "") -> Indicator:
    return Indicator(name=name, family=family, entity=entity, formula=formula, window=window, unit=unit, zh=zh,
                     type=type, missing=missing)
