/* 监督大屏: statistics, lists that need attention, hotspots, and the model registry. */
"use strict";

(async () => {
  const { el, $, clear, api, pct, fmtTime } = HL;
  const user = await HL.start("/dashboard");
  const ref = await HL.reference();
  const METRICS = {
    accuracy: "准确率", top1: "Top-1", top3: "Top-3", top3_accuracy: "Top-3", macro_f1: "宏 F1",
    level1_macro_f1: "一级宏 F1", department_accuracy: "部门准确率", coverage: "覆盖率",
    ece: "ECE", samples: "样本数", rows: "样本数", n_train: "训练样本", n_test: "测试样本",
  };

  // -- date range: the last 30 days (Asia/Shanghai) by default --------------------------------
  const DAY = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit" });
  const today = DAY.format(new Date());
  $("#date-to").value = today;
  $("#date-from").value = DAY.format(new Date(Date.now() - 29 * 24 * 3600 * 1000));

  // Dates are typed as 2026-01-31 whatever the browser's language: a date input would show
  // the browser locale's format (01/31/2026 in an English browser).
  const DATE = /^\d{4}-\d{2}-\d{2}$/;
  function range() {
    const params = new URLSearchParams();
    for (const [id, name] of [["#date-from", "date_from"], ["#date-to", "date_to"]]) {
      const value = $(id).value.trim();
      if (!value) continue;
      if (!DATE.test(value)) return null;
      params.set(name, value);
    }
    return params;
  }

  // -- statistics -------------------------------------------------------------------------------
  function kpi(id, label, value, rate) {
    return el("div", { class: rate ? "kpi rate" : "kpi", id: `kpi-${id}` },
      el("div", { class: "label" }, label), el("div", { class: "value", "data-value": value === null ? "" : String(value) },
        rate ? pct(value) : value === null || value === undefined ? "—" : String(value)));
  }

  function listTable(headers, rows, emptyText) {
    if (!rows.length) return HL.empty(emptyText);
    return el("div", { class: "list-compact" }, el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))))));
  }

  function orderLink(number) {
    return el("a", { href: `/inbox?number=${encodeURIComponent(number)}` }, number);
  }

  function renderStats(s) {
    const t = s.totals || {};
    const r = s.rates || {};
    clear($("#kpis"),
      kpi("appeals", "受理量", t.appeals), kpi("dispatched", "派单", t.dispatched),
      kpi("closed", "办结", t.closed), kpi("overdue", "超期", t.overdue),
      kpi("escalated", "督办", t.escalated), kpi("returned", "退单", t.returned),
      kpi("on-time-dispatch", "按时派单率", r.on_time_dispatch_rate, true),
      kpi("on-time-closure", "按时办结率", r.on_time_closure_rate, true),
      kpi("satisfaction", "满意率", r.satisfaction_rate, true),
      kpi("auto-dispatch", "自动派单率", r.auto_dispatch_rate, true));

    // daily volume by channel: one line per channel over every date of the range
    const daily = s.daily || [];
    const dates = [];
    for (let d = new Date(`${s.date_from}T00:00:00Z`); DAY.format(d) <= s.date_to && dates.length < 400;
      d = new Date(d.getTime() + 24 * 3600 * 1000)) dates.push(d.toISOString().slice(0, 10));
    const channels = [...new Set(daily.map((row) => row.channel))].sort();
    if (!daily.length) {
      clear($("#chart-daily"), HL.empty("所选时段暂无受理"));
    } else {
      const counts = new Map(daily.map((row) => [`${row.date}|${row.channel}`, row.count]));
      const series = channels.map((channel) => ({
        name: HL.CHANNELS[channel] || channel,
        values: dates.map((date) => counts.get(`${date}|${channel}`) || 0),
      }));
      clear($("#chart-daily"), Charts.lines(dates.map((d) => d.slice(5)), series, { width: 760, height: 230 }));
    }

    const categories = s.by_category || [];
    clear($("#chart-categories"), categories.length
      ? Charts.bars(categories.map((c) => ({ label: c.path || c.code, value: c.count })))
      : HL.empty("暂无数据"));

    const departments = (s.by_department || []).slice().sort((a, b) => b.count - a.count);
    const maxCount = Math.max(1, ...departments.map((d) => d.count));
    clear($("#departments"), listTable(
      ["排名", "承办单位", "工单量", "超期", "按时办结率", "满意率"],
      departments.slice(0, 20).map((d, i) => {
        const bar = el("span", { class: "rank-bar" });
        bar.style.width = `${Math.round((d.count / maxCount) * 80)}px`;
        return [String(i + 1), d.name || HL.deptName(ref, d.code), el("span", {}, bar, " ", String(d.count)),
          d.overdue ? el("span", { class: "flag" }, String(d.overdue)) : "0",
          pct(d.on_time_closure_rate), pct(d.satisfaction_rate)];
      }), "暂无数据"));

    const returns = s.returns || [];
    clear($("#chart-returns"), returns.length
      ? Charts.bars(returns.map((x) => ({ label: x.reason || "（未填写）", value: x.count })),
        { color: Charts.COLORS[2] })
      : HL.empty("暂无退单"));
    const districts = s.by_district || [];
    clear($("#chart-districts"), districts.length
      ? Charts.bars(districts.map((x) => ({ label: x.name || x.code, value: x.count })),
        { color: Charts.COLORS[1] })
      : HL.empty("暂无数据"));

    clear($("#overdue"), listTable(["工单号", "承办单位", "时限", "状态"],
      (s.overdue || []).map((o) => [orderLink(o.number), HL.deptName(ref, o.department_code),
        fmtTime(o.deadline), HL.stateBadge(o.state)]), "暂无超期工单"));
    clear($("#escalated"), listTable(["工单号", "承办单位", "状态"],
      (s.escalated || []).map((o) => [orderLink(o.number), HL.deptName(ref, o.department_code),
        HL.stateBadge(o.state)]), "暂无督办工单"));
  }

  async function loadStats() {
    const params = range();
    if (params === null) {
      clear($("#stats-error"), HL.errorBox("日期格式应为 年-月-日，如 2026-01-31"));
      return;
    }
    $("#export").setAttribute("href", `/api/v1/statistics/export.csv?${params}`);
    const result = await api("GET", `/api/v1/statistics?${params}`);
    if (!result.ok) {
      clear($("#stats-error"), HL.errorBox("统计数据加载失败：" + result.message));
      return;
    }
    clear($("#stats-error"));
    renderStats(result.data);
    $("#updated").textContent = `更新于 ${fmtTime(new Date().toISOString())}`;
    document.body.dataset.statsLoaded = String(Date.now());
  }

  async function loadHotspots() {
    const result = await api("GET", "/api/v1/hotspots");
    if (!result.ok) {
      clear($("#hotspots"), HL.errorBox("热点数据加载失败：" + result.message));
      return;
    }
    const items = (result.data.items || []).slice().sort((a, b) => (b.score || 0) - (a.score || 0));
    clear($("#hotspots"), listTable(["地点", "事项", "诉求数", "来电人", "趋势"],
      items.slice(0, 15).map((h) => [h.place_name || h.place_code || "—", h.category_path || h.category_code || "—",
        String(h.count), String(h.distinct_callers ?? "—"),
        Charts.sparkline((h.trend || []).map((p) => p.count))]), "暂无热点"));
  }

  // -- model registry ---------------------------------------------------------------------------
  let models = [];
  let shownCurve = null;

  function metricCells(metrics) {
    const entries = Object.entries(metrics || {})
      .filter(([k, v]) => typeof v === "number" && METRICS[k]).slice(0, 5);
    if (!entries.length) return "—";
    return entries.map(([k, v]) => el("span", { class: "chip" },
      `${METRICS[k]} ${v > 0 && v <= 1 && !["samples", "rows", "n_train", "n_test"].includes(k) ? pct(v) : v}`));
  }

  function renderCurve(model) {
    shownCurve = model ? model.version : null;
    const curve = (model && model.coverage_curve) || [];
    $("#curve-title").textContent = model ? `准确率 / 覆盖率曲线 · ${model.version}` : "准确率 / 覆盖率曲线";
    if (!curve.length) {
      clear($("#curve"), HL.empty(model ? "该版本没有曲线数据" : "暂无模型"));
      return;
    }
    const points = curve.slice().sort((a, b) => a.threshold - b.threshold);
    clear($("#curve"), Charts.lines(points.map((p) => p.threshold.toFixed(2)), [
      { name: "准确率", values: points.map((p) => p.accuracy) },
      { name: "覆盖率", values: points.map((p) => p.coverage) },
    ], { width: 460, height: 220, percent: true, yMax: 1 }),
    el("div", { class: "muted small" }, "横轴：置信度阈值；阈值越高，自动派单覆盖越少、准确率越高"));
  }

  async function modelAction(path, done) {
    const result = await api("POST", path);
    if (!result.ok) {
      HL.toast(`操作失败：${result.message}`, "error");
      return;
    }
    HL.toast(done);
    loadModels();
  }

  async function loadModels() {
    const result = await api("GET", "/api/v1/models");
    const box = $("#models");
    if (!result.ok) {
      clear(box, HL.errorBox("模型列表加载失败：" + result.message));
      clear($("#curve"));
      return;
    }
    models = result.data.items || [];
    if (!models.length) {
      clear(box, HL.empty("尚无已登记的模型版本"));
      renderCurve(null);
      return;
    }
    clear(box, el("table", { id: "model-table" },
      el("thead", {}, el("tr", {}, ["版本", "创建时间", "来源", "状态", "指标", "操作"].map((h) => el("th", {}, h)))),
      el("tbody", {}, models.map((m) => el("tr", { class: "clickable", "data-version": m.version, onclick: () => renderCurve(m) },
        el("td", { class: "nowrap" }, m.version),
        el("td", { class: "nowrap small" }, fmtTime(m.created_at)),
        el("td", { class: "small" }, m.source || "—"),
        el("td", {}, m.active ? el("span", { class: "active-badge" }, "使用中") : (m.status || "—")),
        el("td", {}, metricCells(m.metrics)),
        el("td", {}, m.active ? "" : el("button", {
          type: "button", class: "small",
          onclick: (event) => {
            event.stopPropagation();
            if (confirm(`启用模型版本 ${m.version}？`)) {
              modelAction(`/api/v1/models/${encodeURIComponent(m.version)}/activate`, `已启用 ${m.version}`);
            }
          },
        }, "启用")))))));
    const active = models.find((m) => m.active) || models[0];
    renderCurve(models.find((m) => m.version === shownCurve) || active);
  }

  $("#rollback").addEventListener("click", () => {
    if (confirm("回滚到上一个模型版本？")) modelAction("/api/v1/models/rollback", "已回滚到上一版本");
  });

  // Training: a job with progress; its id survives a reload of the page.
  const JOB_KEY = "hotline.training_job";
  async function pollJob(jobId) {
    const bar = $("#train-progress");
    const status = $("#train-status");
    const button = $("#train");
    button.disabled = true;
    bar.classList.remove("hidden");
    for (;;) {
      const result = await api("GET", `/api/v1/models/jobs/${encodeURIComponent(jobId)}`);
      if (!result.ok) {
        status.textContent = `训练进度查询失败：${result.message}`;
        break;
      }
      const job = result.data;
      bar.firstElementChild.style.width = `${Math.round((job.progress || 0) * 100)}%`;
      const labels = { queued: "排队中", running: "训练中", succeeded: "训练完成", failed: "训练失败" };
      status.textContent = `${labels[job.status] || job.status} ${pct(job.progress || 0, 0)}` +
        (job.message ? ` · ${job.message}` : "") + (job.version ? ` · 版本 ${job.version}` : "") +
        (job.promoted ? "（已自动启用）" : "");
      if (job.status === "succeeded" || job.status === "failed") {
        sessionStorage.removeItem(JOB_KEY);
        loadModels();
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    button.disabled = false;
  }
  $("#train").addEventListener("click", async () => {
    if (!confirm("用最新的标注数据重新训练分类模型？训练在后台进行。")) return;
    const result = await api("POST", "/api/v1/models/train");
    if (!result.ok) {
      HL.toast(`无法开始训练：${result.message}`, "error");
      return;
    }
    sessionStorage.setItem(JOB_KEY, result.data.job_id);
    pollJob(result.data.job_id);
  });

  $("#range").addEventListener("submit", (event) => {
    event.preventDefault();
    loadStats();
    loadHotspots();
  });

  await Promise.all([loadStats(), loadHotspots(), loadModels()]);
  const pending = sessionStorage.getItem(JOB_KEY);
  if (pending) pollJob(pending);
  setInterval(() => { loadStats(); loadHotspots(); }, 60000);
  document.body.dataset.ready = user.role;
})();
