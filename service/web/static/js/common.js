/* Shared helpers for every page: API calls with the session cookie, the header, formatting. */
"use strict";

const HL = (() => {
  const STATES = {
    received: "已受理", review: "待审核", dispatched: "已派单", accepted: "已签收",
    extension_requested: "延期申请中", returned: "已退单", replied: "已回复", closed: "已办结",
    callback_done: "已回访", reopened: "已重办", merged: "已并单",
  };
  const ROLES = { agent: "坐席", department: "承办单位", supervisor: "监督员", admin: "管理员" };
  const CHANNELS = { phone: "电话", web: "网站", wechat: "微信", open311: "Open311", agent: "坐席录入" };
  const ACTIONS = {
    receive: "受理", triage_auto: "自动派单", send_to_review: "转人工审核", dispatch: "派单",
    redispatch: "改派", accept: "签收", return: "退单", request_extension: "申请延期",
    approve_extension: "批准延期", deny_extension: "驳回延期", reply: "办结回复",
    reject_reply: "退回重办", close: "办结", record_callback: "回访", reopen: "重办",
    merge: "并单", unmerge: "取消并单", escalate: "督办", answer: "直接办结",
  };
  const DEADLINES = { normal: "正常", warning: "临期", overdue: "超期" };
  const NAV = [
    { href: "/dashboard", label: "监督大屏", roles: ["supervisor", "admin"] },
    { href: "/assessment", label: "考核排名", roles: ["supervisor", "admin"] },
    { href: "/console", label: "坐席工作台", roles: ["agent", "supervisor", "admin"] },
    { href: "/inbox", label: "工单列表", roles: ["agent", "supervisor", "admin"] },
    { href: "/inbox", label: "部门工单", roles: ["department"] },
  ];

  /** Build an element: el("div", {class: "x", onclick: f}, "text", child, ...). */
  function el(tag, attrs, ...children) {
    const node = tag === "svg" || SVG_TAGS.has(tag)
      ? document.createElementNS("http://www.w3.org/2000/svg", tag)
      : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const SVG_TAGS = new Set(["g", "rect", "line", "polyline", "path", "text", "circle", "title"]);

  const $ = (selector, root) => (root || document).querySelector(selector);

  function clear(node, ...children) {
    node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
    return node;
  }

  /** Turn an error body {"error","detail","code","message"} into one readable Chinese line. */
  function errorText(result) {
    const body = result.data;
    if (result.status === 0) return "无法连接服务器，请检查网络后重试";
    if (result.status === 404 && body && body.error === "NotFound" && body.detail === "Not Found") {
      return "该功能的接口尚未提供";
    }
    // A Chinese detail says more than the code's message; an English one is not for users.
    if (body && typeof body.detail === "string" && /[\u4e00-\u9fff]/.test(body.detail)) {
      return body.detail;
    }
    if (body && Array.isArray(body.detail)) {
      return "输入有误：" + body.detail.map((e) => `${(e.loc || []).slice(1).join(".")} ${e.msg}`).join("；");
    }
    if (body && typeof body.message === "string") return body.message;
    if (body && typeof body.detail === "string") return body.detail;
    return `请求失败（HTTP ${result.status}）`;
  }

  /** fetch() the JSON API with the session cookie; never throws. 401 sends the user to /login. */
  async function api(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (_err) {
      const result = { ok: false, status: 0, data: null };
      result.message = errorText(result);
      return result;
    }
    let data = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) {
      try { data = await response.json(); } catch (_err) { data = null; }
    }
    const result = { ok: response.ok, status: response.status, data };
    if (!response.ok) result.message = errorText(result);
    if (response.status === 401 && !url.startsWith("/api/v1/auth/")) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
    }
    return result;
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  const TIME = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hour12: false,
  });
  function fmtTime(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : TIME.format(date).replace(/\//g, "-");
  }
  function pct(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    return (value * 100).toFixed(digits === undefined ? 1 : digits) + "%";
  }

  let toastTimer = null;
  function toast(message, kind) {
    let node = document.getElementById("toast");
    if (!node) {
      node = el("div", { id: "toast", role: "status" });
      document.body.append(node);
    }
    node.className = kind === "error" ? "error" : "";
    node.textContent = message;
    node.classList.remove("hidden");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => node.classList.add("hidden"), 5000);
  }

  // Chinese has no spaces: a browser may break a line between any two characters, so a narrow
  // column stacks a department's name one character a line. `words()` marks the places between
  // words (ICU's dictionary segmentation) with <wbr>, and `.words` (word-break: keep-all) forbids
  // breaks anywhere else: a name wraps between its words or not at all.
  const SEGMENTER = typeof Intl.Segmenter === "function"
    ? new Intl.Segmenter("zh-CN", { granularity: "word" }) : null;
  function words(text, attrs) {
    const value = text === null || text === undefined ? "" : String(text);
    const parts = [];
    if (SEGMENTER) {
      for (const { segment } of SEGMENTER.segment(value)) {
        if (parts.length) parts.push(el("wbr"));
        parts.push(segment);
      }
    } else {
      parts.push(value);
    }
    const node = el("span", attrs || {}, parts);
    node.classList.add("words");
    return node;
  }

  function empty(text) { return el("div", { class: "empty" }, text); }
  function errorBox(text) { return el("div", { class: "error-box", role: "alert" }, text); }
  function stateBadge(state) { return el("span", { class: "state", "data-state": state }, STATES[state] || state); }
  function deadlineBadge(status) {
    if (!status) return el("span", { class: "deadline deadline-none" }, "—");
    return el("span", { class: `deadline deadline-${status}`, "data-status": status }, DEADLINES[status] || status);
  }

  // Reference data, loaded once per page.
  let referencePromise = null;
  function reference() {
    if (!referencePromise) {
      referencePromise = Promise.all([
        api("GET", "/api/v1/reference/categories"),
        api("GET", "/api/v1/reference/departments"),
      ]).then(([cats, depts]) => {
        const categories = cats.ok ? cats.data.items : [];
        const departments = depts.ok ? depts.data.items : [];
        return {
          ok: cats.ok && depts.ok,
          message: cats.ok ? depts.message : cats.message,
          categories,
          departments,
          category: new Map(categories.map((c) => [c.code, c])),
          department: new Map(departments.map((d) => [d.code, d])),
        };
      });
    }
    return referencePromise;
  }
  function deptName(ref, code) {
    if (!code) return "—";
    const dept = ref && ref.department.get(code);
    return dept ? dept.name : code;
  }
  function categoryPath(ref, code, fallback) {
    if (!code) return fallback || "—";
    const cat = ref && ref.category.get(code);
    return cat ? cat.path : fallback || code;
  }

  /** The last level of a category path ("城乡建设/市政设施/路灯" → "路灯"). */
  function categoryLeaf(ref, code, fallback) {
    const path = categoryPath(ref, code, fallback);
    return path.split("/").pop();
  }

  /** Header with the role's navigation; resolves to the signed-in user (or redirects to /login). */
  async function start(active) {
    const me = await api("GET", "/api/v1/auth/me");
    if (!me.ok) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
      return new Promise(() => {});
    }
    const user = me.data;
    const links = NAV.filter((item) => item.roles.includes(user.role)).map((item) =>
      el("a", { href: item.href, class: item.href === active ? "active" : null }, item.label));
    const logout = el("button", { type: "button", id: "logout" }, "退出");
    logout.addEventListener("click", async () => {
      await api("POST", "/api/v1/auth/logout");
      location.href = "/login";
    });
    const header = el("header", { class: "topbar" },
      el("div", { class: "brand" }, "12345 热线工单系统"),
      el("nav", {}, links),
      el("div", { class: "who", id: "who", "data-role": user.role },
        `${user.display_name || user.username}（${ROLES[user.role] || user.role}` +
        (user.department_code ? ` · ${user.department_code}` : "") + "）"),
      logout);
    document.body.prepend(header);
    return user;
  }

  return {
    STATES, ROLES, CHANNELS, ACTIONS, DEADLINES, el, $, clear, api, debounce, fmtTime, pct, toast,
    empty, errorBox, stateBadge, deadlineBadge, reference, deptName, categoryPath, categoryLeaf,
    start, words,
  };
})();
