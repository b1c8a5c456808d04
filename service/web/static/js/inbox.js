/* 部门工单 / 工单列表: deadline colours, filters, detail with the event log, and the actions. */
"use strict";

(async () => {
  const { el, $, clear, api, fmtTime } = HL;
  const user = await HL.start("/inbox");
  const ref = await HL.reference();
  const isDepartment = user.role === "department";
  const PAGE = 50;
  let offset = 0;
  let items = [];
  const summaries = new Map(); // number → list row, kept when a reload drops the order from view
  let current = null; // number of the order shown in the detail panel
  let listSequence = 0; // only the latest list request may render

  if (isDepartment) {
    $("#inbox-title").textContent = `部门工单 · ${HL.deptName(ref, user.department_code)}`;
    document.title = "部门工单 · 12345 热线工单系统";
  } else {
    $("#department-filter").classList.remove("hidden");
    const select = $("#filter-department");
    for (const dept of ref.departments) select.append(el("option", { value: dept.code }, dept.name));
  }

  // -- list -----------------------------------------------------------------------------------
  async function loadList() {
    const params = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    const state = $("#filter-state").value;
    const overdue = $("#filter-overdue").value;
    const department = isDepartment ? "" : $("#filter-department").value;
    if (state) params.set("state", state);
    if (overdue) params.set("overdue", overdue);
    if (department) params.set("department_code", department);
    const box = $("#order-list");
    const mine = ++listSequence;
    const result = await api("GET", `/api/v1/work-orders?${params}`);
    if (mine !== listSequence) return;
    if (!result.ok) {
      clear(box, HL.errorBox("工单列表加载失败：" + result.message));
      clear($("#pager"));
      return;
    }
    items = result.data.items || [];
    for (const item of items) summaries.set(item.number, item);
    const total = result.data.total || 0;
    if (!items.length) {
      clear(box, HL.empty(state || overdue || department ? "没有符合条件的工单" : "暂无工单"));
    } else {
      clear(box, el("div", { class: "table-wrap" }, el("table", { id: "orders" },
        el("thead", {}, el("tr", {}, ["工单号", "诉求", "分类", isDepartment ? null : "承办单位",
          "状态", "办理时限", "时限状态"].filter(Boolean).map((h) => el("th", {}, h)))),
        el("tbody", {}, items.map(orderRow)))));
    }
    const pager = $("#pager");
    clear(pager, el("span", { class: "muted small" },
      total ? `共 ${total} 件，第 ${offset + 1}–${offset + items.length} 件` : ""));
    if (offset > 0) {
      pager.append(el("button", { type: "button", onclick: () => { offset -= PAGE; loadList(); } }, "上一页"));
    }
    if (offset + items.length < total) {
      pager.append(el("button", { type: "button", onclick: () => { offset += PAGE; loadList(); } }, "下一页"));
    }
  }

  function orderRow(item) {
    const status = item.deadline_status;
    const row = el("tr", {
      class: `clickable${status ? " row-" + status : ""}${item.number === current ? " selected" : ""}`,
      "data-number": item.number, "data-state": item.state, "data-deadline": status || "",
    },
    el("td", { class: "nowrap" }, item.number,
      item.escalated ? el("div", { class: "flag" }, "督办") : "",
      item.priority === "urgent" ? el("div", { class: "flag" }, "紧急") : ""),
    el("td", { class: "excerpt", title: item.excerpt }, item.title ? el("strong", {}, item.title, " ") : "", item.excerpt),
    el("td", { class: "small category" }, HL.categoryPath(ref, item.category_code)),
    isDepartment ? null : el("td", { class: "small" }, HL.deptName(ref, item.department_code)),
    el("td", {}, HL.stateBadge(item.state)),
    el("td", { class: "nowrap small" }, fmtTime(item.deadline)),
    el("td", {}, HL.deadlineBadge(status)));
    row.addEventListener("click", () => showDetail(item.number));
    return row;
  }

  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    offset = 0;
    loadList();
  });
  for (const id of ["#filter-state", "#filter-overdue", "#filter-department"]) {
    $(id).addEventListener("change", () => { offset = 0; loadList(); });
  }

  // -- detail ---------------------------------------------------------------------------------
  function eventItem(event) {
    const data = event.data || {};
    const details = [];
    if (event.reason) details.push(`原因：${event.reason}`);
    if (data.result) details.push(`回复：${data.result}`);
    if (data.requested_deadline) details.push(`申请延至：${fmtTime(data.requested_deadline)}`);
    if (data.new_deadline) details.push(`新时限：${fmtTime(data.new_deadline)}`);
    if (data.department_code && ["dispatch", "redispatch"].includes(event.action)) {
      details.push(`承办单位：${HL.deptName(ref, data.department_code)}`);
    }
    return el("li", { "data-action": event.action },
      el("div", {}, el("strong", {}, HL.ACTIONS[event.action] || event.action), " ",
        el("span", { class: "muted small" }, `${fmtTime(event.at)} · ${event.actor}（${HL.ROLES[event.role] || event.role}）`)),
      event.from_state !== event.to_state
        ? el("div", { class: "small muted" }, `${HL.STATES[event.from_state] || "—"} → ${HL.STATES[event.to_state] || event.to_state}`)
        : "",
      details.map((text) => el("div", { class: "small" }, text)));
  }

  function actionForm(title, fields, submitLabel, onSubmit) {
    const form = el("form", { class: "action-form" }, el("h3", {}, title), fields,
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, submitLabel),
        el("button", { type: "button", onclick: () => form.remove() }, "取消")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      await onSubmit(form);
      button.disabled = false;
    });
    return form;
  }

  async function act(number, path, body, done) {
    const result = await api("POST", `/api/v1/work-orders/${number}/${path}`, body);
    if (!result.ok) {
      HL.toast(`操作失败：${result.message}`, "error");
      return false;
    }
    HL.toast(`${done}：工单 ${number}`);
    await Promise.all([loadList(), showDetail(number)]);
    return true;
  }

  function defaultExtension(deadline) {
    const base = deadline ? new Date(deadline) : new Date();
    const later = new Date(Math.max(base.getTime(), Date.now()) + 3 * 24 * 3600 * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${later.getFullYear()}-${pad(later.getMonth() + 1)}-${pad(later.getDate())}T${pad(later.getHours())}:${pad(later.getMinutes())}`;
  }

  function actions(order) {
    const bar = el("div", { class: "actions", id: "order-actions" });
    const forms = el("div", { id: "action-forms" });
    const open = (form) => {
      clear(forms, form);
      const input = form.querySelector("textarea, input");
      if (input) input.focus();
    };
    const n = order.number;
    const s = order.state;
    if (isDepartment) {
      if (["dispatched", "reopened"].includes(s)) {
        bar.append(el("button", { type: "button", class: "primary", id: "action-accept",
          onclick: () => act(n, "accept", undefined, "已签收") }, "签收"));
      }
      if (["dispatched", "accepted"].includes(s)) {
        bar.append(el("button", { type: "button", class: "danger", id: "action-return", onclick: () => {
          const reason = el("textarea", { name: "reason", required: true, maxlength: "500", rows: "3",
            placeholder: "退单原因：如不属于本单位职责、地址不在辖区等" });
          open(actionForm("退单", [el("label", {}, "退单原因"), reason], "确认退单",
            () => act(n, "return", { reason: reason.value.trim() }, "已退单")));
        } }, "退单"));
      }
      if (s === "accepted") {
        bar.append(el("button", { type: "button", id: "action-extension", onclick: () => {
          const reason = el("textarea", { name: "reason", required: true, maxlength: "500", rows: "2" });
          const when = el("input", { type: "datetime-local", name: "new_deadline", required: true,
            value: defaultExtension(order.deadline) });
          open(actionForm("申请延期", [el("label", {}, "延期原因"), reason, el("label", {}, "申请延至"), when],
            "提交延期申请", () => act(n, "extension", {
              reason: reason.value.trim(), new_deadline: new Date(when.value).toISOString(),
            }, "已提交延期申请")));
        } }, "申请延期"));
      }
      if (["accepted", "extension_requested"].includes(s)) {
        bar.append(el("button", { type: "button", class: "primary", id: "action-reply", onclick: () => {
          const text = el("textarea", { name: "result", required: true, maxlength: "5000", rows: "5",
            placeholder: "办理结果：已于某日派人现场处理，……" });
          open(actionForm("办结回复", [el("label", {}, "办理结果"), text], "提交回复",
            () => act(n, "reply", { result: text.value.trim() }, "已回复")));
        } }, "办结回复"));
      }
    } else {
      if (s === "extension_requested" && user.role === "supervisor") {
        bar.append(el("button", { type: "button", class: "primary", id: "action-approve",
          onclick: () => act(n, "extension/approve", {}, "已批准延期") }, "批准延期"));
        bar.append(el("button", { type: "button", class: "danger", id: "action-deny", onclick: () => {
          const reason = el("textarea", { required: true, maxlength: "500", rows: "2" });
          open(actionForm("驳回延期", [el("label", {}, "驳回原因"), reason], "确认驳回",
            () => act(n, "extension/deny", { reason: reason.value.trim() }, "已驳回延期")));
        } }, "驳回延期"));
      }
      if (s === "replied" && ["agent", "supervisor"].includes(user.role)) {
        bar.append(el("button", { type: "button", class: "primary", id: "action-close",
          onclick: () => act(n, "close", {}, "已办结") }, "办结"));
      }
    }
    if (!bar.childElementCount) bar.append(el("span", { class: "muted small" }, "当前状态下无可办理的操作"));
    return [bar, forms];
  }

  async function showDetail(number) {
    current = number;
    for (const row of document.querySelectorAll("#orders tbody tr")) {
      row.classList.toggle("selected", row.dataset.number === number);
    }
    const box = $("#detail");
    const result = await api("GET", `/api/v1/work-orders/${encodeURIComponent(number)}`);
    if (current !== number) return;
    if (!result.ok) {
      clear(box, HL.errorBox(`工单 ${number} 加载失败：${result.message}`));
      return;
    }
    const order = result.data;
    const summary = summaries.get(number) || {};
    const status = summary.deadline_status;
    const suggestion = order.suggestion || {};
    clear(box,
      el("h2", { id: "detail-number", "data-state": order.state }, `工单 ${order.number} `, HL.stateBadge(order.state)),
      el("dl", { class: "kv" },
        el("dt", {}, "诉求"), el("dd", {}, summary.title ? el("strong", {}, summary.title, " ") : "", summary.excerpt || "—"),
        el("dt", {}, "分类"), el("dd", {}, HL.categoryPath(ref, order.category_code, suggestion.category_path)),
        el("dt", {}, "承办单位"), el("dd", {}, HL.deptName(ref, order.department_code)),
        el("dt", {}, "渠道"), el("dd", {}, HL.CHANNELS[order.channel] || order.channel),
        el("dt", {}, "优先级"), el("dd", {}, order.priority === "urgent" ? el("span", { class: "flag" }, "紧急") : "一般",
          order.escalated ? el("span", { class: "flag" }, "　已督办") : ""),
        el("dt", {}, "受理时间"), el("dd", {}, fmtTime(order.created_at)),
        el("dt", {}, "签收时限"), el("dd", {}, fmtTime(order.accept_deadline)),
        el("dt", {}, "办理时限"), el("dd", {}, fmtTime(order.deadline), " ", HL.deadlineBadge(status))),
      actions(order),
      el("h3", { class: "gap-top" }, "办理记录"),
      order.events && order.events.length
        ? el("ul", { class: "events", id: "events" }, order.events.map(eventItem))
        : HL.empty("暂无记录"));
  }

  await loadList();
  const wanted = new URLSearchParams(location.search).get("number");
  if (wanted) showDetail(wanted);
  setInterval(loadList, 60000);
  document.body.dataset.ready = user.role;
})();
