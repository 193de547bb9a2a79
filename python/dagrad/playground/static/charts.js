// dagrad playground, the charts: small SVG line charts (one or several series, a log-scale y
// if asked, dashed reference lines) and a scatter with a line through it. Redrawn whole on
// each update; long series are thinned to at most MAX_POINTS points drawn.
(function (P) {
  "use strict";
  const V = window.dagradViz;
  const W = 460, H = 250, L = 56, R = 14, T = 12, B = 32, MAX_POINTS = 800;
  P.SERIES = ["#5e35b1", "#00897b", "#ef6c00", "#1e88e5", "#c62828", "#6d4c41", "#7cb342", "#d81b60"];

  function fmt(v) {
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(1) : String(+v.toPrecision(3));
  }
  P.fmt = fmt;

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  }

  function frame(svg, xr, yr, xl, yl, logY) {
    const ty = (y) => (logY ? Math.log10(Math.max(y, 1e-300)) : y);
    const y0 = ty(yr[0]), y1 = ty(yr[1]);
    const sx = (x) => L + ((x - xr[0]) / (xr[1] - xr[0] || 1)) * (W - L - R);
    const sy = (y) => H - B - ((ty(y) - y0) / (y1 - y0 || 1)) * (H - T - B);
    V.el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }, svg);
    V.el("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }, svg);
    const lab = (x, y, s, anchor) => { const t = V.svgText(svg, x, y, s); t.setAttribute("text-anchor", anchor); return t; };
    lab(L, H - B + 14, fmt(xr[0]), "middle");
    lab(W - R, H - B + 14, fmt(xr[1]), "end");
    if (logY) {  // grid lines at powers of ten, at most about 7 of them
      const every = Math.max(1, Math.ceil((Math.floor(y1) - Math.ceil(y0) + 1) / 7));
      for (let e = Math.ceil(y0); e <= Math.floor(y1); e += every) {
        const y = sy(Math.pow(10, e));
        V.el("line", { class: "grid", x1: L, x2: W - R, y1: y, y2: y }, svg);
        lab(L - 4, y + 4, "1e" + e, "end");
      }
    } else {
      lab(L - 4, H - B, fmt(yr[0]), "end");
      lab(L - 4, T + 8, fmt(yr[1]), "end");
    }
    lab((L + W - R) / 2, H - 4, xl, "middle");
    const t = lab(12, (T + H - B) / 2, yl, "middle");
    t.setAttribute("transform", `rotate(-90 12 ${(T + H - B) / 2})`);
    return { sx: sx, sy: sy };
  }

  function thin(points) {
    if (points.length <= MAX_POINTS) return points;
    const k = Math.ceil(points.length / MAX_POINTS), out = [];
    for (let i = 0; i < points.length; i += k) out.push(points[i]);
    if (out[out.length - 1] !== points[points.length - 1]) out.push(points[points.length - 1]);
    return out;
  }

  /**
   * Draws series [{name, points: [[x, y], ...], colour, dash}] (a null or non-finite y breaks
   * the line; with logY, y <= 0 too) and reference lines hlines [{y, colour, label}].
   * yLimit [lo, hi] caps the y range (a run that diverges would flatten everything else):
   * points beyond it are drawn at its edge.
   */
  P.lineChart = function (svg, o) {
    clear(svg);
    const ok = (y) => y !== null && isFinite(y) && (!o.logY || y > 0);
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity, n = 0;
    for (const s of o.series) for (const [x, y] of s.points) {
      x0 = Math.min(x0, x); x1 = Math.max(x1, x);
      if (ok(y)) { y0 = Math.min(y0, y); y1 = Math.max(y1, y); n++; }
    }
    for (const h of o.hlines || []) { y0 = Math.min(y0, h.y); y1 = Math.max(y1, h.y); }
    svg.setAttribute("data-points", String(n));
    if (!isFinite(x0)) { x0 = 0; x1 = 1; }
    if (x1 === x0) x1 = x0 + 1;
    if (!isFinite(y0)) { y0 = o.logY ? 0.1 : 0; y1 = o.logY ? 10 : 1; }
    if (o.logY) { y0 = Math.pow(10, Math.floor(Math.log10(y0))); y1 = Math.pow(10, Math.ceil(Math.log10(y1) + 1e-9)); }
    else { const pad = (y1 - y0) * 0.08 || 1; y0 -= pad; y1 += pad; }
    const lim = o.yLimit;
    if (lim) { y0 = Math.max(y0, lim[0]); y1 = Math.min(y1, lim[1]); }
    const cap = (y) => (lim ? Math.max(y0, Math.min(y1, y)) : y);
    const f = frame(svg, [x0, x1], [y0, y1], o.xLabel || "step", o.yLabel || "", o.logY);
    for (const h of o.hlines || []) {
      const y = f.sy(h.y);
      V.el("line", { class: "ref", x1: L, x2: W - R, y1: y, y2: y, stroke: h.colour || "#888" }, svg);
      if (h.label) V.svgText(svg, L + 4, y - 3, h.label);
    }
    o.series.forEach((s, i) => {
      let d = "", pen = false;
      for (const [x, y] of thin(s.points)) {
        if (!ok(y)) { pen = false; continue; }
        d += (pen ? "L" : "M") + f.sx(x).toFixed(1) + "," + f.sy(cap(y)).toFixed(1);
        pen = true;
      }
      const p = V.el("path", { class: "series", d: d, stroke: s.colour || P.SERIES[i % P.SERIES.length] }, svg);
      if (s.dash) p.setAttribute("stroke-dasharray", s.dash);
      if (s.name) p.setAttribute("data-name", s.name);
    });
  };

  /** The data points, the target line (dashed) and the current fit y = w x + b. */
  P.fitChart = function (svg, xs, ys, w, b, target) {
    clear(svg);
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    const pad = (y1 - y0) * 0.1 || 1;
    y0 -= pad; y1 += pad;
    const f = frame(svg, [-1, 1], [y0, y1], "x", "y", false);
    const clip = (y) => Math.max(y0, Math.min(y1, y));
    const line = (ww, bb, cls) => V.el("line", { class: cls, x1: f.sx(-1), x2: f.sx(1), y1: f.sy(clip(bb - ww)), y2: f.sy(clip(bb + ww)) }, svg);
    xs.forEach((x, i) => V.el("circle", { class: "pt", cx: f.sx(x), cy: f.sy(ys[i]), r: 2.6 }, svg));
    line(target.w, target.b, "target");
    const at = (x) => b + w * x;
    if (w === null || b === null || !isFinite(w) || !isFinite(b)) return;
    if ((at(-1) > y1 && at(1) > y1) || (at(-1) < y0 && at(1) < y0)) {  // nothing of it on the chart
      V.svgText(svg, L + 8, T + 14, `the fitted line y = ${fmt(w)} x + ${fmt(b)} is off the chart`).setAttribute("class", "off");
    } else line(w, b, "fit");
  };
})(window.dagradPlayground = window.dagradPlayground || {});
