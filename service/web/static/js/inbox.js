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
      const headers = [["工单号", "col-number"], ["诉求", "col-appeal"], ["分类", "col-category"],
        isDepartment ? null : ["承办单位", "col-department"], ["状态", "col-state"],
        ["办理时限", "col-deadline"], ["时限状态", "col-deadline-status"]].filter(Boolean);
      clear(box, el("div", { class: "table-wrap" }, el("table", { id: "orders", class: "orders" },
        el("thead", {}, el("tr", {}, headers.map(([h, cls]) => el("th", { class: cls }, h)))),
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
    el("td", { class: "col-number nowrap" }, item.number,
      item.escalated ? el("span", { class: "flag" }, " 督办") : "",
      item.priority === "urgent" ? el("span", { class: "flag" }, " 紧急") : ""),
    el("td", { class: "col-appeal" }, el("div", { class: "excerpt", title: item.excerpt },
      item.title ? el("strong", {}, HL.words(item.title), " ") : "", HL.words(item.excerpt))),
    el("td", { class: "col-category small", title: HL.categoryPath(ref, item.category_code) },
      HL.words(HL.categoryLeaf(ref, item.category_code))),
    isDepartment ? null : el("td", { class: "col-department small" },
      HL.words(HL.deptName(ref, item.department_code))),
    el("td", { class: "col-state" }, HL.stateBadge(item.state)),
    el("td", { class: "col-deadline nowrap small" }, fmtTime(item.deadline)),
    el("td", { class: "col-deadline-status" }, HL.deadlineBadge(status)));
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

  // What each workflow action looks like here. Whether it is offered comes from the API
  // (`allowed_actions`: the workflow's rules for the signed-in role and the order's state);
  // actions with no page of their own here (merge, callbacks) are left to the console.
  const reasonForm = (title, label, placeholder) => () => {
    const reason = el("textarea", { name: "reason", required: true, maxlength: "500", rows: "3", placeholder });
    return [title, [el("label", {}, label), reason], () => ({ reason: reason.value.trim() })];
  };
  const ACTION_VIEWS = {
    accept: { label: "签收", path: "accept", done: "已签收", kind: "primary" },
    return: { label: "退单", path: "return", done: "已退单", kind: "danger",
      form: reasonForm("退单", "退单原因", "退单原因：如不属于本单位职责、地址不在辖区等") },
    request_extension: { label: "申请延期", path: "extension", done: "已提交延期申请",
      form: (order) => {
        const reason = el("textarea", { name: "reason", required: true, maxlength: "500", rows: "2" });
        const when = el("input", { type: "datetime-local", name: "new_deadline", required: true,
          value: defaultExtension(order.deadline) });
        return ["申请延期", [el("label", {}, "延期原因"), reason, el("label", {}, "申请延至"), when],
          () => ({ reason: reason.value.trim(), new_deadline: new Date(when.value).toISOString() })];
      } },
    reply: { label: "办结回复", path: "reply", done: "已回复", kind: "primary",
      form: () => {
        const text = el("textarea", { name: "result", required: true, maxlength: "5000", rows: "5",
          placeholder: "办理结果：已于某日派人现场处理，……" });
        return ["办结回复", [el("label", {}, "办理结果"), text], () => ({ result: text.value.trim() })];
      } },
    approve_extension: { label: "批准延期", path: "extension/approve", done: "已批准延期",
      kind: "primary", body: {} },
    deny_extension: { label: "驳回延期", path: "extension/deny", done: "已驳回延期", kind: "danger",
      form: reasonForm("驳回延期", "驳回原因", "") },
    dispatch: { label: "按建议派单", path: "dispatch", done: "已派单", kind: "primary", body: {} },
    redispatch: { label: "改派", path: "reassign", done: "已改派",
      form: (order) => {
        const select = el("select", { name: "department_code", required: true },
          el("option", { value: "" }, "请选择承办单位"),
          ref.departments.filter((d) => d.code !== order.department_code)
            .map((d) => el("option", { value: d.code }, d.name)));
        const reason = el("textarea", { name: "reason", required: true, maxlength: "500", rows: "2",
          placeholder: "改派原因：如职责调整、属地有误等" });
        return ["改派", [el("label", {}, "改派至"), select, el("label", {}, "改派原因"), reason],
          () => ({ department_code: select.value, reason: reason.value.trim() })];
      } },
    escalate: { label: "督办", path: "escalate", done: "已督办", kind: "danger",
      form: reasonForm("督办", "督办意见", "督办意见：如请于今日内联系来电人并反馈办理进度") },
    close: { label: "办结", path: "close", done: "已办结", kind: "primary", body: {} },
  };

  function actions(order) {
    const bar = el("div", { class: "actions", id: "order-actions" });
    const forms = el("div", { id: "action-forms" });
    const n = order.number;
    for (const name of order.allowed_actions || []) {
      const view = ACTION_VIEWS[name];
      if (!view) continue;
      const id = `action-${view.path.replace("/", "-")}`;
      const onclick = view.form
        ? () => {
          const [title, fields, body] = view.form(order);
          clear(forms, actionForm(title, fields, `确认${view.label}`, () => act(n, view.path, body(), view.done)));
          const input = forms.querySelector("textarea, input, select");
          if (input) input.focus();
        }
        : () => act(n, view.path, view.body, view.done);
      bar.append(el("button", { type: "button", class: view.kind || null, id, "data-action": name, onclick },
        view.label));
    }
    if (!bar.childElementCount) {
      bar.append(el("span", { class: "muted small", id: "no-actions" },
        order.state === "closed" || order.state === "callback_done" ? "工单已办结，无需办理"
          : "当前状态下您无可办理的操作"));
    }
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
    const appeal = order.appeal || {};
    const phone = appeal.caller_phone;
    const mine = isDepartment && order.department_code === user.department_code;
    clear(box,
      el("h2", { id: "detail-number", "data-state": order.state }, `工单 ${order.number} `, HL.stateBadge(order.state)),
      el("div", { class: "appeal-text", id: "appeal-text" },
        appeal.title ? el("strong", {}, appeal.title, "　") : "", appeal.text || summary.excerpt || "—"),
      el("dl", { class: "kv" },
        el("dt", {}, "来电人"), el("dd", { id: "caller-name" }, appeal.caller_name || "—"),
        el("dt", {}, "联系电话"), el("dd", { id: "caller-phone" },
          phone && !appeal.personal_data_masked
            ? el("a", { href: `tel:${phone.replace(/[^0-9+]/g, "")}`, class: "button small", id: "call-back" },
              `回电 ${phone}`)
            : phone || "—",
          appeal.personal_data_masked
            ? el("span", { class: "muted small" }, mine ? "" : "（已脱敏：仅主办单位可见完整号码）") : ""),
        el("dt", {}, "地址"), el("dd", { id: "caller-address" }, appeal.address || "—"),
        el("dt", {}, "分类"), el("dd", {}, HL.words(HL.categoryPath(ref, order.category_code, suggestion.category_path))),
        el("dt", {}, "承办单位"), el("dd", {}, HL.words(HL.deptName(ref, order.department_code)),
          isDepartment && !mine ? el("span", { class: "muted small" }, "（本单位为协办）") : ""),
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
