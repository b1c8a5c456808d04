/* Small hand-written charts (no chart library): SVG lines and sparkline, HTML horizontal bars. */
"use strict";

const Charts = (() => {
  const { el } = HL;
  const COLORS = ["#1f5fbf", "#2e8540", "#d98b00", "#c62828", "#7b3fb5", "#00838f", "#6d4c41"];

  function svg(width, height, ...children) {
    return el("svg", {
      viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "xMidYMid meet",
      role: "img", xmlns: "http://www.w3.org/2000/svg",
    }, children);
  }

  /** A top for four gridlines at whole round steps (1, 2, 5 × 10^k): 3 → 4, 9 → 20, 130 → 200. */
  function niceMax(value) {
    if (value <= 0) return 4;
    const raw = value / 4;
    const power = 10 ** Math.floor(Math.log10(raw));
    for (const step of [1, 2, 5, 10]) {
      if (step * power >= raw) return Math.max(4, Math.ceil(step * power) * 4);
    }
    return 40 * power;
  }

  /**
   * Line chart. labels: x labels; series: [{name, values: [number per label]}].
   * Returns a wrapper with the SVG and a legend.
   */
  function lines(labels, series, options) {
    const opts = Object.assign({ width: 640, height: 220, percent: false, yMax: null }, options);
    const pad = { left: 40, right: 12, top: 10, bottom: 28 };
    const w = opts.width - pad.left - pad.right;
    const h = opts.height - pad.top - pad.bottom;
    const top = opts.yMax !== null ? opts.yMax
      : niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null))));
    const x = (i) => pad.left + (labels.length <= 1 ? w / 2 : (i * w) / (labels.length - 1));
    const y = (v) => pad.top + h - (v / top) * h;
    const parts = [];
    for (let k = 0; k <= 4; k++) {
      const value = (top * k) / 4;
      parts.push(el("line", { class: "gridline", x1: pad.left, x2: pad.left + w, y1: y(value), y2: y(value) }));
      parts.push(el("text", { x: pad.left - 4, y: y(value) + 4, "text-anchor": "end" },
        opts.percent ? `${Math.round(value * 100)}%` : String(Math.round(value * 10) / 10)));
    }
    parts.push(el("line", { class: "axis", x1: pad.left, x2: pad.left + w, y1: pad.top + h, y2: pad.top + h }));
    const every = Math.max(1, Math.ceil(labels.length / 8));
    labels.forEach((label, i) => {
      if ((labels.length - 1 - i) % every === 0) { // the latest date always has its label
        parts.push(el("text", { x: x(i), y: pad.top + h + 16, "text-anchor": "middle" }, label));
      }
    });
    series.forEach((s, index) => {
      const color = s.color || COLORS[index % COLORS.length];
      const points = s.values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
      if (points.length > 1) {
        parts.push(el("polyline", { points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
      }
      s.values.forEach((v, i) => {
        if (v === null) return;
        parts.push(el("circle", { cx: x(i), cy: y(v), r: 2.5, fill: color },
          el("title", {}, `${s.name} ${labels[i]}：${opts.percent ? (v * 100).toFixed(1) + "%" : v}`)));
      });
    });
    return el("div", { class: "chart" }, svg(opts.width, opts.height, parts), legend(series));
  }

  function legend(series) {
    return el("div", { class: "legend" }, series.map((s, index) => {
      const swatch = el("i");
      swatch.style.background = s.color || COLORS[index % COLORS.length];
      return el("span", {}, swatch, s.name);
    }));
  }

  /** Horizontal bars: items [{label, value}]. HTML rather than SVG so that a long label wraps
   * between its words instead of being cut. */
  function bars(items, options) {
    const opts = Object.assign({ color: COLORS[0], format: String }, options);
    const max = Math.max(1, ...items.map((i) => i.value));
    return el("div", { class: "hbars" }, items.map((item) => {
      const fill = el("span");
      fill.style.width = `${Math.max(0.5, (item.value / max) * 100)}%`;
      fill.style.background = item.color || opts.color;
      return el("div", { class: "hbar", title: `${item.label}：${opts.format(item.value)}` },
        HL.words(item.label, { class: "hbar-label", title: item.label }),
        el("span", { class: "hbar-track" }, fill),
        el("span", { class: "hbar-value" }, opts.format(item.value)));
    }));
  }

  /** A tiny trend line for tables. */
  function sparkline(values, options) {
    const opts = Object.assign({ width: 90, height: 22 }, options);
    if (values.length < 2) return el("span", { class: "muted small" }, "—");
    const max = Math.max(1, ...values);
    const step = opts.width / (values.length - 1);
    const points = values.map((v, i) => `${i * step},${opts.height - 2 - (v / max) * (opts.height - 4)}`);
    const node = svg(opts.width, opts.height,
      el("polyline", { points: points.join(" "), fill: "none", stroke: COLORS[3], "stroke-width": 1.5 }));
    node.setAttribute("width", String(opts.width));
    node.setAttribute("height", String(opts.height));
    return node;
  }

  return { COLORS, lines, bars, sparkline };
})();
