// dagrad explorer, training history: the loss curve over the steps and, for a model with one
// input, the fitted line against the data, both following one step slider.
(function (V) {
  "use strict";
  const W = 460, H = 240, L = 52, R = 14, T = 14, B = 30;

  function fmt(v) {
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : String(+v.toPrecision(4));
  }

  function axes(svg, xr, yr, xl, yl, logY) {
    const sx = (x) => L + ((x - xr[0]) / (xr[1] - xr[0] || 1)) * (W - L - R);
    const ty = (y) => (logY ? Math.log10(Math.max(y, 1e-300)) : y);
    const y0 = ty(yr[0]), y1 = ty(yr[1]);
    const sy = (y) => H - B - ((ty(y) - y0) / (y1 - y0 || 1)) * (H - T - B);
    V.el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }, svg);
    V.el("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }, svg);
    const lab = (x, y, s, anchor) => { const t = V.svgText(svg, x, y, s); t.setAttribute("text-anchor", anchor); return t; };
    lab(L, H - B + 14, fmt(xr[0]), "middle");
    lab(W - R, H - B + 14, fmt(xr[1]), "end");
    lab(L - 4, H - B, fmt(yr[0]), "end");
    lab(L - 4, T + 8, fmt(yr[1]), "end");
    lab((L + W - R) / 2, H - 4, xl, "middle");
    const t = lab(12, (T + H - B) / 2, yl + (logY ? " (log)" : ""), "middle");
    t.setAttribute("transform", `rotate(-90 12 ${(T + H - B) / 2})`);
    return { sx: sx, sy: sy };
  }

  class History {
    constructor(root, data) {
      const h = data.history;
      this.h = h;
      this.steps = h.steps;
      root.insertAdjacentHTML("beforeend",
        '<div class="dg-history-bar"><button id="history-play" class="dg-primary">▶ play</button>' +
        `<input type="range" id="history-step" min="0" max="${this.steps.length - 1}" value="${this.steps.length - 1}" aria-label="training step">` +
        '<span id="history-label"></span></div><div class="dg-history"><div><svg id="loss-chart"></svg></div>' +
        '<div><svg id="fit-chart"></svg></div></div>');
      this.slider = root.querySelector("#history-step");
      this.label = root.querySelector("#history-label");
      this.play = root.querySelector("#history-play");
      this.lossSvg = root.querySelector("#loss-chart");
      this.fitSvg = root.querySelector("#fit-chart");
      for (const s of [this.lossSvg, this.fitSvg]) s.setAttribute("viewBox", `0 0 ${W} ${H}`);
      this.slider.addEventListener("input", () => { this.stop(); this.set(+this.slider.value); });
      this.play.addEventListener("click", () => {
        if (this.timer) return this.stop();
        if (this.i >= this.steps.length - 1) this.set(0);
        this.play.textContent = "❚❚ pause";
        const dt = Math.max(16, Math.min(200, 6000 / this.steps.length));
        this.timer = setInterval(() => (this.i >= this.steps.length - 1 ? this.stop() : this.set(this.i + 1)), dt);
      });
      this._drawLoss();
      this._drawRight();
      this.set(this.steps.length - 1);
    }
    stop() {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      this.play.textContent = "▶ play";
    }

    _drawLoss() {
      const key = this.h.loss, svg = this.lossSvg;
      const ys = this.steps.map((s) => s[key]).filter((v) => isFinite(v));
      if (!key || !ys.length) { svg.style.display = "none"; return; }
      const lo = Math.min(...ys), hi = Math.max(...ys);
      const logY = lo > 0 && hi / lo > 100;
      const xs = this.steps.map((s) => s.step);
      const a = axes(svg, [xs[0], xs[xs.length - 1]], [logY ? lo : Math.min(0, lo), hi], "step", key, logY);
      const d = this.steps.filter((s) => isFinite(s[key])).map((s, j) => `${j ? "L" : "M"}${a.sx(s.step)},${a.sy(s[key])}`).join("");
      V.el("path", { class: "loss", d: d }, svg);
      this.lossDot = V.el("circle", { class: "cur", r: 4.5 }, svg);
      this.lossAxes = a;
    }

    _drawRight() {
      const h = this.h, svg = this.fitSvg;
      if (h.data && h.fit) {
        const xs = h.data.xs, ys = h.data.ys;
        const xlo = Math.min(...xs), xhi = Math.max(...xs);
        let ylo = Math.min(...ys), yhi = Math.max(...ys);
        const pad = (yhi - ylo) * 0.1 || 1;
        ylo -= pad; yhi += pad;
        const a = axes(svg, [xlo, xhi], [ylo, yhi], "x", "y", false);
        this.fitAxes = a;
        const clip = V.el("clipPath", { id: "fit-clip" }, svg);
        V.el("rect", { x: L, y: T, width: W - L - R, height: H - T - B }, clip);
        this.trail = V.el("g", { "clip-path": "url(#fit-clip)" }, svg);
        xs.forEach((x, j) => V.el("circle", { class: "pt", cx: a.sx(x), cy: a.sy(ys[j]), r: 3.2 }, svg));
        this.fitLine = V.el("line", { class: "fit", "clip-path": "url(#fit-clip)" }, svg);
        this.xr = [xlo, xhi];
      } else {
        const keys = h.keys.filter((k) => k !== h.loss);
        if (!keys.length) { svg.style.display = "none"; return; }
        const vals = [].concat(...keys.map((k) => this.steps.map((s) => s[k]).filter((v) => isFinite(v))));
        const xs = this.steps.map((s) => s.step);
        const a = axes(svg, [xs[0], xs[xs.length - 1]], [Math.min(...vals), Math.max(...vals)], "step", keys.join(", "), false);
        keys.forEach((k, j) => {
          const d = this.steps.filter((s) => isFinite(s[k])).map((s, i) => `${i ? "L" : "M"}${a.sx(s.step)},${a.sy(s[k])}`).join("");
          V.el("path", { d: d, fill: "none", stroke: V.THREADS[j % V.THREADS.length], "stroke-width": 1.8 }, svg);
          const last = this.steps[this.steps.length - 1];
          const t = V.svgText(svg, W - R, a.sy(last[k]) - 4, k);
          t.setAttribute("text-anchor", "end");
        });
      }
    }

    set(i) {
      this.i = Math.max(0, Math.min(this.steps.length - 1, i));
      this.slider.value = this.i;
      const s = this.steps[this.i], h = this.h;
      this.label.textContent = `step ${s.step}` + h.keys.map((k) => ` · ${k} ${fmt(s[k])}`).join("");
      if (this.lossDot && isFinite(s[h.loss])) {
        this.lossDot.setAttribute("cx", this.lossAxes.sx(s.step));
        this.lossDot.setAttribute("cy", this.lossAxes.sy(s[h.loss]));
      }
      if (this.fitLine) {
        const line = (st, e) => {
          const w = st[h.fit.w], b = st[h.fit.b], a = this.fitAxes;
          e.setAttribute("x1", a.sx(this.xr[0])); e.setAttribute("y1", a.sy(w * this.xr[0] + b));
          e.setAttribute("x2", a.sx(this.xr[1])); e.setAttribute("y2", a.sy(w * this.xr[1] + b));
        };
        line(s, this.fitLine);
        this.trail.innerHTML = "";
        const every = Math.max(1, Math.floor(this.steps.length / 25));
        for (let j = 0; j < this.i; j += every) line(this.steps[j], V.el("line", { class: "trail" }, this.trail));
      }
    }
  }
  V.History = History;
})(window.dagradViz = window.dagradViz || {});
