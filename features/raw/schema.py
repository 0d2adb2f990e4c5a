"""The raw brokerage tables: one typed contract for the generator, the importer and every later stage.

Amounts are in yuan (float64, rounded to the fen), quantities in shares, rates as fractions, dates are
trading or calendar dates in Asia/Shanghai without a time of day.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ColumnType = Literal["string", "int16", "int32", "int64", "float64", "date", "bool"]


class Column(BaseModel):
    """One column of a raw table, with its meaning for people and its checks for machines."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: ColumnType
    unit: str = ""
    meaning: str
    zh: str = Field(description="The Chinese business term.")
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    allowed: tuple[str, ...] | None = None
    multiple_of: int | None = None
    references: str | None = Field(default=None, description="'table.column' this column must exist in.")


class Table(BaseModel):
    """One raw table: its columns, primary key and what one row is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    zh: str
    row: str = Field(description="What one row stands for.")
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _id(name: str, meaning: str, zh: str, references: str | None = None, nullable: bool = False) -> Column:
    return Column(name=name, type="string", meaning=meaning, zh=zh, references=references, nullable=nullable)


def _yuan(name: str, meaning: str, zh: str, *, positive: bool = False, nullable: bool = False) -> Column:
    return Column(
        name=name,
        type="float64",
        unit="yuan",
        meaning=meaning,
        zh=zh,
        minimum=0.0,
        exclusive_minimum=positive,
        nullable=nullable,
    )


def _date(name: str, meaning: str, zh: str, nullable: bool = False) -> Column:
    return Column(name=name, type="date", unit="date (Asia/Shanghai)", meaning=meaning, zh=zh, nullable=nullable)


CLIENT_TYPES = ("individual", "broker_introduced", "institution")
RISK_LEVELS = ("C1", "C2", "C3", "C4", "C5")
BOARDS = ("main", "chinext", "star")
SIDES = ("buy", "sell")
DIRECTIONS = ("in", "out")
CONTACT_CHANNELS = ("phone", "wechat", "visit", "sms")
CONTACT_OUTCOMES = ("reached", "no_answer", "interested", "declined")
COMPLAINT_CATEGORIES = ("service", "fees", "system", "advice")
REPORT_KINDS = ("market", "industry", "company", "new_stock")
IPO_STATUSES = ("not_allotted", "allotted", "abandoned")
RETENTION_ACTIONS = (
    "senior_advisor_visit", "review_commission_rate", "broker_retention_call", "investment_advisory_session",
    "investor_education", "branch_manager_call", "resolve_open_complaints",
)
RATE_CHANGE_REASONS = ("retention_review", "negotiated", "tariff")
# Tables and columns an import may leave out: they are then empty (tables) or all empty (columns).
OPTIONAL_TABLES = ("commission_rate_changes",)
OPTIONAL_COLUMNS = {"contacts": ("campaign", "action")}

BRANCHES = Table(
    name="branches",
    zh="营业部",
    row="one branch office of the brokerage",
    primary_key=("branch_id",),
    columns=(
        _id("branch_id", "Branch identifier.", "营业部编号"),
        Column(name="name", type="string", meaning="Branch name.", zh="营业部名称"),
        Column(name="city", type="string", meaning="City where the branch is.", zh="所在城市"),
        _date("opened_on", "Date the branch opened.", "开业日期"),
    ),
)

BROKERS = Table(
    name="brokers",
    zh="经纪人",
    row="one broker (account manager) employed at a branch",
    primary_key=("broker_id",),
    columns=(
        _id("broker_id", "Broker identifier.", "经纪人编号"),
        _id("branch_id", "Branch the broker works at.", "所属营业部", references="branches.branch_id"),
        _date("hired_on", "Date the broker joined.", "入职日期"),
    ),
)

CLIENTS = Table(
    name="clients",
    zh="客户",
    row="one client account (资金账户)",
    primary_key=("client_id",),
    columns=(
        _id("client_id", "Client (fund account) identifier.", "客户号"),
        Column(
            name="client_type",
            type="string",
            meaning="How the client came: on their own, introduced by a broker, or an institution.",
            zh="客户类型（个人/经纪人介绍/机构）",
            allowed=CLIENT_TYPES,
        ),
        _id("branch_id", "Branch holding the account.", "开户营业部", references="branches.branch_id"),
        _id("broker_id", "Broker who serves the client.", "服务经纪人", references="brokers.broker_id"),
        _date("opened_on", "Date the account was opened.", "开户日期"),
        _date("closed_on", "Date the account was closed; empty while open.", "销户日期", nullable=True),
        Column(
            name="commission_rate",
            type="float64",
            unit="fraction of traded amount",
            meaning="Commission charged on each trade's amount, before the 5-yuan minimum: the rate in force now "
                    "(earlier rates are in commission_rate_changes).",
            zh="佣金费率",
            minimum=0.00001,
            maximum=0.003,
        ),
        Column(
            name="risk_level",
            type="string",
            meaning="Risk tolerance from the client's suitability questionnaire, C1 (lowest) to C5.",
            zh="风险承受能力等级",
            allowed=RISK_LEVELS,
        ),
        _date("risk_assessed_on", "Date of the latest suitability questionnaire.", "风险测评日期"),
        Column(
            name="birth_year",
            type="int16",
            unit="year",
            meaning="Birth year of an individual client; empty for institutions.",
            zh="出生年份",
            nullable=True,
            minimum=1920,
            maximum=2010,
        ),
    ),
)

SECURITIES = Table(
    name="securities",
    zh="证券",
    row="one listed A-share stock",
    primary_key=("security_id",),
    columns=(
        _id("security_id", "Six-digit stock code.", "证券代码"),
        Column(name="name", type="string", meaning="Short name of the stock.", zh="证券简称"),
        Column(name="exchange", type="string", meaning="Exchange.", zh="交易所", allowed=("SH", "SZ")),
        Column(
            name="board",
            type="string",
            meaning="Listing board: main board, ChiNext or STAR market.",
            zh="板块（主板/创业板/科创板）",
            allowed=BOARDS,
        ),
        Column(name="industry", type="string", meaning="Shenwan-style level-1 industry.", zh="申万一级行业"),
        _date("listed_on", "Listing date.", "上市日期"),
        Column(name="is_st", type="bool", meaning="Under special treatment (ST) for financial distress.", zh="ST标记"),
    ),
)

DAILY_PRICES = Table(
    name="daily_prices",
    zh="日行情",
    row="one stock on one trading day it was listed",
    primary_key=("security_id", "trade_date"),
    columns=(
        _id("security_id", "Stock code.", "证券代码", references="securities.security_id"),
        _date("trade_date", "Trading day.", "交易日"),
        Column(
            name="close", type="float64", unit="yuan", meaning="Closing price.", zh="收盘价", minimum=0.0,
            exclusive_minimum=True,
        ),
        Column(
            name="prev_close",
            type="float64",
            unit="yuan",
            meaning="Previous closing price (the IPO price on the listing day).",
            zh="前收盘价",
            minimum=0.0,
            exclusive_minimum=True,
        ),
        Column(name="volume", type="int64", unit="shares", meaning="Shares traded in the market.", zh="成交量",
               minimum=0),
        _yuan("amount", "Value traded in the market.", "成交额"),
        Column(name="is_suspended", type="bool", meaning="Trading suspended that day.", zh="停牌"),
    ),
)

MARKET_INDEX = Table(
    name="market_index",
    zh="市场指数",
    row="the composite market index on one trading day",
    primary_key=("trade_date",),
    columns=(
        _date("trade_date", "Trading day.", "交易日"),
        Column(name="close", type="float64", unit="points", meaning="Index close.", zh="指数收盘", minimum=0.0,
               exclusive_minimum=True),
        Column(name="pct_change", type="float64", unit="fraction", meaning="Daily return of the index.",
               zh="涨跌幅", minimum=-0.2, maximum=0.2),
        _yuan("amount", "Value traded in the whole market.", "市场成交额"),
    ),
)

TRADES = Table(
    name="trades",
    zh="成交记录",
    row="one executed order of a client",
    primary_key=("trade_id",),
    columns=(
        Column(name="trade_id", type="int64", meaning="Trade identifier.", zh="成交编号", minimum=1),
        _id("client_id", "Client who traded.", "客户号", references="clients.client_id"),
        _id("security_id", "Stock traded.", "证券代码", references="securities.security_id"),
        _date("trade_date", "Trading day of the execution.", "成交日期"),
        Column(name="side", type="string", meaning="Buy or sell.", zh="买卖方向", allowed=SIDES),
        Column(
            name="quantity", type="int64", unit="shares", meaning="Shares traded, in lots of 100.",
            zh="成交数量", minimum=100, multiple_of=100,
        ),
        Column(name="price", type="float64", unit="yuan", meaning="Execution price per share.", zh="成交价格",
               minimum=0.0, exclusive_minimum=True),
        _yuan("amount", "Quantity × price.", "成交金额", positive=True),
        Column(name="commission", type="float64", unit="yuan",
               meaning="Commission paid: amount × the client's rate, at least 5 yuan.", zh="佣金", minimum=5.0),
        _yuan("stamp_duty", "Stamp duty, charged on sells only.", "印花税"),
    ),
)

CASH_TRANSFERS = Table(
    name="cash_transfers",
    zh="银证转账",
    row="one transfer between the client's bank account and the securities account",
    primary_key=("transfer_id",),
    columns=(
        Column(name="transfer_id", type="int64", meaning="Transfer identifier.", zh="转账流水号", minimum=1),
        _id("client_id", "Client.", "客户号", references="clients.client_id"),
        _date("transfer_date", "Trading day of the transfer.", "转账日期"),
        Column(name="direction", type="string", meaning="'in' bank→securities, 'out' securities→bank.",
               zh="转账方向（转入/转出）", allowed=DIRECTIONS),
        _yuan("amount", "Amount moved.", "转账金额", positive=True),
    ),
)

ACCOUNT_SNAPSHOTS = Table(
    name="account_snapshots",
    zh="月末资产快照",
    row="one open account at one month-end (the first snapshot is the opening state of the window)",
    primary_key=("client_id", "snapshot_date"),
    columns=(
        _id("client_id", "Client.", "客户号", references="clients.client_id"),
        _date("snapshot_date", "Month-end (calendar) date, valued at the last close on or before it.", "快照日期"),
        _yuan("cash", "Cash balance.", "资金余额"),
        _yuan("market_value", "Market value of all positions.", "证券市值"),
        _yuan("total_assets", "Cash plus market value.", "总资产"),
    ),
)

POSITIONS = Table(
    name="positions",
    zh="月末持仓",
    row="one holding of one client at one month-end",
    primary_key=("client_id", "snapshot_date", "security_id"),
    columns=(
        _id("client_id", "Client.", "客户号", references="clients.client_id"),
        _date("snapshot_date", "Month-end date.", "快照日期"),
        _id("security_id", "Stock held.", "证券代码", references="securities.security_id"),
        Column(name="quantity", type="int64", unit="shares", meaning="Shares held.", zh="持仓数量", minimum=100,
               multiple_of=100),
        Column(name="cost_price", type="float64", unit="yuan", meaning="Average cost per share, fees included.",
               zh="成本价", minimum=0.0, exclusive_minimum=True),
        _yuan("market_value", "Quantity × close.", "持仓市值"),
        _date("first_bought_on", "Date the client first bought into this holding.", "建仓日期"),
    ),
)

CONTACTS = Table(
    name="contacts",
    zh="客户联系记录",
    row="one contact from a broker to a client",
    primary_key=("contact_id",),
    columns=(
        Column(name="contact_id", type="int64", meaning="Contact identifier.", zh="联系编号", minimum=1),
        _id("client_id", "Client contacted.", "客户号", references="clients.client_id"),
        _id("broker_id", "Broker who made the contact.", "经纪人编号", references="brokers.broker_id"),
        _date("contact_date", "Date of the contact.", "联系日期"),
        Column(name="channel", type="string", meaning="Channel used.", zh="联系渠道", allowed=CONTACT_CHANNELS),
        Column(name="outcome", type="string", meaning="Result of the contact.", zh="联系结果",
               allowed=CONTACT_OUTCOMES),
        Column(name="campaign", type="string", nullable=True, zh="营销活动标签",
               meaning="Campaign the contact belonged to (a retention campaign or an action plan); empty for the "
                       "broker's ordinary contacts. Optional in imports."),
        Column(name="action", type="string", nullable=True, zh="挽留措施", allowed=RETENTION_ACTIONS,
               meaning="Retention action the contact delivered; empty for ordinary contacts. Optional in imports."),
    ),
)

COMMISSION_RATE_CHANGES = Table(
    name="commission_rate_changes",
    zh="佣金费率调整记录",
    row="one change of a client's commission rate, in force from its date on",
    primary_key=("change_id",),
    columns=(
        Column(name="change_id", type="int64", meaning="Change identifier.", zh="调整编号", minimum=1),
        _id("client_id", "Client whose rate changed.", "客户号", references="clients.client_id"),
        _date("effective_on", "First day the new rate applies.", "生效日期"),
        Column(name="old_rate", type="float64", unit="fraction of traded amount", meaning="Rate before the change.",
               zh="原佣金费率", minimum=0.00001, maximum=0.003),
        Column(name="new_rate", type="float64", unit="fraction of traded amount", meaning="Rate from the change on.",
               zh="新佣金费率", minimum=0.00001, maximum=0.003),
        Column(name="reason", type="string", meaning="Why the rate changed.", zh="调整原因",
               allowed=RATE_CHANGE_REASONS),
    ),
)

COMPLAINTS = Table(
    name="complaints",
    zh="客户投诉",
    row="one complaint filed by a client",
    primary_key=("complaint_id",),
    columns=(
        Column(name="complaint_id", type="int64", meaning="Complaint identifier.", zh="投诉编号", minimum=1),
        _id("client_id", "Client who complained.", "客户号", references="clients.client_id"),
        _id("branch_id", "Branch complained about.", "营业部编号", references="branches.branch_id"),
        _date("filed_on", "Date filed.", "投诉日期"),
        Column(name="category", type="string", meaning="What the complaint is about.", zh="投诉类别",
               allowed=COMPLAINT_CATEGORIES),
        _date("resolved_on", "Date resolved; empty while open.", "解决日期", nullable=True),
    ),
)

SATISFACTION_SURVEYS = Table(
    name="satisfaction_surveys",
    zh="满意度调查",
    row="one answered satisfaction survey",
    primary_key=("survey_id",),
    columns=(
        Column(name="survey_id", type="int64", meaning="Survey answer identifier.", zh="调查编号", minimum=1),
        _id("client_id", "Client who answered.", "客户号", references="clients.client_id"),
        _date("surveyed_on", "Date answered.", "调查日期"),
        Column(name="score", type="int16", unit="1–5", meaning="Overall satisfaction, 1 (poor) to 5 (excellent).",
               zh="满意度评分", minimum=1, maximum=5),
    ),
)

RESEARCH_REPORTS = Table(
    name="research_reports",
    zh="研究报告",
    row="one research report published to clients",
    primary_key=("report_id",),
    columns=(
        _id("report_id", "Report identifier.", "报告编号"),
        _date("published_on", "Publication date.", "发布日期"),
        Column(name="kind", type="string", meaning="Market, industry, company or new-stock report.",
               zh="报告类型", allowed=REPORT_KINDS),
        Column(name="industry", type="string", meaning="Industry covered; empty for market reports.",
               zh="所属行业", nullable=True),
        _id("security_id", "Stock covered by company and new-stock reports.", "证券代码",
            references="securities.security_id", nullable=True),
    ),
)

REPORT_READS = Table(
    name="report_reads",
    zh="研报阅读与评价",
    row="one client reading one report, with the client's rating if given",
    primary_key=("client_id", "report_id"),
    columns=(
        _id("client_id", "Reader.", "客户号", references="clients.client_id"),
        _id("report_id", "Report read.", "报告编号", references="research_reports.report_id"),
        _date("read_on", "Date read.", "阅读日期"),
        Column(name="rating", type="int16", unit="1–5", meaning="Usefulness rating; empty when not rated.",
               zh="有用性评分", nullable=True, minimum=1, maximum=5),
    ),
)

IPO_SUBSCRIPTIONS = Table(
    name="ipo_subscriptions",
    zh="新股申购",
    row="one client's subscription to one IPO",
    primary_key=("subscription_id",),
    columns=(
        Column(name="subscription_id", type="int64", meaning="Subscription identifier.", zh="申购编号", minimum=1),
        _id("client_id", "Subscriber.", "客户号", references="clients.client_id"),
        _id("security_id", "New stock.", "证券代码", references="securities.security_id"),
        _date("subscribed_on", "Subscription day.", "申购日期"),
        Column(name="applied_quantity", type="int64", unit="shares", meaning="Shares applied for.", zh="申购数量",
               minimum=100, multiple_of=100),
        Column(name="allotted_quantity", type="int64", unit="shares", meaning="Shares won in the lottery.",
               zh="中签数量", minimum=0, multiple_of=100),
        Column(name="ipo_price", type="float64", unit="yuan", meaning="Offer price per share.", zh="发行价",
               minimum=0.0, exclusive_minimum=True),
        _yuan("paid_amount", "Cash paid for allotted shares (0 if none or abandoned).", "缴款金额"),
        Column(name="status", type="string", meaning="Outcome: not allotted, allotted and paid, or abandoned.",
               zh="申购结果", allowed=IPO_STATUSES),
    ),
)

RAW_TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        BRANCHES,
        BROKERS,
        CLIENTS,
        SECURITIES,
        DAILY_PRICES,
        MARKET_INDEX,
        TRADES,
        CASH_TRANSFERS,
        ACCOUNT_SNAPSHOTS,
        POSITIONS,
        CONTACTS,
        COMMISSION_RATE_CHANGES,
        COMPLAINTS,
        SATISFACTION_SURVEYS,
        RESEARCH_REPORTS,
        REPORT_READS,
        IPO_SUBSCRIPTIONS,
    )
}


def table(name: str) -> Table:
    """The contract of one raw table, by name."""
    try:
        return RAW_TABLES[name]
    except KeyError:
        raise KeyError(f"unknown raw table {name!r}; known tables: {', '.join(RAW_TABLES)}") from None


def schema_markdown() -> str:
    """The raw schema documented column by column, for people."""
    lines = ["# Raw brokerage tables", "", "Generated from `features/raw/schema.py`; do not edit by hand.", ""]
    for t in RAW_TABLES.values():
        lines += [f"## `{t.name}` — {t.zh}", "", f"One row: {t.row}. Primary key: `{', '.join(t.primary_key)}`.", ""]
        lines += ["| column | type | unit | meaning | 中文 | checks |", "| --- | --- | --- | --- | --- | --- |"]
        for c in t.columns:
            checks = []
            if not c.nullable:
                checks.append("required")
            if c.allowed:
                checks.append("one of " + ", ".join(c.allowed))
            if c.minimum is not None:
                checks.append(("> " if c.exclusive_minimum else "≥ ") + f"{c.minimum:g}")
            if c.maximum is not None:
                checks.append(f"≤ {c.maximum:g}")
            if c.multiple_of:
                checks.append(f"multiple of {c.multiple_of}")
            if c.references:
                checks.append(f"in `{c.references}`")
            lines.append(f"| `{c.name}` | {c.type} | {c.unit} | {c.meaning} | {c.zh} | {'; '.join(checks)} |")
        lines.append("")
    return "\n".join(lines)
