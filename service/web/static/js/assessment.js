/* 考核排名: the scorecard per department, district or street, with drill-down to the orders. */
"use strict";

(async () => {
  const { el, $, clear, api, pct } = HL;
  const user = await HL.start("/assessment");

  const UNITS = { department: "承办单位", district: "区县", street: "街道" };
  const LEVELS = { red: "红牌", yellow: "黄牌", green: "" };
  const TRENDS = { up: "↑", down: "↓", flat: "→" };
  const FIGURES = {
    received: "受理量", dispatches: "派单量", accept: "签收及时率", closure: "按时办结率",
    satisfaction: "满意率", returns: "退单", extensions: "延期", repeats: "重复诉求",
    escalations: "督办",
  };
  const WEIGHTS = {
    accept_on_time_rate: "签收及时率", closure_on_time_rate: "按时办结率", satisfaction_rate: "满意率",
    unjustified_return_rate: "退单率（不含合理退单）", extension_rate: "延期率", repeat_rate: "重复诉求率",
    escalation_rate: "督办率",
  };
  const ON_TIME = { on_time: "按时", late: "超时", pending: "未到期", without_deadline: "无时限" };
  const OUTCOMES = {
    accept: ON_TIME, closure: ON_TIME,
    satisfaction: { satisfied: "满意", basically_satisfied: "基本满意", unsatisfied: "不满意", unreachable: "未接通" },
    returns: { justified: "合理退单（已改派他单位）", unjustified: "退回原单位", pending: "待重新派单" },
    extensions: { extended: "申请延期", not_extended: "未延期" },
    repeats: { repeated: "30 天内重复诉求", not_repeated: "无重复" },
    received: { received: "受理" }, dispatches: { dispatched: "派单" }, escalations: { escalated: "督办" },
  };

  const MONTH = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit" });
  $("#month").value = MONTH.format(new Date()).slice(0, 7);

  function params() {
    const query = new URLSearchParams({ unit: $("#unit").value });
    if ($("#date-from").value || $("#date-to").value) {
      if ($("#date-from").value) query.set("date_from", $("#date-from").value);
      if ($("#date-to").value) query.set("date_to", $("#date-to").value);
    } else if ($("#month").value) {
      query.set("month", $("#month").value);
    }
    return query;
  }

  let shown = null;  // the scorecard on screen

  function figureCell(text, figure, code) {
    const node = el("span", { class: "figure", "data-figure": figure, "data-code": code || "" }, text);
    node.addEventListener("click", () => drill(figure, code));
    return node;
  }

  function trendCell(row) {
    if (!row.trend) return el("span", { class: "muted" }, "—");
    const delta = row.score !== null && row.previous_score !== null
      ? ` ${(row.score - row.previous_score).toFixed(2)}` : "";
    return el("span", { class: `trend-${row.trend}`, "data-trend": row.trend }, TRENDS[row.trend] + delta);
  }

  function cells(row, code) {
    return [
      figureCell(String(row.received), "received", code),
      figureCell(String(row.dispatches), "dispatches", code),
      figureCell(pct(row.accept_on_time_rate, 2), "accept", code),
      figureCell(pct(row.closure_on_time_rate, 2), "closure", code),
      figureCell(pct(row.satisfaction_rate, 2), "satisfaction", code),
      figureCell(`${pct(row.return_rate, 2)}（合理 ${row.justified_returns}）`, "returns", code),
      figureCell(pct(row.extension_rate, 2), "extensions", code),
      figureCell(pct(row.repeat_rate, 2), "repeats", code),
      figureCell(String(row.escalations), "escalations", code),
      row.score === null ? "—" : row.score.toFixed(2),
    ];
  }

  function render(card) {
    shown = card;
    const unitName = UNITS[card.unit] || card.unit;
    $("#title").textContent = `${unitName}考核排名`;
    $("#range").textContent = `${card.date_from} 至 ${card.date_to}（环比 ${card.previous.date_from} 至 ${card.previous.date_to}）`;
    clear($("#lists"),
      el("span", { class: "list-red", id: "red-list" }, `红牌 ${card.red.length}`), "　",
      el("span", { class: "list-yellow", id: "yellow-list" }, `黄牌 ${card.yellow.length}`));
    const headings = ["排名", "单位名称", "受理量", "派单量", "签收及时率", "按时办结率", "满意率", "退单率", "延期率",
      "重复诉求率", "督办次数", "综合得分", "等级", "环比"];
    const rows = card.rows.map((row) => el("tr", { class: `level-${row.level || "none"}`, "data-code": row.code },
      [row.rank === null ? "—" : String(row.rank), row.name, ...cells(row, row.code),
        LEVELS[row.level] || "", trendCell(row)].map((c) => el("td", {}, c))));
    const total = el("tr", { class: "total", id: "total-row" },
      ["", "合计", ...cells(card.total, null), "", trendCell(card.total)].map((c) => el("td", {}, c)));
    clear($("#scorecard"), card.rows.length
      ? el("table", { id: "scorecard-table" },
        el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))), el("tbody", {}, rows, total))
      : HL.empty("所选时段暂无考核数据"));
    const weights = Object.entries(card.policy.weights).filter(([, w]) => w > 0)
      .map(([name, w]) => `${WEIGHTS[name] || name} ${w}`).join("，");
    $("#policy").textContent = `综合得分为各项指标得分（0–100）的加权平均，权重：${weights}；` +
      `低于 ${card.policy.red_below} 分为红牌，低于 ${card.policy.yellow_below} 分为黄牌。点击数字查看对应工单。`;
  }

  async function load() {
    const query = params();
    $("#export").setAttribute("href", `/api/v1/assessment/export.xlsx?${query}`);
    $("#drill").classList.add("hidden");
    const result = await api("GET", `/api/v1/assessment/scorecard?${query}`);
    if (!result.ok) {
      clear($("#assessment-error"), HL.errorBox("考核数据加载失败：" + result.message));
      document.body.dataset.assessmentLoaded = String(Date.now());
      return;
    }
    clear($("#assessment-error"));
    render(result.data);
    document.body.dataset.assessmentLoaded = String(Date.now());
  }

  async function drill(figure, code) {
    const query = params();
    query.set("figure", figure);
    if (code) query.set("code", code);
    const result = await api("GET", `/api/v1/assessment/drill-down?${query}`);
    $("#drill").classList.remove("hidden");
    const row = shown && shown.rows.find((r) => r.code === code);
    $("#drill-title").textContent = `${row ? row.name : "合计"} · ${FIGURES[figure] || figure} 明细`;
    if (!result.ok) {
      clear($("#drill-body"), HL.errorBox("明细加载失败：" + result.message));
      return;
    }
    const labels = OUTCOMES[figure] || {};
    const orders = result.data.orders;
    clear($("#drill-body"), orders.length
      ? el("div", { class: "table-wrap" }, el("table", { id: "drill-table" },
        el("thead", {}, el("tr", {}, el("th", {}, "工单号"), el("th", {}, "计入情况"))),
        el("tbody", {}, orders.map((o) => el("tr", {},
          el("td", {}, el("a", { href: `/inbox?number=${encodeURIComponent(o.number)}` }, o.number)),
          el("td", { "data-outcome": o.outcome }, labels[o.outcome] || o.outcome))))))
      : HL.empty("没有工单"));
    if (result.data.count > orders.length) {
      $("#drill-body").append(el("p", { class: "muted small" }, `共 ${result.data.count} 条，仅显示前 ${orders.length} 条`));
    }
    $("#drill").scrollIntoView({ block: "nearest" });
    document.body.dataset.drillLoaded = String(Date.now());
  }

  $("#month").addEventListener("change", () => { $("#date-from").value = ""; $("#date-to").value = ""; });
  $("#period").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  $("#unit").addEventListener("change", load);
  $("#drill-close").addEventListener("click", () => $("#drill").classList.add("hidden"));
  await load();
  document.body.dataset.ready = user.role;
})();
