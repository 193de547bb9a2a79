// dagrad explorer, the graph: draws the laid-out graph as SVG, with pan, zoom, hover and
// expandable groups. It knows nothing of replays or backprop: those set decorations (a node's
// state, its gradient label, the edges a gradient flows along) and call refresh().
(function (V) {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  // The grid the Python side lays nodes out on (html.py: _COL, _ROW) and the size of a node.
  const NW = 104, NH = 42, PAD = 18, HEAD = 20;
  const SYMBOL = { add: "+", sub: "−", mul: "×", div: "÷", matmul: "@", neg: "−x", pow: "xⁿ" };

  function el(tag, attrs, parent) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, cls) {
    const t = el("text", { x: x, y: y, class: cls || "" }, parent);
    t.textContent = s;
    return t;
  }
  V.el = el;
  function bezier(P, t) {
    const u = 1 - t, a = u * u * u, b = 3 * u * u * t, c = 3 * u * t * t, d = t * t * t;
    return [a * P[0][0] + b * P[1][0] + c * P[2][0] + d * P[3][0], a * P[0][1] + b * P[1][1] + c * P[2][1] + d * P[3][1]];
  }
  V.svgText = text;

  /** What a node says inside its shape: a leaf its name, an op its symbol or name. */
  function nodeTitle(n) {
    if (n.kind === "variable" || n.kind === "parameter") return n.label || n.op;
    const sym = SYMBOL[n.op] || n.op;
    return n.label && n.label !== n.op && n.label.length <= 6 ? n.label + " = " + sym : sym;
  }
  V.nodeTitle = nodeTitle;
  V.nodeName = function (n) { return n.label && n.label !== n.op ? n.label + " (" + n.op + ")" : n.op + " #" + n.id; };
  function ellipsize(s, n) { return s.length > n ? s.slice(0, n - 1) + "…" : s; }

  class Graph {
    constructor(host, data, hooks) {
      this.host = host;
      this.data = data;
      this.hooks = hooks || {};
      this.open = new Set(data.open || []);
      this.parent = {};  // node or group id -> the group holding it
      for (const gid in data.clusters)
        for (const ch of data.clusters[gid].children) this.parent[ch] = gid;
      // decorations, set by the replay and backprop modules
      this.state = {};      // node id -> waiting | ready | running | done | idle
      this.fill = {};       // node id -> colour while running (its thread's)
      this.gradText = {};   // node id -> gradient label under the node
      this.bp = {};         // node id -> current | done
      this.flows = [];      // [{src, dst, text}]: edges a gradient is passing along
      this.view = { x: 0, y: 0, k: 1 };
      this.svg = el("svg", { id: "graph", role: "img", "aria-label": "computational graph" }, host);
      const defs = el("defs", {}, this.svg);
      for (const [id, colour] of [["dg-arrow", "#9aa5b4"], ["dg-arrow-grad", "#c62828"], ["dg-arrow-bwd", "#f0b27a"]]) {
        const m = el("marker", { id: id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: "userSpaceOnUse",
          orient: "auto-start-reverse" }, defs);
        el("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }, m);
      }
      this.vp = el("g", { class: "dg-viewport" }, this.svg);
      this.tip = document.createElement("div");
      this.tip.className = "dg-tip";
      host.appendChild(this.tip);
      this._panZoom();
      this.render();
      this.fit();
    }

    /** The id drawn for node `id`: itself, or the collapsed group that holds it. */
    rep(id) {
      let shown = id;
      for (let g = this.parent[id]; g && g !== "root"; g = this.parent[g]) if (!this.open.has(g)) shown = g;
      return shown;
    }
    isGroup(id) { return Object.prototype.hasOwnProperty.call(this.data.clusters, id); }
    members(gid) {  // every node under a group
      const out = [], stack = [gid];
      while (stack.length) {
        const g = stack.pop();
        for (const ch of this.data.clusters[g].children) (this.isGroup(ch) ? stack : out).push(ch);
      }
      return out;
    }

    // Note [Expanding in place]
    // ~~~~~~~~~~~~~~~~~~~~~~~~~~
    // Python lays out each group's children once, with every child group as one node-sized
    // box. Opening a group makes its box as large as its contents; the siblings to its right
    // move right by the extra width and those below it in its column move down by the extra
    // height. Everything else keeps its place, so the reader does not lose the picture, and
    // nothing is laid out in the browser.
    _place(gid) {
      const c = this.data.clusters[gid];
      const items = c.children.map((id) => {
        const p = c.pos[id];
        const it = { id: id, x: p[0] - NW / 2, y: p[1] - NH / 2, w: NW, h: NH, inner: null };
        if (this.isGroup(id) && this.open.has(id)) {
          it.inner = this._place(id);
          it.w = it.inner.w;
          it.h = it.inner.h;
        }
        return it;
      });
      const dx = items.map(() => 0), dy = items.map(() => 0);
      items.forEach((e) => {
        if (!e.inner) return;
        items.forEach((o, j) => {
          if (o === e) return;
          if (o.x > e.x + 1) dx[j] += e.w - NW;
          else if (Math.abs(o.x - e.x) <= 1 && o.y > e.y) dy[j] += e.h - NH;
        });
      });
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      items.forEach((it, j) => {
        it.x += dx[j];
        it.y += dy[j];
        x0 = Math.min(x0, it.x); y0 = Math.min(y0, it.y);
        x1 = Math.max(x1, it.x + it.w); y1 = Math.max(y1, it.y + it.h);
      });
      const pad = gid === "root" ? 0 : PAD;
      const head = gid === "root" ? 0 : HEAD;
      items.forEach((it) => { it.x += pad - x0; it.y += pad + head - y0; });
      return { items: items, w: x1 - x0 + 2 * pad, h: y1 - y0 + 2 * pad + head };
    }

    /** Rebuilds the SVG for the current open groups. */
    render() {
      const vp = this.vp;
      while (vp.firstChild) vp.removeChild(vp.firstChild);
      this.box = {};     // shown id -> {x, y, w, h}
      this.nodeEls = {}; // shown id -> <g>
      const frames = el("g", { class: "dg-frames" }, vp);
      const edgeLayer = el("g", { class: "dg-edges" }, vp);
      const nodeLayer = el("g", { class: "dg-nodes" }, vp);
      const walk = (placed, ox, oy) => {
        for (const it of placed.items) {
          const x = ox + it.x, y = oy + it.y;
          if (it.inner) {
            const c = this.data.clusters[it.id];
            const f = el("g", { class: "dg-frame", "data-group-id": it.id, "data-open": "true" }, frames);
            el("rect", { x: x, y: y, width: it.w, height: it.h, rx: 10 }, f);
            const t = text(f, x + 8, y + 13, `▾ ${c.label}${c.sub ? " of " + c.sub : ""} (${c.size} nodes)`);
            t.setAttribute("data-toggle", it.id);
            t.addEventListener("click", (ev) => { ev.stopPropagation(); this.toggle(it.id); });
            walk(it.inner, x, y);
          } else {
            this.box[it.id] = { x: x, y: y, w: it.w, h: it.h };
            this._drawItem(nodeLayer, it.id, x, y);
          }
        }
      };
      this.placed = this._place("root");
      walk(this.placed, 0, 0);
      // edges between what is shown, one per pair
      this.edgeEls = {};
      const seen = {}, shown = [], fan = {};
      for (const e of this.data.edges) {
        const a = this.rep(e.src), b = this.rep(e.dst);
        if (a === b || seen[a + ">" + b]) continue;
        seen[a + ">" + b] = true;
        shown.push([e, a, b]);
        fan[a] = (fan[a] || 0) + 1;
      }
      for (const [e, a, b] of shown) {
        const A = this.box[a], B = this.box[b];
        if (!A || !B) continue;
        const bwd = (this.data.nodes[e.dst] || {}).pass === "backward";
        // a node read by many (a weight shared by every step) has its edges drawn faint
        const cls = "dg-edge" + (bwd ? " dg-bwd" : "") + (fan[a] > 8 ? " dg-fan" : "");
        const g = el("g", { class: cls, "data-src": a, "data-dst": b }, edgeLayer);
        const x1 = A.x + A.w, y1 = A.y + A.h / 2, x2 = B.x, y2 = B.y + B.h / 2;
        const c = x2 < x1 + 10 ? 60 : Math.max(30, Math.abs(x2 - x1) / 2);  // a backward-drawn edge loops round
        const P = [[x1, y1], [x1 + c, y1], [x2 - c, y2], [x2, y2]];
        const d = `M${x1},${y1} C${P[1][0]},${P[1][1]} ${P[2][0]},${P[2][1]} ${x2},${y2}`;
        const p = el("path", { d: d, "marker-end": `url(#${bwd ? "dg-arrow-bwd" : "dg-arrow"})` }, g);
        const mid = bezier(P, 0.5);
        if (e.shape && e.shape.length && !this.isGroup(a) && !this.isGroup(b) && fan[a] <= 8)
          text(g, mid[0], mid[1] - 5, "(" + e.shape.join(", ") + ")");
        // what a gradient passes along the edge is written near the input it goes to
        const at = bezier(P, 0.3);
        const pass = el("g", { class: "dg-pass", transform: `translate(${at[0]},${at[1]})` }, g);
        this.edgeEls[a + ">" + b] = { g: g, path: p, pass: pass };
      }
      this.refresh();
      if (this.hooks.onRender) this.hooks.onRender();
    }

    _drawItem(layer, id, x, y) {
      const group = this.isGroup(id);
      const n = group ? null : this.data.nodes[id];
      const cls = group ? "dg-node dg-group" : "dg-node " + (n.pass === "backward" ? "backward" : n.kind);
      const attrs = { class: cls, transform: `translate(${x},${y})` };
      if (group) attrs["data-group-id"] = id; else attrs["data-node-id"] = id;
      const g = el("g", attrs, layer);
      if (group) {
        const c = this.data.clusters[id];
        el("rect", { x: 4, y: 4, width: NW, height: NH, rx: 8, class: "dg-shape", opacity: 0.5 }, g);
        el("rect", { x: 0, y: 0, width: NW, height: NH, rx: 8, class: "dg-shape" }, g);
        text(g, NW / 2, NH / 2 - 7, "▸ " + ellipsize(c.label, 13), "dg-op");
        text(g, NW / 2, NH / 2 + 10, ellipsize(c.sub || c.size + " nodes", 18), "dg-val");
      } else {
        if (n.kind === "op" || n.pass === "backward") el("ellipse", { cx: NW / 2, cy: NH / 2, rx: NW / 2, ry: NH / 2, class: "dg-shape" }, g);
        else el("rect", { x: 0, y: 0, width: NW, height: NH, rx: n.kind === "output" ? 12 : 6, class: "dg-shape" }, g);
        let val = n.value ? n.value.short : "";
        const of = n.grad_of && this.data.nodes[n.grad_of];
        if (of) val = `grad ${of.name}` + (val ? ": " + val : "");  // a gradient result of the backward pass
        text(g, NW / 2, val ? NH / 2 - 7 : NH / 2, ellipsize(nodeTitle(n), 13), "dg-op");
        if (val) text(g, NW / 2, NH / 2 + 10, ellipsize(val, 16), "dg-val");
        const gt = text(g, NW / 2, NH + 13, "", "dg-grad");
        g._grad = gt;
      }
      g.addEventListener("pointerenter", (ev) => this._showTip(id, ev));
      g.addEventListener("pointermove", (ev) => this._moveTip(ev));
      g.addEventListener("pointerleave", () => { this.tip.style.display = "none"; });
      g.addEventListener("click", (ev) => {
        if (this._dragged) return;
        ev.stopPropagation();
        if (group) this.toggle(id);
        else if (this.hooks.onSelect) this.hooks.onSelect(id);
      });
      this.nodeEls[id] = g;
    }

    /** Opens a closed group or closes an open one. */
    toggle(gid) {
      if (this.open.has(gid)) {
        this.open.delete(gid);
        for (const g of Object.keys(this.data.clusters)) {  // closing a group closes what is inside
          let p = this.parent[g];
          while (p && p !== gid) p = this.parent[p];
          if (p === gid) this.open.delete(g);
        }
      } else this.open.add(gid);
      this.render();
    }

    /** Applies the decorations to the drawn elements (cheap: no layout, no rebuild). */
    refresh() {
      const groupState = {};
      if (Object.keys(this.state).length) {
        for (const id in this.nodeEls) if (this.isGroup(id)) groupState[id] = this._aggregate(id);
      }
      const cur = Object.keys(this.bp).find((m) => this.bp[m] === "current");
      const curRep = cur === undefined ? null : this.rep(cur);
      for (const id in this.nodeEls) {
        const g = this.nodeEls[id];
        const group = this.isGroup(id);
        const st = group ? groupState[id] : this.state[id];
        const s = st ? st.state || st : "idle";
        g.setAttribute("data-state", s);
        const shape = g.querySelectorAll(".dg-shape");
        const colour = group ? st && st.fill : this.fill[id];
        shape.forEach((sh) => {
          if (s === "running" && colour) { sh.style.fill = colour; sh.style.stroke = colour; } else { sh.style.fill = ""; sh.style.stroke = ""; }
        });
        if (group) {  // a closed group holding backprop's current node shows it
          if (curRep === id) g.setAttribute("data-bp", "current"); else g.removeAttribute("data-bp");
          continue;
        }
        const bp = this.bp[id];
        if (bp) g.setAttribute("data-bp", bp); else g.removeAttribute("data-bp");
        g._grad.textContent = this.gradText[id] ? "grad " + this.gradText[id] : "";
      }
      for (const k in this.edgeEls) {
        const e = this.edgeEls[k];
        e.g.classList.remove("dg-flow");
        e.path.setAttribute("marker-end", `url(#${e.g.classList.contains("dg-bwd") ? "dg-arrow-bwd" : "dg-arrow"})`);
        e.path.removeAttribute("marker-start");
        while (e.pass.firstChild) e.pass.removeChild(e.pass.firstChild);
      }
      for (const f of this.flows) {
        const e = this.edgeEls[this.rep(f.src) + ">" + this.rep(f.dst)];
        if (!e) continue;
        e.g.classList.add("dg-flow");
        e.path.removeAttribute("marker-end");  // the gradient goes back to the input
        e.path.setAttribute("marker-start", "url(#dg-arrow-grad)");
        const w = 10 + 7.5 * f.text.length;
        el("rect", { x: -w / 2, y: -10, width: w, height: 20, rx: 10 }, e.pass);
        text(e.pass, 0, 1, f.text);
      }
    }

    _aggregate(gid) {
      let running = null, done = 0, waiting = 0, n = 0;
      for (const m of this.members(gid)) {
        const s = this.state[m] || "idle";
        n++;
        if (s === "running" && !running) running = this.fill[m];
        else if (s === "done" || s === "idle") done++;
        else if (s === "waiting") waiting++;
      }
      if (running !== null) return { state: "running", fill: running };
      if (done === n) return { state: "done" };
      if (waiting === n) return { state: "waiting" };
      return { state: "ready" };
    }

    _showTip(id, ev) {
      const tip = this.tip;
      let h;
      if (this.isGroup(id)) {
        const c = this.data.clusters[id];
        h = `<b>${esc(c.label)}</b> <span class="k">${c.size} nodes · click to open</span>`;
        if (c.detail) h += `<br>${esc(c.detail)}`;
      } else {
        const n = this.data.nodes[id];
        h = `<b>${esc(V.nodeName(n))}</b> <span class="k">${n.kind}${n.pass === "backward" ? ", backward" : ""}</span><br>` +
          `<span class="k">shape</span> (${(n.shape || []).join(", ")}) <span class="k">${esc(n.dtype || "")}</span>`;
        if (n.detail) h += `<br>${esc(n.detail)}`;
        if (n.step !== undefined) h += `<br><span class="k">schedule</span> #${n.step} <span class="k">buffer</span> ${esc(n.buffer || "")}`;
        if (n.value) h += `<br><span class="k">value</span> ${esc(n.value.text)}`;
        if (n.grad) h += `<br><span class="k">grad</span> ${esc(n.grad.text)}`;
        else if (n.grad_note) h += `<br><span class="k">grad</span> ${esc(n.grad_note)}`;
      }
      tip.innerHTML = h;
      tip.style.display = "block";
      this._moveTip(ev);
    }
    _moveTip(ev) {
      const r = this.host.getBoundingClientRect();
      const x = ev.clientX - r.left + 14, y = ev.clientY - r.top + 14;
      this.tip.style.left = Math.min(x, r.width - this.tip.offsetWidth - 4) + "px";
      this.tip.style.top = Math.min(y, r.height - this.tip.offsetHeight - 4) + "px";
    }

    // ---- pan and zoom
    _apply() { this.vp.setAttribute("transform", `translate(${this.view.x},${this.view.y}) scale(${this.view.k})`); }
    zoomBy(f, cx, cy) {
      const r = this.svg.getBoundingClientRect();
      if (cx === undefined) { cx = r.width / 2; cy = r.height / 2; }
      const k = Math.max(0.05, Math.min(4, this.view.k * f));
      this.view.x = cx - (cx - this.view.x) * k / this.view.k;
      this.view.y = cy - (cy - this.view.y) * k / this.view.k;
      this.view.k = k;
      this._apply();
    }
    fit() {
      const r = this.svg.getBoundingClientRect();
      const w = this.placed.w || 1, h = (this.placed.h || 1) + 16;  // room for the gradient labels
      const W = r.width || 800, H = r.height || 460;
      const k = Math.min(1.25, Math.min((W - 40) / w, (H - 40) / h));
      this.view = { k: k, x: (W - w * k) / 2, y: (H - h * k) / 2 };
      this._apply();
    }
    _panZoom() {
      const svg = this.svg;
      svg.addEventListener("wheel", (ev) => {
        ev.preventDefault();
        const r = svg.getBoundingClientRect();
        this.zoomBy(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
      }, { passive: false });
      let start = null;
      svg.addEventListener("pointerdown", (ev) => {
        start = { x: ev.clientX, y: ev.clientY, vx: this.view.x, vy: this.view.y };
        this._dragged = false;
      });
      window.addEventListener("pointermove", (ev) => {
        if (!start) return;
        const dx = ev.clientX - start.x, dy = ev.clientY - start.y;
        if (!this._dragged && Math.abs(dx) + Math.abs(dy) < 4) return;
        this._dragged = true;
        svg.classList.add("dg-dragging");
        this.view.x = start.vx + dx;
        this.view.y = start.vy + dy;
        this._apply();
      });
      window.addEventListener("pointerup", () => {
        start = null;
        svg.classList.remove("dg-dragging");
        setTimeout(() => { this._dragged = false; }, 0);
      });
    }
  }

  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }
  V.esc = esc;
  V.Graph = Graph;
  V.NODE = { w: NW, h: NH };
})(window.dagradViz = window.dagradViz || {});
