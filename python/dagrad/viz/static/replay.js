// dagrad explorer, the replay: steps through a profiled run on a slider. Each node is waiting,
// ready (its inputs are done), running (drawn in its thread's colour) or done; a timeline with
// one track per thread sits under the graph, with a cursor at the slider's time.
(function (V) {
  "use strict";
  // One colour per thread, everywhere a thread is drawn; none is green, teal, purple or amber,
  // the colours of the node kinds.
  V.THREADS = ["#1e88e5", "#e53935", "#f9a825", "#6d4c41", "#d81b60", "#3949ab", "#9e9d24", "#546e7a"];
  V.threadColour = (i) => V.THREADS[((i % V.THREADS.length) + V.THREADS.length) % V.THREADS.length];

  function fmtTime(ns) {
    if (ns < 1e3) return ns.toFixed(0) + " ns";
    if (ns < 1e6) return (ns / 1e3).toFixed(ns < 1e4 ? 2 : 1) + " µs";
    if (ns < 1e9) return (ns / 1e6).toFixed(ns < 1e7 ? 2 : 1) + " ms";
    return (ns / 1e9).toFixed(2) + " s";
  }
  V.fmtTime = fmtTime;

  class Replay {
    constructor(root, data, graph) {
      this.data = data;
      this.graph = graph;
      const prof = data.profile;
      this.events = prof.events;
      this.threads = prof.threads;
      this.byNode = {};
      for (const e of this.events) {
        for (const id of [e.node].concat(e.fused || [])) if (!(id in this.byNode)) this.byNode[id] = e;
      }
      // the moments something changes, after a moment "before the run" (-1)
      const times = new Set([-1]);
      for (const e of this.events) { times.add(e.ready); times.add(e.start); times.add(e.end); }
      this.times = Array.from(times).sort((a, b) => a - b);
      this._build(root);
      this.set(0);
    }

    _build(root) {
      const bar = document.createElement("div");
      bar.className = "dg-replay-bar";
      bar.innerHTML =
        '<button id="replay-prev" title="previous event">◀</button>' +
        '<button id="replay-play" class="dg-primary" title="play / pause">▶ play</button>' +
        '<button id="replay-next" title="next event">▶|</button>' +
        '<select id="replay-speed" title="speed"><option value="0.5">0.5×</option><option value="1" selected>1×</option>' +
        '<option value="2">2×</option><option value="4">4×</option></select>' +
        `<input type="range" id="replay" min="0" max="${this.times.length - 1}" step="1" value="0" aria-label="replay time">` +
        '<span id="replay-time"></span>';
      root.appendChild(bar);
      const states = document.createElement("div");
      states.className = "dg-states";
      states.innerHTML = '<span><i style="background:#e8ecf0;opacity:.6"></i>waiting</span>' +
        '<span><i style="border:2px dashed #00796b"></i>ready</span>' +
        this.threads.map((t) => `<span><i style="background:${V.threadColour(t)}"></i>running on thread ${t}</span>`).join("") +
        '<span><i style="background:#b2dfdb;border:1px solid #00796b"></i>done</span>';
      root.appendChild(states);
      const tl = document.createElement("div");
      tl.className = "dg-timeline";
      root.appendChild(tl);
      this.tl = tl;
      this.slider = bar.querySelector("#replay");
      this.label = bar.querySelector("#replay-time");
      this.playBtn = bar.querySelector("#replay-play");
      this.speed = bar.querySelector("#replay-speed");
      this.slider.addEventListener("input", () => { this.stop(); this.set(+this.slider.value); });
      bar.querySelector("#replay-prev").addEventListener("click", () => { this.stop(); this.set(this.i - 1); });
      bar.querySelector("#replay-next").addEventListener("click", () => { this.stop(); this.set(this.i + 1); });
      this.playBtn.addEventListener("click", () => (this.timer ? this.stop() : this.play()));
      this.speed.addEventListener("change", () => { if (this.timer) { this.stop(); this.play(); } });
      this._drawTimeline();
      window.addEventListener("resize", () => { this._drawTimeline(); this.set(this.i); });
    }

    play() {
      if (this.i >= this.times.length - 1) this.set(0);
      this.playBtn.textContent = "❚❚ pause";
      this.timer = setInterval(() => {
        if (this.i >= this.times.length - 1) return this.stop();
        this.set(this.i + 1);
      }, 650 / +this.speed.value);
    }
    stop() {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      this.playBtn.textContent = "▶ play";
    }

    /** Shows the run at its i-th event time. */
    set(i) {
      this.i = Math.max(0, Math.min(this.times.length - 1, i));
      this.slider.value = this.i;
      const t = this.times[this.i];
      const g = this.graph;
      g.state = {};
      g.fill = {};
      const running = [];
      for (const id in this.data.nodes) {
        const e = this.byNode[id];
        const n = this.data.nodes[id];
        let s;
        if (!e) s = n.kind === "variable" || n.kind === "parameter" ? "done" : "idle";
        else if (t >= e.end && e.end > e.start) s = "done";
        else if (t >= e.start) {
          s = t >= e.end ? "done" : "running";
          if (s === "running") { g.fill[id] = V.threadColour(e.thread); if (id === String(e.node)) running.push(e); }
        } else if (t >= e.ready) s = "ready";
        else s = "waiting";
        g.state[id] = s;
      }
      g.refresh();
      const run = running.map((e) => `${e.op}${e.pass === "backward" ? " (bwd)" : ""} on thread ${e.thread}`).join(", ");
      this.label.textContent = (t < 0 ? "before the run" : `t = ${fmtTime(t)}`) + ` · event ${this.i}/${this.times.length - 1}` +
        (run ? ` · running: ${run}` : "");
      if (this.cursor) {
        const x = this.x(t);
        this.cursor.setAttribute("x1", x);
        this.cursor.setAttribute("x2", x);
      }
    }

    _drawTimeline() {
      const tl = this.tl;
      tl.innerHTML = "";
      const W = Math.max(300, tl.clientWidth || 800), L = 78, R = 12, ROW = 24, TOP = 6;
      const span = this.times[this.times.length - 1] || 1;
      this.x = (t) => L + (Math.max(t, 0) / span) * (W - L - R);
      const H = TOP + this.threads.length * ROW + 22;
      const svg = V.el("svg", { id: "timeline", viewBox: `0 0 ${W} ${H}`, height: H }, tl);
      this.threads.forEach((th, r) => {
        const y = TOP + r * ROW;
        V.el("rect", { x: L, y: y, width: W - L - R, height: ROW - 4, fill: r % 2 ? "#f6f8fa" : "#eef1f5" }, svg);
        V.svgText(svg, 6, y + ROW / 2 + 2, "thread " + th);
      });
      for (const e of this.events) {
        const r = this.threads.indexOf(e.thread);
        const x0 = this.x(e.start), x1 = Math.max(this.x(e.end), x0 + 1.5);
        const g = V.el("g", { class: "dg-bar", "data-event-node": e.node }, svg);
        V.el("rect", { x: x0, y: TOP + r * ROW + 1, width: x1 - x0, height: ROW - 6, rx: 2, fill: V.threadColour(e.thread),
          opacity: e.pass === "backward" ? 0.6 : 0.95 }, g);
        const title = V.el("title", {}, g);
        title.textContent = `${e.op} #${e.node} (${e.pass}) on thread ${e.thread}: ${fmtTime(e.start)} – ${fmtTime(e.end)}` +
          (e.fused && e.fused.length ? `, fused with ${e.fused.length} more` : "");
        if (x1 - x0 > 34) V.svgText(g, x0 + 3, TOP + r * ROW + ROW / 2 + 1, e.op);
        g.addEventListener("click", () => { this.stop(); this.set(this.times.indexOf(e.start)); });
      }
      const yAxis = TOP + this.threads.length * ROW + 12;
      V.svgText(svg, L, yAxis, "0");
      const end = V.svgText(svg, W - R, yAxis, fmtTime(span));
      end.setAttribute("text-anchor", "end");
      this.cursor = V.el("line", { class: "dg-cursor", x1: L, x2: L, y1: 2, y2: TOP + this.threads.length * ROW }, svg);
    }
  }
  V.Replay = Replay;
})(window.dagradViz = window.dagradViz || {});
