/* 坐席工作台 · 参考答复: the three best knowledge-base answers while the agent types, and
   answering a consultation at once (直接办结). Works on its own next to console.js. */
"use strict";

(() => {
  const { el, $, clear, api } = HL;
  const panel = $("#knowledge-panel");
  const textInput = $("#appeal-text");
  if (!panel || !textInput) return;
  const SOURCES = { official_reply: "政府部门公开答复", work_order: "本中心工单答复", manual: "知识库" };
  const MIN_CHARS = 6;
  let sequence = 0;
  let items = [];

  const status = el("span", { class: "muted small", id: "knowledge-status" });
  const list = el("div", { id: "knowledge-list" }, HL.empty("输入诉求内容后显示参考答复"));
  clear(panel, el("h3", { class: "gap-top" }, "参考答复 ", status), list);

  function isConsultation() { return $("#appeal-type").value === "consultation"; }

  function date(iso) { return iso ? HL.fmtTime(iso).slice(0, 10) : "日期不详"; }

  function render() {
    if (!items.length) { clear(list, HL.empty("知识库中暂无相近的答复")); return; }
    clear(list, ...items.map((item, index) => {
      const full = el("div", { class: "small hidden" }, item.answer);
      const excerpt = el("div", { class: "small" }, item.excerpt + (item.answer.length > item.excerpt.length ? "…" : ""));
      const toggle = el("button", { type: "button", onclick: () => {
        full.classList.toggle("hidden"); excerpt.classList.toggle("hidden");
      } }, "展开/收起");
      const actions = [toggle];
      if (isConsultation()) {
        actions.push(el("button", { type: "button", class: "primary", "data-article": String(item.id),
          onclick: () => answer(item) }, "采用此答复并直接办结"));
      }
      return el("div", { class: "knowledge-item", "data-article": String(item.id) },
        el("div", {}, el("strong", {}, `${index + 1}. `), item.question.slice(0, 60)),
        excerpt, full,
        el("div", { class: "muted small" },
          `来源：${SOURCES[item.source] || item.source} · ${date(item.source_date)}`,
          item.category_path ? ` · ${item.category_path}` : ""),
        el("div", { class: "actions" }, ...actions));
    }));
  }

  async function search() {
    const text = textInput.value.trim();
    if (text.length < MIN_CHARS) {
      items = [];
      status.textContent = "";
      clear(list, HL.empty("输入诉求内容后显示参考答复"));
      return;
    }
    const mine = ++sequence;
    const chosen = $("#chosen-code");
    const body = { text: text.slice(0, 2000), k: 3 };
    if (chosen && chosen.dataset.code) body.category_code = chosen.dataset.code;
    status.textContent = "检索中…";
    const result = await api("POST", "/api/v1/knowledge/suggestions", body);
    if (mine !== sequence) return; // a newer search is on its way
    status.textContent = "";
    if (!result.ok) { clear(list, HL.errorBox(result.message)); return; }
    items = result.data.items;
    render();
  }

  async function answer(item) {
    const text = textInput.value.trim();
    const payload = {
      channel: $("#channel").value,
      appeal_type: "consultation",
      text,
      title: $("#title").value.trim(),
      caller_phone: $("#caller-phone").value.trim() || null,
      caller_name: $("#caller-name").value.trim() || null,
      address: $("#address").value.trim() || null,
      answer: item.answer,
      article_id: item.id,
    };
    status.textContent = "办结中…";
    const result = await api("POST", "/api/v1/appeals/answered", payload);
    status.textContent = "";
    if (!result.ok) { HL.toast(result.message, "error"); return; }
    HL.toast(`工单 ${result.data.number} 已直接办结，已安排回访`, "ok");
    clear(list, el("div", { class: "small", id: "knowledge-answered" },
      `工单 ${result.data.number} 已直接办结（答复来自知识库第 ${item.id} 条），回访 ${result.data.callbacks} 次已安排。`));
    items = [];
  }

  const searchSoon = HL.debounce(search, 350);
  textInput.addEventListener("input", searchSoon);
  $("#appeal-type").addEventListener("change", render);
})();
