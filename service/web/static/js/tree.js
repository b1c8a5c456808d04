/* A searchable three-level category tree; only leaves (末级分类) can be chosen. */
"use strict";

/**
 * categoryTree(container, filterInput, categories, onSelect) → {select(code), reset()}
 * `categories`: [{code, name, level, parent_code, path}] ordered parents first.
 */
function categoryTree(container, filterInput, categories, onSelect) {
  const { el } = HL;
  const nodes = new Map();
  const roots = [];
  for (const cat of categories) {
    const node = { cat, children: [], li: null, ul: null, row: null, parent: null };
    nodes.set(cat.code, node);
    const parent = cat.parent_code ? nodes.get(cat.parent_code) : null;
    if (parent) {
      node.parent = parent;
      parent.children.push(node);
    } else {
      roots.push(node);
    }
  }
  let selected = null;

  function setOpen(node, open) {
    if (!node.ul) return;
    node.ul.classList.toggle("hidden", !open);
    node.row.querySelector(".toggle").textContent = open ? "▾" : "▸";
  }

  function render(node) {
    const leaf = node.children.length === 0;
    node.row = el("div", {
      class: leaf ? "node leaf" : "node",
      "data-code": node.cat.code,
      title: node.cat.path,
    },
    el("span", { class: "toggle" }, leaf ? "" : "▸"),
    el("span", { class: "name" }, node.cat.name),
    el("span", { class: "code" }, node.cat.code));
    node.row.addEventListener("click", () => {
      if (leaf) {
        select(node.cat.code);
        onSelect(node.cat);
      } else {
        setOpen(node, node.ul.classList.contains("hidden"));
      }
    });
    node.li = el("li", {}, node.row);
    if (!leaf) {
      node.ul = el("ul", { class: "hidden" }, node.children.map(render));
      node.li.append(node.ul);
    }
    return node.li;
  }

  function select(code) {
    if (selected) selected.row.classList.remove("selected");
    selected = nodes.get(code) || null;
    if (!selected) return;
    selected.row.classList.add("selected");
    for (let up = selected.parent; up; up = up.parent) setOpen(up, true);
    selected.row.scrollIntoView({ block: "nearest" });
  }

  function applyFilter() {
    const query = filterInput.value.trim().toLowerCase();
    // Visible: matches itself (the path holds its ancestors' names, so a matching parent shows
    // its whole subtree), or has a visible descendant.
    const visit = (node) => {
      const own = !query || node.cat.path.toLowerCase().includes(query) ||
        node.cat.code.startsWith(query);
      let child = false;
      for (const c of node.children) child = visit(c) || child;
      const visible = own || child;
      node.li.classList.toggle("hidden", !visible);
      if (node.ul) setOpen(node, Boolean(query) && visible && (child || node.cat.level < 3));
      return visible;
    };
    let any = false;
    for (const root of roots) any = visit(root) || any;
    container.querySelector(".tree-empty").classList.toggle("hidden", any);
    if (!query && selected) select(selected.cat.code);
  }

  HL.clear(container,
    el("ul", {}, roots.map(render)),
    el("div", { class: "empty tree-empty hidden" }, "没有匹配的分类"));
  filterInput.addEventListener("input", HL.debounce(applyFilter, 150));
  return {
    select,
    reset() {
      if (selected) selected.row.classList.remove("selected");
      selected = null;
      filterInput.value = "";
      applyFilter();
      for (const node of nodes.values()) setOpen(node, false);
    },
  };
}
