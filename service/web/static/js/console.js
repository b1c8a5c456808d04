/* 坐席工作台: live suggestion while typing, intake, the review queue and a caller's history. */
"use strict";

(async () => {
  const { el, $, clear, api, pct, fmtTime } = HL;
  const user = await HL.start("/console");
  const ref = await HL.reference();

  // -- tabs ----------------------------------------------------------------------------------
  const tabs = ["intake", "review", "caller"];
  function showTab(name) {
    for (const tab of tabs) {
      $(`#tab-${tab}`).classList.toggle("hidden", tab !== name);
      $(`#tab-button-${tab}`).classList.toggle("active", tab === name);
    }
    if (name === "review") loadReview();
  }
  for (const tab of tabs) $(`#tab-button-${tab}`).addEventListener("click", () => showTab(tab));

  // -- suggestion while typing ---------------------------------------------------------------
  const form = $("#appeal-form");
  const textInput = $("#appeal-text");
  const suggestionNode = $("#suggestion");
  const statusNode = $("#suggest-status");
  let suggestion = null; // the latest /classify answer
  let chosen = null; // {code, path, confirmed: bool} — confirmed: the agent picked it
  let sequence = 0;
  let tree = null; // the category tree, once the reference data is there

  function setChosen(cat, confirmed) {
    chosen = cat ? { code: cat.code, path: cat.path, confirmed } : null;
    const node = $("#chosen-path");
    node.className = chosen ? "" : "muted";
    if (!chosen) {
      node.textContent = "尚未选择（提交时由系统按建议处理）";
      return;
    }
    // The department the order will go to: the routed one (jurisdiction included, as in the
    // suggestion above) for the suggested category, else the chosen category's lead department.
    const category = ref.category.get(chosen.code);
    const department = suggestion && suggestion.category_code === chosen.code
      ? suggestion.department_code
      : category && category.lead_department_code;
    node.replaceChildren(
      el("strong", { id: "chosen-code", "data-code": chosen.code }, chosen.path),
      department ? " → " : "",
      department ? el("span", { id: "chosen-department", "data-code": department }, HL.deptName(ref, department)) : "",
      el("span", { class: "muted small" },
        confirmed
          ? (suggestion && suggestion.category_code === chosen.code ? "（坐席已采纳建议）" : "（坐席改选）")
          : "（系统建议，未确认）"));
    if (tree) tree.select(chosen.code);
  }

  // The category's assisting departments, less the lead (routing may pick one of them as lead).
  function assisting(s) {
    return (s.assisting_department_codes || []).filter((c) => c !== s.department_code);
  }

  function renderSuggestion(s) {
    const low = !s.auto_dispatch;
    const terms = (s.terms || []).slice(0, 12);
    const alternatives = (s.alternatives || []).slice(0, 5);
    clear(suggestionNode,
      el("div", { class: "path", id: "suggested-path", "data-code": s.category_code || "" },
        s.category_path || "（无法判断分类）"),
      el("div", { class: "dept" }, "承办单位：",
        el("strong", { id: "suggested-department", "data-code": s.department_code || "" },
          HL.deptName(ref, s.department_code)),
        assisting(s).length
          ? el("span", { class: "muted small", id: "suggested-assisting" }, "　协办：" +
            assisting(s).map((c) => HL.deptName(ref, c)).join("、"))
          : ""),
      el("div", { class: "confidence" }, "置信度",
        el("div", { class: low ? "bar low" : "bar" }, barSpan(s.confidence)),
        el("strong", { id: "suggested-confidence" }, pct(s.confidence)),
        el("span", { class: low ? "flag" : "muted small" }, low ? "需人工审核" : "可自动派单")),
      s.place ? el("div", { class: "small" }, "属地：", s.place) : "",
      s.priority === "urgent"
        ? el("div", { class: "flag" }, "紧急事项：" + (s.urgent_keywords || []).join("、"))
        : "",
      el("div", { class: "small muted" }, "办理时限：",
        s.deadline_value ? `${s.deadline_value} ${s.deadline_unit === "hours" ? "小时" : "个工作日"}` : "—"),
      el("h3", { class: "gap-top" }, "备选分类（前 5）"),
      el("ol", { class: "alts", id: "alternatives" }, alternatives.map((a, index) =>
        el("li", { "data-code": a.category_code },
          el("span", { class: "muted small" }, `${index + 1}.`),
          el("span", { class: "name", title: a.category_path }, a.category_path),
          el("span", { class: "small nowrap" }, pct(a.confidence)),
          el("button", {
            type: "button", class: "small pick-alternative",
            onclick: () => setChosen({ code: a.category_code, path: a.category_path }, true),
          }, index === 0 ? "采纳" : "选用")))),
      el("h3", { class: "gap-top" }, "判断依据（关键词）"),
      el("div", { id: "terms" }, terms.length
        ? terms.map(([term, weight]) => el("span", { class: "chip", title: weight.toFixed(3) }, term))
        : el("span", { class: "muted small" }, "—")));
  }

  function barSpan(value) {
    const span = el("span");
    span.style.width = `${Math.round(Math.max(0, Math.min(1, value || 0)) * 100)}%`;
    return span;
  }

  async function classify() {
    const text = textInput.value.trim();
    $("#text-count").textContent = `${textInput.value.length} / 5000`;
    if (text.length < 4) {
      statusNode.textContent = "";
      return;
    }
    const mine = ++sequence;
    statusNode.textContent = "分析中…";
    const result = await api("POST", "/api/v1/classify", {
      text, title: $("#title").value.trim(), address: $("#address").value.trim() || null, k: 5,
    });
    if (mine !== sequence) return; // a newer request is on its way
    if (!result.ok) {
      statusNode.textContent = "";
      clear(suggestionNode, HL.errorBox(result.status === 503
        ? "分类模型暂不可用，可直接从下方分类目录选择后提交" : result.message));
      return;
    }
    suggestion = result.data;
    statusNode.textContent = `已更新 ${fmtTime(new Date().toISOString()).slice(11)}`;
    renderSuggestion(suggestion);
    if ((!chosen || !chosen.confirmed) && suggestion.category_code) {
      setChosen({ code: suggestion.category_code, path: suggestion.category_path }, false);
    }
  }
  const classifySoon = HL.debounce(classify, 400);
  textInput.addEventListener("input", classifySoon);
  $("#title").addEventListener("input", classifySoon);
  $("#address").addEventListener("change", classifySoon);

  // -- category tree -------------------------------------------------------------------------
  if (ref.categories.length) {
    tree = categoryTree($("#category-tree"), $("#tree-filter"), ref.categories,
      (cat) => setChosen(cat, true));
  } else {
    clear($("#category-tree"), HL.errorBox("分类目录加载失败：" + (ref.message || "")));
  }

  // -- caller history (inline while typing the phone, and the tab) ---------------------------
  // Inline (beside the intake form, narrow): number, time, state and the appeal; the tab shows
  // every column. Names and paths wrap between words only (HL.words).
  function appealsTable(items, compact) {
    if (!items.length) return HL.empty("该号码没有历史诉求");
    const columns = [
      ["工单号", (item) => el("td", { class: "nowrap" }, item.number)],
      ["受理时间", (item) => el("td", { class: "nowrap small" }, fmtTime(item.received_at))],
      compact ? null : ["渠道", (item) => el("td", { class: "nowrap" }, HL.CHANNELS[item.channel] || item.channel || "—")],
      compact ? null : ["分类", (item) => el("td", { class: "small", title: item.category_path || "" },
        HL.words((item.category_path || "—").split("/").pop()))],
      compact ? null : ["承办单位", (item) => el("td", { class: "small" }, HL.words(HL.deptName(ref, item.department_code)))],
      ["状态", (item) => el("td", {}, HL.stateBadge(item.state))],
      ["内容", (item) => el("td", { class: "small appeal-cell" },
        el("div", { class: "excerpt", title: item.text || "" }, HL.words(item.text || "—")))],
    ].filter(Boolean);
    return el("table", { class: "caller-appeals" },
      el("thead", {}, el("tr", {}, columns.map(([h]) => el("th", {}, h)))),
      el("tbody", {}, items.map((item) => el("tr", {}, columns.map(([, cell]) => cell(item))))));
  }

  async function callerAppeals(phone) {
    // POST: the number stays out of URLs (access logs, proxies, browser history).
    return api("POST", "/api/v1/callers/history", { phone });
  }

  const phoneInput = $("#caller-phone");
  phoneInput.addEventListener("input", HL.debounce(async () => {
    const phone = phoneInput.value.replace(/\s/g, "");
    const box = $("#caller-inline");
    if (phone.length < 7) {
      clear(box);
      return;
    }
    const result = await callerAppeals(phone);
    if (phone !== phoneInput.value.replace(/\s/g, "")) return;
    if (!result.ok) {
      clear(box, el("div", { class: "muted small gap-top" }, "历史诉求暂不可查：" + result.message));
      return;
    }
    const items = result.data.items || [];
    clear(box, el("h3", { class: "gap-top" }, `该来电人历史诉求（${items.length} 条）`),
      items.length ? appealsTable(items.slice(0, 5), true) : el("div", { class: "muted small" }, "无"));
  }, 600));

  $("#caller-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const phone = $("#caller-search").value.replace(/\s/g, "");
    const box = $("#caller-list");
    if (!phone) {
      clear(box, HL.empty("请输入来电号码"));
      return;
    }
    clear(box, HL.empty("查询中…"));
    const result = await callerAppeals(phone);
    clear(box, result.ok ? appealsTable(result.data.items || []) : HL.errorBox(result.message));
  });

  // -- submit ---------------------------------------------------------------------------------
  function idempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  }
  let formKey = idempotencyKey();

  function resetForm() {
    form.reset();
    suggestion = null;
    sequence++;
    setChosen(null, false);
    if (tree) tree.reset();
    clear(suggestionNode, HL.empty("输入诉求内容后显示建议"));
    statusNode.textContent = "";
    $("#text-count").textContent = "0 / 5000";
    clear($("#caller-inline"));
    formKey = idempotencyKey();
  }
  $("#reset-appeal").addEventListener("click", () => {
    resetForm();
    clear($("#submit-result"));
  });

  /** After intake: apply the agent's own choice where the system did not follow it. */
  async function applyChoice(created) {
    if (!chosen || !chosen.confirmed) return null;
    const suggested = created.suggestion ? created.suggestion.category_code : null;
    if (created.state === "review") {
      const result = await api("POST", `/api/v1/work-orders/${created.number}/dispatch`,
        { category_code: chosen.code, reason: chosen.code === suggested ? "" : "坐席受理时改选分类" });
      return result.ok ? { state: result.data.state, department: result.data.department_code }
        : { error: result.message };
    }
    const lead = (ref.category.get(chosen.code) || {}).lead_department_code;
    if (created.state === "dispatched" && chosen.code !== suggested && lead &&
        created.suggestion && lead !== created.suggestion.department_code) {
      const result = await api("POST", `/api/v1/work-orders/${created.number}/reassign`,
        { department_code: lead, reason: `坐席受理时改选分类：${chosen.path}` });
      return result.ok ? { state: result.data.state, department: result.data.department_code }
        : { error: result.message };
    }
    return null;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = textInput.value.trim();
    if (!text) {
      HL.toast("请填写诉求内容", "error");
      textInput.focus();
      return;
    }
    const body = { channel: $("#channel").value, text, idempotency_key: formKey };
    const optional = {
      title: $("#title").value.trim(), appeal_type: $("#appeal-type").value,
      caller_phone: phoneInput.value.trim(), caller_name: $("#caller-name").value.trim(),
      address: $("#address").value.trim(),
    };
    for (const [key, value] of Object.entries(optional)) if (value) body[key] = value;
    const button = $("#submit-appeal");
    button.disabled = true;
    $("#submit-status").textContent = "提交中…";
    const result = await api("POST", "/api/v1/appeals", body);
    button.disabled = false;
    $("#submit-status").textContent = "";
    if (!result.ok) {
      clear($("#submit-result"), HL.errorBox("提交失败：" + result.message));
      return;
    }
    const created = result.data;
    const choice = await applyChoice(created);
    const state = choice && choice.state ? choice.state : created.state;
    const department = (choice && choice.department) ||
      (created.suggestion && created.suggestion.department_code);
    let what;
    if (state === "dispatched") {
      what = `${choice && choice.state ? "已按坐席选择派单" : "已自动派单"}至 ${HL.deptName(ref, department)}`;
    } else if (state === "review") {
      what = "置信度较低，已转入待审核队列";
    } else {
      what = `当前状态：${HL.STATES[state] || state}`;
    }
    clear($("#submit-result"), el("div", { class: "notice gap-top", id: "created" },
      "工单已受理，工单号 ",
      el("span", { class: "number", id: "created-number", "data-state": state }, created.number),
      el("div", {}, what, "　",
        state === "review"
          ? el("button", { type: "button", class: "small", onclick: () => showTab("review") }, "去审核")
          : el("a", { href: `/inbox?number=${encodeURIComponent(created.number)}` }, "查看工单")),
      choice && choice.error ? el("div", { class: "flag" }, "按坐席选择派单失败：" + choice.error) : ""));
    resetForm();
    refreshReviewCount();
  });

  // -- review queue ---------------------------------------------------------------------------
  async function refreshReviewCount() {
    const result = await api("GET", "/api/v1/review-queue?limit=1");
    const badge = $("#review-count");
    if (result.ok) {
      badge.textContent = String(result.data.total);
      badge.className = result.data.total ? "badge" : "badge grey";
    }
  }

  async function dispatchFromReview(number, body, row) {
    for (const button of row.querySelectorAll("button")) button.disabled = true;
    const result = await api("POST", `/api/v1/work-orders/${number}/dispatch`, body);
    if (!result.ok) {
      HL.toast(`派单失败：${result.message}`, "error");
      for (const button of row.querySelectorAll("button")) button.disabled = false;
      return;
    }
    HL.toast(`工单 ${number} 已派单至 ${HL.deptName(ref, result.data.department_code)}`);
    loadReview();
  }

  function overrideRow(item, row, columns) {
    const filter = el("input", { type: "search", placeholder: "搜索分类（名称或编码）" });
    const container = el("div", { class: "tree" });
    const reason = el("input", { type: "text", placeholder: "改选原因（可选）", maxlength: "500" });
    const picked = el("span", { class: "muted" }, "请在目录中选择末级分类");
    let code = null;
    const confirm = el("button", { type: "button", class: "primary", disabled: true }, "按所选分类派单");
    const cell = el("td", { colspan: String(columns) }, el("div", { class: "action-form" },
      filter, container, el("div", { class: "actions" }, "已选：", picked),
      reason, el("div", { class: "actions" }, confirm,
        el("button", { type: "button", onclick: () => extra.remove() }, "取消"))));
    const extra = el("tr", { class: "override-row" }, cell);
    categoryTree(container, filter, ref.categories, (cat) => {
      code = cat.code;
      picked.textContent = cat.path;
      picked.className = "";
      confirm.disabled = false;
    });
    confirm.addEventListener("click", () =>
      dispatchFromReview(item.number, { category_code: code, reason: reason.value.trim() }, extra));
    row.after(extra);
    filter.focus();
  }

  async function loadReview() {
    const box = $("#review-list");
    const result = await api("GET", "/api/v1/review-queue?limit=100");
    if (!result.ok) {
      clear(box, HL.errorBox("待审核队列加载失败：" + result.message));
      return;
    }
    const items = result.data.items || [];
    const badge = $("#review-count");
    badge.textContent = String(result.data.total);
    badge.className = result.data.total ? "badge" : "badge grey";
    if (!items.length) {
      clear(box, HL.empty("暂无待审核工单"));
      return;
    }
    const columns = 6;
    const body = el("tbody");
    for (const item of items) {
      const s = item.suggestion || {};
      const nextBest = s.next_best;
      const row = el("tr", { "data-number": item.number },
        el("td", { class: "nowrap" }, item.number, el("div", { class: "muted small" }, fmtTime(item.created_at))),
        el("td", {}, item.title ? el("strong", {}, item.title, " ") : "", item.excerpt),
        el("td", {}, s.category_path || HL.categoryPath(ref, item.category_code),
          nextBest ? el("div", { class: "small" }, "退单后次优：", nextBest.category_path,
            nextBest.department_code ? `（${HL.deptName(ref, nextBest.department_code)}）` : "") : ""),
        el("td", {}, HL.deptName(ref, item.department_code || s.department_code)),
        el("td", { class: "nowrap" }, pct(s.confidence)),
        el("td", { class: "nowrap" }));
      const actions = row.lastChild;
      actions.append(el("button", {
        type: "button", class: "primary confirm-dispatch",
        onclick: () => dispatchFromReview(item.number, {}, row),
      }, "确认派单"), " ");
      if (nextBest && nextBest.category_code) {
        actions.append(el("button", {
          type: "button",
          onclick: () => dispatchFromReview(item.number,
            { category_code: nextBest.category_code, department_code: nextBest.department_code || undefined,
              reason: "采用退单后的次优建议" }, row),
        }, "用次优"), " ");
      }
      actions.append(el("button", {
        type: "button", class: "override-dispatch",
        onclick: () => {
          const open = row.nextSibling && row.nextSibling.classList &&
            row.nextSibling.classList.contains("override-row");
          if (!open) overrideRow(item, row, columns);
        },
      }, "改选"));
      body.append(row);
    }
    clear(box, el("div", { class: "table-wrap" }, el("table", { id: "review-table" },
      el("thead", {}, el("tr", {}, ["工单号", "诉求", "建议分类", "建议承办单位", "置信度", "操作"]
        .map((h) => el("th", {}, h)))), body)));
  }
  $("#review-refresh").addEventListener("click", loadReview);

  refreshReviewCount();
  setInterval(refreshReviewCount, 30000);
  if (location.hash === "#review") showTab("review");
  document.body.dataset.ready = user.role;
})();
