// dagrad playground, demo 1: execution. Sends the form to the server, which runs the graph with
// dagrad's profiler on; then draws the graph (viz's Graph) and replays the real run with viz's
// Replay (waiting, ready, running in its thread's colour, done; a timeline track per thread;
// play, pause, speed, step by event), next to the run's work, span and speedups.
(function (P) {
  "use strict";
  const V = window.dagradViz;

  function fmtNs(ns) { return V.fmtTime(ns); }

  class Execution {
    constructor(app) {
      this.app = app;
      this.form = document.getElementById("exec-form");
      this.msg = document.getElementById("exec-msg");
      this.host = document.getElementById("exec-graph");
      this.stats = document.getElementById("exec-stats");
      this.replayCard = document.getElementById("exec-replay");
      this.button = document.getElementById("exec-run");
      this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.run(); });
      this.form.elements.graph.addEventListener("change", () => this._fields());
      this._fields();
    }

    setup(hello) {
      const c = hello.caps;
      this.form.elements.threads.title = `1 to ${hello.max_threads} (the cores of the server)`;
      document.getElementById("exec-caps").textContent =
        `threads 1–${hello.max_threads} · K ≤ ${c.branches} · n ≤ ${c.size} · batch ≤ ${c.batch} · hidden ≤ ${c.hidden}`;
    }

    _fields() {
      const g = this.form.elements.graph.value;
      for (const el of this.form.querySelectorAll("[data-for]")) el.hidden = el.getAttribute("data-for") !== g;
    }

    async run() {
      const params = P.formValues(this.form);
      const g = params.graph;
      for (const k of ["branches", "size", "batch", "hidden"]) {  // only the chosen graph's fields
        const label = this.form.querySelector(`[data-for] [name=${k}]`);
        if (label && label.closest("[data-for]").getAttribute("data-for") !== g) delete params[k];
      }
      this.button.disabled = true;
      P.say(this.msg, "running on the server…", "info");
      try {
        const r = await this.app.client.request("execution", params);
        P.say(this.msg, null);
        this.show(r);
      } catch (e) {
        P.say(this.msg, e.message);
      } finally {
        this.button.disabled = false;
      }
    }

    show(r) {
      this.last = r;
      const data = r.explorer;
      if (this.replay) this.replay.stop();
      this.host.innerHTML = "";
      document.getElementById("exec-title").textContent = data.title;
      this.graph = new V.Graph(this.host, data, {});
      this.graph.svg.setAttribute("id", "exec-svg");
      for (const el of this.replayCard.querySelectorAll(":scope > :not(h2)")) el.remove();
      this.replay = new V.Replay(this.replayCard, data, this.graph);
      this.replayCard.setAttribute("data-threads", data.profile ? data.profile.threads.join(",") : "");
      const s = r.stats, k = r.threads;
      const sp = (v) => (v === null || v === undefined ? "–" : v.toFixed(2) + "×");
      this.stats.innerHTML =
        `<dl class="pg-dl">` +
        `<dt>run</dt><dd>${r.events} nodes on ${k} thread${k > 1 ? "s" : ""}, schedule ${V.esc(r.schedule)}</dd>` +
        `<dt>threads that ran nodes</dt><dd id="exec-threads-used">${r.threads_used.join(", ")}</dd>` +
        `<dt>work</dt><dd title="the sum of the node times: a 1-thread run's time">${fmtNs(s.work_ns)}</dd>` +
        `<dt>span</dt><dd title="the longest chain of dependent nodes">${fmtNs(s.span_ns)}</dd>` +
        `<dt>parallelism</dt><dd title="work / span: about how many threads the graph can keep busy">${s.parallelism.toFixed(2)}</dd>` +
        `<dt>predicted speedup</dt><dd id="exec-predicted">${sp(s.predicted_speedup)} on ${k} <span class="k">(Brent: ${sp(s.predicted_low)}–${sp(s.predicted_high)})</span></dd>` +
        `<dt>measured speedup</dt><dd id="exec-measured">${sp(s.measured_speedup)} <span class="k">(${fmtNs(s.time_1_s * 1e9)} on 1 thread, ` +
        `${fmtNs(s.time_k_s * 1e9)} on ${k}; best of ${this.app.hello.caps.repeats})</span></dd></dl>` +
        `<p class="k">Work and span are the measured node times of the replayed run. Tiny graphs run faster on one ` +
        `thread: handing nodes to another thread costs microseconds.</p>`;
    }

    shown() { if (this.graph) this.graph.fit(); }
  }
  P.Execution = Execution;
})(window.dagradPlayground = window.dagradPlayground || {});
